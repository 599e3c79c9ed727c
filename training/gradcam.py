"""Grad-CAM (Selvaraju et al. 2017) of the top class on the feature maps the pooling reads.

The default map a version serves (training.layercam.GRAD_CAM): the last feature maps
weighted by the mean gradient of the top class's logit, scaled to peak 1. The gradient
only runs back through the small head (pool -> dropout -> logits), so the call costs
what the forward pass does. The worker serves this function and training.explanations
measures it, so what is measured is what is served.
"""

from __future__ import annotations

from collections.abc import Callable


def split_at_pooling(model):
    """(pixels -> feature maps, [pool, dropout, logits], calibration layers), or None for a
    model without the platform's head (training.export.SERVED_HEAD): served without heatmaps."""
    import keras

    from training.export import SERVED_HEAD, has_served_head

    if not has_served_head(model):
        return None
    head = model.layers[-len(SERVED_HEAD) :]
    feature_maps = keras.Model(model.inputs, head[0].input, name="feature_maps")
    return feature_maps, head[:3], head[3:]


def grad_cam_function(model) -> Callable:
    """A traced function: pixels -> (probabilities, pooled features (N, d), maps (N, h, w) scaled to peak 1).

    Raises ValueError when the model has no platform head.
    """
    import tensorflow as tf

    parts = split_at_pooling(model)
    if parts is None:
        raise ValueError("the model has no 'pool' -> 'logits' head: it is served without a heatmap")
    feature_maps, (pooling, *rest_of_head), calibration = parts
    height, width = model.inputs[0].shape[1:3]
    spec = [tf.TensorSpec([None, height, width, 3], tf.float32)]

    @tf.function(input_signature=spec, reduce_retracing=True)
    def grad_cam(pixels):
        maps = feature_maps(pixels, training=False)
        with tf.GradientTape() as tape:
            tape.watch(maps)
            pooled = pooling(maps, training=False)  # the features the out-of-distribution check scores
            logits = pooled
            for layer in rest_of_head:
                logits = layer(logits, training=False)
            top_logits = tf.gather(logits, tf.argmax(logits, axis=1), axis=1, batch_dims=1)
        gradients = tape.gradient(top_logits, maps)
        weights = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)
        heatmaps = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1))
        heatmaps = tf.math.divide_no_nan(heatmaps, tf.reduce_max(heatmaps, axis=[1, 2], keepdims=True))
        probabilities = logits
        for layer in calibration:
            probabilities = layer(probabilities, training=False)
        return probabilities, pooled, heatmaps

    return grad_cam
