"""Several versions of one backbone as one served network: a shared stem, a tail each, logits averaged.

Versions fine-tuned from the same layer of the same ImageNet weights (the recipe's
``fine_tune_from``; batch-norm is frozen throughout) compute the same stem, so the merged
network runs it once: at 150 px MobileNetV2's layers before ``block_5_expand`` are 32 % of
its multiply-adds. The merged logits are the mean of the members' temperature-scaled logits,
which is one dense layer on the members' pooled features side by side, so the merged network
ends in the platform's served head (``pool`` -> ``head_dropout`` -> ``logits``) and the
heatmap, the out-of-distribution check, the lesion mask head, head-only retraining and the
LiteRT export read it as they read one network. The first member keeps its layer names
(the card's heatmap and lesion-mask layers are its own); the others' are prefixed.

The output is a run folder (``model_logits.keras`` and ``run.json``) that training.evaluate
and training.export take as they take a trained run: the merged logits get a temperature,
thresholds and a malignancy score of their own there, on the validation split.

    python -m training.ensemble models/mobilenetv2-150-v4 training_runs/candidates/<version> \\
        --out training_runs/ensemble
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from training.card import MODEL_FILENAME, read_card
from training.train import LOGITS_MODEL_FILENAME, RUN_FILENAME

COMBINATION = "the mean of the members' temperature-scaled logits (one dense layer on their pooled features)"
FEATURES_LAYER = "member_features"  # the members' last feature maps side by side, before the pooling


def backbone_of(model):
    """The MobileNetV2 base nested in a served version (training.models builds it so)."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ValueError(f"{model.name} is not one MobileNetV2 base with a head: it nests {len(nested)} models")
    return nested[0]


def temperature_of(model) -> float:
    """The temperature a served version divides its logits by (its ``temperature_scaling`` layer)."""
    return 1.0 / float(model.get_layer("temperature_scaling").scale)


def _layers(base) -> list:
    import keras

    return [layer for layer in base.layers if not isinstance(layer, keras.layers.InputLayer)]


def check_shared_stem(bases: list, until: str) -> None:
    """Raise ValueError naming the first layer before ``until`` whose weights differ between members."""
    first = _layers(bases[0])
    names = [layer.name for layer in first]
    if until not in names:
        raise ValueError(f"the members have no layer {until!r} to share a stem up to")
    for base in bases[1:]:
        if [layer.name for layer in _layers(base)] != names:
            raise ValueError(f"{base.name}'s layers are not those of {bases[0].name}: another architecture")
        for ours, theirs in zip(first[: names.index(until)], _layers(base), strict=False):
            mine, other = ours.get_weights(), theirs.get_weights()
            if len(mine) != len(other) or any(not np.array_equal(a, b) for a, b in zip(mine, other, strict=True)):
                raise ValueError(
                    f"the members' layer {ours.name!r} differs: they were not fine-tuned from {until!r} "
                    "of the same weights, so they share no stem"
                )


def _replay(sub_model, tensor, prefix: str):
    """``sub_model``'s layers, copied with their weights and ``prefix`` on their names, called on ``tensor``."""
    copies = []

    def copy(layer):
        clone = layer.__class__.from_config({**layer.get_config(), "name": prefix + layer.name})
        copies.append((layer, clone))
        return clone

    # Keras has no public call that re-runs a functional graph with other layers on a tensor of
    # another graph (clone_model nests an input layer per call, and two tails on one stem clash).
    output = sub_model._run_through_graph(tensor, operation_fn=copy)
    for layer, clone in copies:
        clone.set_weights(layer.get_weights())
    return output[0] if isinstance(output, list | tuple) else output


def merge(models: list, until: str):
    """One logits model from served versions ``models`` sharing their stem up to layer ``until``."""
    import keras

    if len(models) < 2:
        raise ValueError("an ensemble needs at least two members")
    bases = [backbone_of(model) for model in models]
    check_shared_stem(bases, until)
    shapes = {tuple(model.inputs[0].shape[1:]) for model in models}
    if len(shapes) != 1:
        raise ValueError(f"the members take different inputs: {sorted(shapes)}")
    (shape,) = shapes

    pixels = keras.Input(shape, name="pixels")
    scaling = models[0].get_layer("to_minus1_1")
    x = keras.layers.Rescaling(scaling.scale, offset=scaling.offset, name="to_minus1_1")(pixels)
    cut = bases[0].get_layer(until).input
    stem = _replay(keras.Model(bases[0].inputs, cut), x, "")
    tails = []
    for index, base in enumerate(bases):
        tail = keras.Model(base.get_layer(until).input, base.outputs[0])
        tails.append(_replay(tail, stem, "" if index == 0 else f"member{index + 1}_"))
    features = keras.layers.Concatenate(name=FEATURES_LAYER)(tails)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    dropped = keras.layers.Dropout(models[0].get_layer("head_dropout").rate, name="head_dropout")(pooled)
    logits_layer = keras.layers.Dense(models[0].get_layer("logits").units, name="logits")
    logits = logits_layer(dropped)

    # mean_k (W_k p_k + b_k) / T_k = [W_1 / (K T_1); ...; W_K / (K T_K)] [p_1; ...; p_K] + mean_k b_k / T_k
    count = len(models)
    kernels, biases = [], []
    for model in models:
        kernel, bias = model.get_layer("logits").get_weights()
        temperature = temperature_of(model)
        kernels.append(kernel / (count * temperature))
        biases.append(bias / (count * temperature))
    logits_layer.set_weights([np.concatenate(kernels, axis=0), np.sum(biases, axis=0)])
    return keras.Model(pixels, logits, name="mobilenetv2_ensemble")


def scaled_logits(model, pixels: np.ndarray) -> np.ndarray:
    """A served version's logits divided by its temperature: what its softmax reads."""
    import keras

    logits = keras.Model(model.inputs[0], model.get_layer("logits").output)(pixels, training=False)
    return np.asarray(logits) / temperature_of(model)


def check_merged(merged, models: list, samples: int = 3) -> float:
    """The largest gap between the merged logits and the members' mean scaled logits, on random pixels."""
    shape = tuple(merged.inputs[0].shape[1:])
    pixels = np.random.default_rng(0).uniform(0, 255, (samples, *shape)).astype(np.float32)
    expected = np.mean([scaled_logits(model, pixels) for model in models], axis=0)
    gap = float(np.max(np.abs(np.asarray(merged(pixels, training=False)) - expected)))
    if gap > 1e-3:
        raise RuntimeError(f"the merged network's logits differ from the members' mean by {gap:.2g}")
    return gap


def ensemble_run(version_dirs: list[Path]) -> dict:
    """The run record (run.json) of the merged network: the first member's recipe, every member named."""
    cards = [read_card(path).raw for path in version_dirs]
    recipes = [card["recipe"] for card in cards]
    fine_tune_from = {recipe.get("fine_tune_from") for recipe in recipes}
    if len(fine_tune_from) != 1 or None in fine_tune_from:
        raise ValueError(f"the members were fine-tuned from different layers: {sorted(map(str, fine_tune_from))}")
    geometries = {card["input"].get("geometry") for card in cards}
    if len(geometries) != 1:
        raise ValueError(f"the members read pictures in different geometries: {sorted(map(str, geometries))}")
    first = recipes[0]
    recipe_fields = ("arch", "input_size", "dropout", "fine_tune_from", "logit_adjustment", "sampling")
    return {
        # What evaluate and export read of a recipe; every member's own is under "ensemble".
        "recipe": {**{key: first[key] for key in recipe_fields if key in first}, "geometry": geometries.pop()},
        "ensemble": {
            "combination": COMBINATION,
            "shared_stem_until": first["fine_tune_from"],
            "members": [
                {
                    "version": card["version"],
                    "temperature": card["temperature"],
                    "recipe": card["recipe"],
                }
                for card in cards
            ],
        },
        "imbalance": first["loss_weights"],
        "class_weights": first.get("class_weights"),
        "train_seconds": 60 * sum(recipe["train_minutes"] for recipe in recipes),
        "hardware": first.get("hardware"),
        "history": [],
    }


def build(version_dirs: list[Path], out: Path) -> Path:
    """Merge the versions in ``version_dirs`` into the run folder ``out``; return it."""
    import keras

    run = ensemble_run(version_dirs)
    models = [keras.saving.load_model(Path(path) / MODEL_FILENAME) for path in version_dirs]
    merged = merge(models, run["recipe"]["fine_tune_from"])
    check_merged(merged, models)
    out.mkdir(parents=True, exist_ok=True)
    merged.save(out / LOGITS_MODEL_FILENAME)
    (out / RUN_FILENAME).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("versions", nargs="+", type=Path, help="version folders (model.keras, card.json)")
    parser.add_argument("--out", type=Path, required=True, help="run folder to write")
    args = parser.parse_args(argv)
    if len(args.versions) < 2:
        parser.error("an ensemble needs at least two versions")
    out = build(args.versions, args.out)
    print(f"wrote {out / LOGITS_MODEL_FILENAME} and {out / RUN_FILENAME}")


if __name__ == "__main__":
    main()
