"""Layer-CAM (Jiang et al. 2021) of the top class, computed with forward operations only.

Layer-CAM weights every position of a layer's activations A by its own positive
gradient g of the top class's logit: map = relu(sum_k A_k * relu(g_k)), scaled to peak
1. TensorFlow Lite cannot convert gradient ops (DepthwiseConv2dNativeBackpropInput,
Relu6Grad need flex ops, which ai-edge-litert does not run), so the backward pass from
the logit to the layer is written here by hand as a vector-Jacobian product, layer by
layer, from the Keras functional graph, in ops TFLite has as builtins:

- dense logits: the kernel's column of the top class (a gather);
- global average pooling: that vector spread over the h*w positions, divided by h*w;
- batch normalisation (inference): times gamma / sqrt(moving variance + epsilon);
- ReLU (max 6 or none): times the mask 0 < output < max;
- Conv2D / DepthwiseConv2D: the gradient dilated by the stride (zeros inserted), padded,
  convolved with the spatially flipped kernel (in and out channels swapped for Conv2D),
  cropped to the input's size;
- ZeroPadding2D: the crop; Add: the same gradient to each input; Dropout: identity.

``layer_cam_model`` builds one Keras model, pixels -> [probabilities, pooled features,
maps], that the worker's Keras backend calls and training.export_litert converts, so
both backends serve the same map; ``tape_layer_cam`` is the GradientTape computation
it must match (training.explanations uses it as the independent reference).
"""

from __future__ import annotations

import numpy as np

SERVED_LAYER = "block_12_expand_relu"  # MobileNetV2, 10x10 at 150 px: the map that points at the lesion
# The maps a version may serve, as its card's ``explanation.method`` and each stored prediction name them.
GRAD_CAM = "grad-cam"  # Grad-CAM on the feature maps the pooling reads: the default
LAYER_CAM = "layer-cam"  # Layer-CAM at the card's ``explanation.layer``, computed by layer_cam_model
# Two computations of the same maps (scaled to peak 1) agree when the median picture's map is
# within MAX_MAP_DIFFERENCE everywhere and no cell of any picture is off by more than
# MAX_CELL_DIFFERENCE. Not every picture within 1e-4: a ReLU6 whose input lies within float
# rounding of 0 or 6 passes its gradient in one computation and not in the other (TensorFlow's
# fused kernels, TFLite's), which moves cells of about one picture in ten: by up to 9e-3 on
# v1-v3's first 64 validation pictures (never the hottest cell), 5e-2 on noise. A wrong gradient
# or conversion moves every picture's map.
MAX_MAP_DIFFERENCE = 1e-4
MAX_CELL_DIFFERENCE = 0.1


def served_map(card_data: dict) -> tuple[str, str | None]:
    """(method, layer) of the heatmap a card says its version serves; Grad-CAM when it says nothing.

    Raises ValueError, naming the problem, for an entry that names no known method or,
    for Layer-CAM, no layer.
    """
    entry = card_data.get("explanation")
    if not entry:
        return GRAD_CAM, None
    method = entry.get("method") if isinstance(entry, dict) else None
    if method == GRAD_CAM:
        return GRAD_CAM, None
    if method == LAYER_CAM:
        layer = entry.get("layer")
        if not isinstance(layer, str) or not layer:
            raise ValueError("the card's 'explanation' serves Layer-CAM but names no 'layer'")
        return LAYER_CAM, layer
    raise ValueError(f"the card's 'explanation.method' must be {GRAD_CAM!r} or {LAYER_CAM!r}, not {method!r}")


def find_layer(model, name: str):
    """(the layer called ``name``, the model whose graph holds it: a nested base, or ``model`` itself)."""
    import keras

    for layer in model.layers:
        if layer.name == name:
            return layer, model
        if isinstance(layer, keras.Model):
            try:
                return layer.get_layer(name), layer
            except ValueError:
                continue
    raise ValueError(f"the model has no layer {name!r}")


def rebuilt_with(model, holder, tensors: list):
    """(pixels input, [those tensors of ``holder``'s graph], logits, pooled features, probabilities), one new graph.

    ``holder`` is a model nested in ``model`` (MobileNetV2's base) or ``model`` itself. For
    a nested base the top-level chain is rebuilt around a copy of the base that also
    outputs ``tensors``; every layer, and so every weight, is the version's own.
    """
    import keras

    pool, logits_layer = model.get_layer("pool"), model.get_layer("logits")
    if holder is model:
        return model.inputs[0], list(tensors), logits_layer.output, pool.output, model.output
    inner = keras.Model(holder.inputs, [*tensors, holder.output])
    pixels = keras.Input(model.inputs[0].shape[1:], name="pixels")
    x, found, logits, pooled = pixels, None, None, None
    for top_layer in model.layers[1:]:
        if top_layer is holder:
            *found, x = inner(x)
        else:
            x = top_layer(x)
        if top_layer is pool:
            pooled = x
        if top_layer is logits_layer:
            logits = x
    # A model that is not one chain of layers would be rebuilt wrong: check the output agrees.
    rebuilt = keras.Model(pixels, x)
    probe = np.random.default_rng(0).uniform(0, 255, (2, *model.inputs[0].shape[1:])).astype(np.float32)
    if not np.allclose(np.asarray(rebuilt(probe)), np.asarray(model(probe, training=False)), atol=1e-4):
        raise ValueError(f"cannot reach {holder.name!r}: the model is not one chain of layers from pixels to output")
    return pixels, found, logits, pooled, x


# --- the graph between the layer and the pooling ----------------------------------------------


def _producer(tensor):
    """(the layer that made ``tensor``, the tensors it was called on).

    From Keras 3's functional graph records (``_keras_history``, ``_inbound_nodes``): Keras has
    no public way to walk a model's graph backwards from a tensor.
    """
    operation, node_index, _ = tensor._keras_history
    return operation, list(operation._inbound_nodes[node_index].input_tensors)


def path_between(start, end) -> list:
    """The tensors on some path from ``start`` to ``end`` in one functional graph, inputs before outputs."""
    reaches: dict[int, bool] = {}
    order: list = []

    def visit(tensor) -> bool:
        key = id(tensor)
        if key not in reaches:
            if tensor is start:
                reaches[key] = True
            else:
                _, inputs = _producer(tensor)
                reaches[key] = any([visit(parent) for parent in inputs])  # a list: visit every parent
            if reaches[key]:
                order.append(tensor)
        return reaches[key]

    if not visit(end):
        raise ValueError("the pooled feature maps do not depend on the chosen layer")
    return order


def _conv_transpose(gradient, kernel: np.ndarray, input_shape, layer, depthwise: bool):
    """Gradient w.r.t. a convolution's input, from the gradient w.r.t. its output, with forward ops.

    Forward (per axis): y[i] = sum_k x_padded[s*i + k] w[k], x_padded[t] = x[t - before].
    So dx[j] = sum_k d[j + before - k] w[k] with d the output gradient dilated by s: a
    correlation of d, padded by K-1-before in front, with the flipped kernel.
    """
    from keras import ops

    height, width = input_shape[1], input_shape[2]
    out_height, out_width = gradient.shape[1], gradient.shape[2]
    (kernel_h, kernel_w), (stride_h, stride_w) = kernel.shape[:2], layer.strides
    if tuple(getattr(layer, "dilation_rate", (1, 1))) != (1, 1):
        raise ValueError(f"cannot back-propagate through {layer.name}: dilated convolutions are not supported")

    def before(size, out_size, k, s):
        if layer.padding == "valid":
            return 0
        return max((out_size - 1) * s + k - size, 0) // 2  # TensorFlow's SAME puts the odd pixel after

    channels = gradient.shape[-1]
    if stride_h > 1:  # zeros between rows: (N, oh, 1, ow, C) -> (N, oh, s, ow, C) -> (N, oh*s, ow, C)
        gradient = ops.expand_dims(gradient, 2)
        gradient = ops.pad(gradient, [[0, 0], [0, 0], [0, stride_h - 1], [0, 0], [0, 0]])
        gradient = ops.reshape(gradient, (-1, out_height * stride_h, out_width, channels))
    if stride_w > 1:
        gradient = ops.expand_dims(gradient, 3)
        gradient = ops.pad(gradient, [[0, 0], [0, 0], [0, 0], [0, stride_w - 1], [0, 0]])
        gradient = ops.reshape(gradient, (-1, out_height * stride_h, out_width * stride_w, channels))
    front_h = kernel_h - 1 - before(height, out_height, kernel_h, stride_h)
    front_w = kernel_w - 1 - before(width, out_width, kernel_w, stride_w)
    back_h = max(height + kernel_h - 1 - front_h - out_height * stride_h, 0)
    back_w = max(width + kernel_w - 1 - front_w - out_width * stride_w, 0)
    if front_h or front_w or back_h or back_w:
        gradient = ops.pad(gradient, [[0, 0], [front_h, back_h], [front_w, back_w], [0, 0]])
    flipped = kernel[::-1, ::-1]
    if depthwise:
        gradient = ops.depthwise_conv(gradient, flipped, strides=1, padding="valid")
    else:
        gradient = ops.conv(gradient, np.ascontiguousarray(flipped.transpose(0, 1, 3, 2)), strides=1, padding="valid")
    if gradient.shape[1] != height or gradient.shape[2] != width:
        gradient = gradient[:, :height, :width, :]
    return gradient


def _activation_mask(activation, output, layer):
    """The derivative of a layer's activation, from its output: 1 for linear, the ReLU's mask otherwise."""
    from keras import activations, ops

    if activation is None or activation is activations.linear:
        return None
    if activation is activations.relu:
        return ops.cast(ops.greater(output, 0.0), "float32")
    raise ValueError(f"cannot back-propagate through {layer.name}: activation {activation.__name__!r}")


def _backward(layer, inputs: list, output, forward_output, gradient) -> list:
    """Gradients w.r.t. each of ``layer``'s inputs, given the one w.r.t. its ``output``.

    ``forward_output`` is that output's value in the rebuilt graph, for the layers whose
    derivative depends on it (ReLUs, convolutions with a fused ReLU), else None.
    """
    import keras
    from keras import ops

    kind = type(layer).__name__
    if isinstance(layer, keras.layers.ReLU):
        if float(layer.negative_slope) != 0.0 or float(layer.threshold) != 0.0:
            raise ValueError(f"cannot back-propagate through {layer.name}: leaky or thresholded ReLU")
        mask = ops.greater(forward_output, 0.0)
        if layer.max_value is not None:
            mask = ops.logical_and(mask, ops.less(forward_output, float(layer.max_value)))
        return [gradient * ops.cast(mask, "float32")]
    if isinstance(layer, keras.layers.BatchNormalization):
        if layer.axis not in (-1, len(output.shape) - 1):
            raise ValueError(f"cannot back-propagate through {layer.name}: normalises axis {layer.axis}, not channels")
        variance = np.asarray(layer.moving_variance.numpy(), dtype=np.float64)
        gamma = np.asarray(layer.gamma.numpy(), dtype=np.float64) if layer.scale else 1.0
        return [gradient * (gamma / np.sqrt(variance + layer.epsilon)).astype(np.float32)]
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
        if layer.data_format != "channels_last":
            raise ValueError(f"cannot back-propagate through {layer.name}: channels_first")
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        if depthwise and layer.depth_multiplier != 1:
            raise ValueError(f"cannot back-propagate through {layer.name}: depth multiplier {layer.depth_multiplier}")
        if not depthwise and layer.groups != 1:
            raise ValueError(f"cannot back-propagate through {layer.name}: grouped convolution")
        mask = _activation_mask(layer.activation, forward_output, layer)
        if mask is not None:
            gradient = gradient * mask
        kernel = np.asarray(layer.kernel.numpy(), dtype=np.float32)  # depthwise: (kh, kw, channels, 1)
        return [_conv_transpose(gradient, kernel, inputs[0].shape, layer, depthwise)]
    if isinstance(layer, keras.layers.ZeroPadding2D):
        (top, bottom), (left, right) = layer.padding
        if layer.data_format != "channels_last":
            raise ValueError(f"cannot back-propagate through {layer.name}: channels_first")
        height, width = inputs[0].shape[1], inputs[0].shape[2]
        return [gradient[:, top : top + height, left : left + width, :]]
    if isinstance(layer, keras.layers.Add):
        return [gradient for _ in inputs]
    if isinstance(layer, keras.layers.Concatenate):  # an ensemble's members side by side (training.ensemble)
        if layer.axis not in (-1, len(output.shape) - 1):
            raise ValueError(f"cannot back-propagate through {layer.name}: joins axis {layer.axis}, not channels")
        ends = np.cumsum([tensor.shape[-1] for tensor in inputs])
        return [gradient[..., end - tensor.shape[-1] : end] for tensor, end in zip(inputs, ends, strict=True)]
    if isinstance(layer, keras.layers.Dropout):
        return [gradient]
    raise ValueError(f"cannot back-propagate through {layer.name} ({kind}): no hand-written gradient for it")


def layer_cam_model(model, layer_name: str = SERVED_LAYER, lesion_head=None, lesion_layer: str | None = None):
    """A Keras model: pixels -> [probabilities, pooled features (N, d), Layer-CAM maps (N, h, w) scaled to peak 1].

    Forward ops only (see the module's docstring), so TFLite converts it with builtins.
    With ``lesion_head`` (training.lesion_mask's head, reading ``lesion_layer``'s activations)
    a fourth output, the lesion probability per cell (N, h', w', 1), comes from the same
    forward pass: locating the lesion costs the small head, not a second backbone.
    Raises ValueError, naming the reason, when the model has no platform head
    (training.export.SERVED_HEAD), no such layer, or a layer on the way whose gradient
    is not written here.
    """
    import keras
    from keras import ops

    from training.export import has_served_head

    if not has_served_head(model):
        raise ValueError("the model has no 'pool' -> 'logits' head")
    layer, holder = find_layer(model, layer_name)
    pool = model.get_layer("pool")
    end = holder.outputs[0] if holder is not model else pool.input
    if holder is not model and _producer(pool.input)[0] is not holder:
        raise ValueError(f"the pooling does not read {holder.name!r}'s output")
    start = layer.output
    path = path_between(start, end)
    # The forward values the backward pass reads: the layer's activations and the outputs of
    # layers with a non-linear derivative (ReLUs, convolutions with a fused ReLU).
    needed = [t for t in path if t is start or _needs_output(_producer(t)[0])]
    extra = []
    if lesion_head is not None:
        lesion_source, lesion_holder = find_layer(model, lesion_layer)
        if lesion_holder is not holder:
            raise ValueError(f"{lesion_layer!r} and {layer_name!r} are not in the same model")
        extra = [lesion_source.output]
    pixels, values, logits, pooled, probabilities = rebuilt_with(model, holder, needed + extra)
    values, extra_values = values[: len(needed)], values[len(needed) :]
    forward = {id(t): v for t, v in zip(needed, values, strict=True)}
    feature_maps = values[-1] if needed[-1] is end else None

    kernel = np.asarray(model.get_layer("logits").kernel.numpy(), dtype=np.float32)  # (d, classes)
    height, width = end.shape[1], end.shape[2]
    # top_k, not argmax: Keras's argmax adds a bitwise test for -0.0 that TFLite has no builtin for.
    # Both take the lowest index on a tie, as numpy's argmax does.
    _, top = ops.top_k(logits, k=1)
    column = ops.take(np.ascontiguousarray(kernel.T / (height * width)), top[:, 0], axis=0)  # (N, d)
    spread = ops.reshape(column, (-1, 1, 1, kernel.shape[0]))
    if feature_maps is not None:
        spread = spread + ops.zeros_like(feature_maps)
    else:
        spread = ops.tile(spread, (1, height, width, 1))
    gradients = {id(end): spread}
    on_path = {id(t) for t in path}
    for tensor in reversed(path):
        if tensor is start:
            break
        producer, inputs = _producer(tensor)
        got = _backward(producer, inputs, tensor, forward.get(id(tensor)), gradients.pop(id(tensor)))
        for parent, gradient in zip(inputs, got, strict=True):
            if id(parent) in on_path:
                key = id(parent)
                gradients[key] = gradient if key not in gradients else gradients[key] + gradient
    activations = forward[id(start)]
    maps = ops.relu(ops.sum(activations * ops.relu(gradients[id(start)]), axis=-1))
    peak = ops.max(maps, axis=(1, 2), keepdims=True)
    maps = maps / ops.maximum(peak, 1e-30)  # an all-zero map stays all zero
    outputs = [probabilities, pooled, maps]
    if lesion_head is not None:
        # (N, h', w', 1): a trailing axis, so a LiteRT worker tells it from the maps by shape.
        lesion = ops.sigmoid(lesion_head(extra_values[0]))
        outputs.append(ops.expand_dims(lesion, -1))
    return keras.Model(pixels, outputs, name=f"{model.name}_layer_cam")


def _needs_output(layer) -> bool:
    import keras
    from keras import activations

    if isinstance(layer, keras.layers.ReLU):
        return True
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
        return layer.activation not in (None, activations.linear)
    return False


def tape_layer_cam(model, layer_name: str = SERVED_LAYER):
    """(pixels) -> Layer-CAM maps (N, h, w) of the top class from tf.GradientTape: the reference."""
    import tensorflow as tf

    layer, holder = find_layer(model, layer_name)
    pixels_in, (activations_out,), logits_out, _, _ = rebuilt_with(model, holder, [layer.output])
    import keras

    both = keras.Model(pixels_in, [activations_out, logits_out])

    @tf.function(reduce_retracing=True)
    def maps_of(pixels):
        with tf.GradientTape() as tape:
            tape.watch(pixels)
            activations, logits = both(pixels, training=False)
            top_logits = tf.gather(logits, tf.argmax(logits, axis=1), axis=1, batch_dims=1)
        gradients = tape.gradient(top_logits, activations)
        maps = tf.nn.relu(tf.reduce_sum(activations * tf.nn.relu(gradients), axis=-1))
        return tf.math.divide_no_nan(maps, tf.reduce_max(maps, axis=[1, 2], keepdims=True))

    return lambda pixels: maps_of(tf.convert_to_tensor(pixels, dtype=tf.float32)).numpy()


def map_disagreement(got: np.ndarray, want: np.ndarray) -> str | None:
    """Why two computations of the same maps (N, h, w) disagree (see MAX_MAP_DIFFERENCE); None when they agree."""
    difference = np.abs(np.asarray(got, dtype=np.float64) - np.asarray(want, dtype=np.float64))
    median = float(np.median(difference.reshape(len(difference), -1).max(axis=1)))
    if median > MAX_MAP_DIFFERENCE:
        return f"the median picture's map differs by {median:.2e} (> {MAX_MAP_DIFFERENCE})"
    if difference.max() > MAX_CELL_DIFFERENCE:
        return f"a cell differs by {difference.max():.2e} (> {MAX_CELL_DIFFERENCE})"
    return None


def check_against_tape(model, vjp_model, layer_name: str, pixels: np.ndarray) -> float:
    """Largest cell difference between the hand-written maps and GradientTape's; raise when they disagree."""
    got = np.asarray(vjp_model(pixels, training=False)[2])
    want = tape_layer_cam(model, layer_name)(pixels)
    problem = map_disagreement(got, want)
    if problem is not None:
        raise RuntimeError(
            f"the hand-written Layer-CAM at {layer_name!r} differs from GradientTape's: {problem}; "
            "a layer's gradient is wrong"
        )
    return float(np.max(np.abs(got - want)))
