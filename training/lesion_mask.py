"""Locating the lesion: a small mask head on a version's own frozen features, trained on HAM10000's masks.

The head reads the activations of one of the version's MobileNetV2 layers
(``block_13_expand_relu``: a 10x10 grid at 150 px, the finest map whose features still
know what is lesion and what is skin) and gives, per cell, the probability that it is
lesion. From it: the lesion's share of the frame (to follow a lesion over visits: relative,
no ruler), and its box, with which a picture can be framed around the lesion before it is
classified. Whether that framing reads other centres' pictures better than the whole picture
is measured, not assumed (``framing`` below, on clean and shifted validation).

    python -m training.lesion_mask models/<version> fit --data-dir ../shared/data/ham10000
    python -m training.lesion_mask models/<version> framing --data-dir ../shared/data/ham10000 --out report.json

``fit`` writes ``<version>/lesion_mask_head.keras`` (the head alone: activations -> lesion
logits per cell; the network it reads is the version's own ``model.keras``, not a copy) and
the card's ``lesion_mask`` entry (its layer, grid and validation figures). Validation only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from training.card import CARD_FILENAME, MODEL_FILENAME, ModelCard, read_card, write_card
from training.commands import version_command
from training.preprocessing import input_box, to_model_input

MASK_FILENAME = "lesion_mask_head.keras"
MASK_LAYER = "block_13_expand_relu"
LESION_LEVEL = 128  # the masks' README: the lesion is where the grey value is >= 128
MASK_EPOCHS, MASK_LR, MASK_BATCH = 25, 1e-3, 64
# Framing around the lesion: the box of the cells above PRESENT, widened by MARGIN of its size
# on each side (the lesion's border and some skin around it are part of what is read), and at
# least MIN_SIDE of the picture each way (a speck is not zoomed into noise).
PRESENT, MARGIN, MIN_SIDE = 0.5, 0.25, 0.35

Box = tuple[float, float, float, float]


# --- targets -----------------------------------------------------------------------------------


def mask_picture(mask: Image.Image) -> Image.Image:
    """A grey mask as an RGB picture, so that it goes through the very geometry the pictures do."""
    return mask.convert("L").convert("RGB")


def lesion_grid(mask: Image.Image, input_size: tuple[int, int], geometry: str, grid: tuple[int, int]) -> np.ndarray:
    """The share of each grid cell that is lesion (0..1), over the part of the picture the model sees."""
    pixels = to_model_input(mask_picture(mask), input_size, geometry)[..., 0] >= LESION_LEVEL
    rows, cols = grid
    height, width = pixels.shape
    edges_y = np.linspace(0, height, rows + 1).round().astype(int)
    edges_x = np.linspace(0, width, cols + 1).round().astype(int)
    return np.array(
        [
            [pixels[edges_y[r] : edges_y[r + 1], edges_x[c] : edges_x[c + 1]].mean() for c in range(cols)]
            for r in range(rows)
        ],
        dtype=np.float32,
    )


# --- the model -----------------------------------------------------------------------------------


def activations_model(served, layer: str = MASK_LAYER):
    """pixels -> the version's activations at ``layer`` (its own weights, frozen)."""
    import keras

    from training.explanations import activations_and_logits

    both = activations_and_logits(served, layer)
    return keras.Model(both.inputs, both.outputs[0], name="lesion_features")


def build_head(shape: tuple[int, int, int]):
    """Activations (h, w, c) -> lesion logits (h, w): a 3x3 layer for context, then one per cell."""
    import keras

    activations = keras.Input(shape, name="activations")
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="mask_context")(activations)
    x = keras.layers.Conv2D(1, 1, name="mask_logits")(x)
    return keras.Model(activations, keras.layers.Reshape(shape[:2], name="mask_grid")(x), name="mask_head")


def mask_model(features, head):
    """The served mask model: pixels -> lesion probability per grid cell."""
    import keras

    logits = head(features.outputs[0])
    probabilities = keras.layers.Activation("sigmoid", name="lesion_probability")(logits)
    return keras.Model(features.inputs, probabilities, name="lesion_mask")


def fit_head(head, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], log=print) -> dict:
    """Train on (activations, lesion grids) with a soft binary cross-entropy; keep the best validation loss."""
    import keras

    head.compile(optimizer=keras.optimizers.Adam(MASK_LR), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    history = head.fit(
        train[0], train[1], validation_data=val, epochs=MASK_EPOCHS, batch_size=MASK_BATCH, callbacks=[stop], verbose=0
    )
    losses = history.history["val_loss"]
    log(f"mask head: {len(losses)} epochs, best validation loss {min(losses):.4f}")
    return {"epochs": len(losses), "val_loss": float(min(losses))}


# --- reading a mask -------------------------------------------------------------------------------


def upsampled(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A probability grid spread bilinearly over (height, width) pixels."""
    height, width = size
    return np.asarray(Image.fromarray(grid.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR))


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else 1.0


def lesion_box(grid: np.ndarray, present: float = PRESENT, margin: float = MARGIN, min_side: float = MIN_SIDE) -> Box:
    """The lesion's box in the model input, as fractions (left, top, right, bottom), widened by
    ``margin``; the whole input when no cell is lesion."""
    rows, cols = np.nonzero(grid >= present)
    if rows.size == 0:
        return (0.0, 0.0, 1.0, 1.0)
    height, width = grid.shape
    left, right = cols.min() / width, (cols.max() + 1) / width
    top, bottom = rows.min() / height, (rows.max() + 1) / height
    spans = []
    for low, high in ((left, right), (top, bottom)):
        side = max((high - low) * (1 + 2 * margin), min_side)
        centre = (low + high) / 2
        low, high = centre - side / 2, centre + side / 2
        shift = max(0.0, -low) - max(0.0, high - 1.0)  # slide back inside the frame
        spans.append((max(0.0, low + shift), min(1.0, high + shift)))
    (left, right), (top, bottom) = spans
    return (left, top, right, bottom)


def to_picture_box(box: Box, picture_size: tuple[int, int], card: ModelCard) -> Box:
    """A box in the model input, as fractions of the picture (the input shows ``input_box`` of it)."""
    seen = input_box(picture_size, card.input_size, card.geometry)
    width, height = seen[2] - seen[0], seen[3] - seen[1]
    return (seen[0] + box[0] * width, seen[1] + box[1] * height, seen[0] + box[2] * width, seen[1] + box[3] * height)


def framed(picture: Image.Image, box: Box) -> Image.Image:
    """The picture cut to a box of fractions."""
    width, height = picture.size
    return picture.crop((round(box[0] * width), round(box[1] * height), round(box[2] * width), round(box[3] * height)))


def lesion_area(grid: np.ndarray) -> float:
    """The lesion's share of the model input: the mean of the cells' lesion probabilities (the head
    was trained on each cell's lesion share). Relative to the frame: no ruler, no millimetres."""
    return float(np.mean(grid))


def outline(grid: np.ndarray, picture_size: tuple[int, int], card: ModelCard) -> dict:
    """What a prediction stores of the located lesion: its grid, its share of the part of the
    picture the model saw, and its box (with the framing margin) as fractions of the picture."""
    return {
        "grid": np.round(grid, 3).tolist(),
        "area": round(lesion_area(grid), 4),
        "box": [round(edge, 4) for edge in to_picture_box(lesion_box(grid), picture_size, card)],
    }


def served_head(version_dir: Path, card: ModelCard):
    """(the mask head, the layer it reads) of a version whose card has a lesion_mask entry, else None."""
    import keras

    entry = card.raw.get("lesion_mask")
    if not entry:
        return None
    path = Path(version_dir) / entry["file"]
    if not path.is_file():
        raise ValueError(f"its card has a lesion mask, but {path} is missing: run training.lesion_mask fit")
    return keras.saving.load_model(path, compile=False), entry["layer"]


def load_mask_model(version_dir: Path, card: ModelCard, served=None):
    """pixels -> lesion probability per cell: the version's network up to the head's layer, then the head."""
    import keras

    head, layer = served_head(version_dir, card)
    if served is None:
        served = keras.saving.load_model(Path(version_dir) / MODEL_FILENAME, compile=False)
    return mask_model(activations_model(served, layer), head)


def _save_without_optimizer(head, path: Path) -> None:
    """The weights serve; the optimizer's state (twice their size) would only travel with them."""
    import keras

    served = keras.models.clone_model(head)
    served.set_weights(head.get_weights())
    served.save(path)


# --- the commands -------------------------------------------------------------------------------


def fit_version(version_dir: Path, data_dir: str, split_file: str, layer: str = MASK_LAYER, log=print) -> dict:
    """Fit the version's mask head on train, measure it on validation, save it and its card entry."""
    import keras

    from training.robustness import load_originals, split_rows

    card = read_card(version_dir)
    served = keras.saving.load_model(version_dir / MODEL_FILENAME, compile=False)
    features = activations_model(served, layer)
    grid = tuple(int(s) for s in features.output_shape[1:3])
    parts = {}
    for part in ("train", "val"):
        ids = split_rows(split_file, part)["image_id"].tolist()
        originals = load_originals(data_dir, ids)
        pictures = np.stack([to_model_input(o.picture, card.input_size, card.geometry) for o in originals])
        masks = [o.mask for o in originals]
        targets = np.stack([lesion_grid(mask, card.input_size, card.geometry, grid) for mask in masks])
        activations = features.predict(pictures, batch_size=64, verbose=0)
        parts[part] = (activations, targets, masks, pictures)
        log(f"{part}: {len(ids)} pictures, activations {activations.shape[1:]}")
    head = build_head(parts["train"][0].shape[1:])
    fitted = fit_head(head, parts["train"][:2], parts["val"][:2], log)
    model = mask_model(features, head)
    grids = model.predict(parts["val"][3], batch_size=64, verbose=0)
    scores, area_errors = [], []
    for predicted, mask in zip(grids, parts["val"][2], strict=True):
        truth = to_model_input(mask_picture(mask), card.input_size, card.geometry)[..., 0] >= LESION_LEVEL
        scores.append(iou(upsampled(predicted, truth.shape) >= PRESENT, truth))
        area_errors.append(abs(lesion_area(predicted) - float(truth.mean())))
    entry = {
        "file": MASK_FILENAME,
        "layer": layer,
        "grid": list(grid),
        "method": "sigmoid head (3x3 conv, 64, then 1x1) on the version's frozen activations, trained on the "
        "HAM10000 lesion masks of the train split (soft cell targets, binary cross-entropy)",
        "val_iou_mean": round(float(np.mean(scores)), 4),
        "val_iou_median": round(float(np.median(scores)), 4),
        # The lesion's share of the input (what a follow-up compares between visits) against the mask's.
        "val_area_mean_abs_error": round(float(np.mean(area_errors)), 4),
        "measured_on": f"validation, {len(scores)} pictures",
        **fitted,
    }
    _save_without_optimizer(head, version_dir / MASK_FILENAME)
    raw = json.loads((version_dir / CARD_FILENAME).read_text(encoding="utf-8"))
    write_card(version_dir, {**raw, "lesion_mask": entry})
    return entry


def framing_report(version_dir: Path, data_dir: str, split_file: str, shifts: list[str] | None, limit, log=print):
    """Validation balanced accuracy and malignant sensitivity with the whole picture and framed around the
    lesion, on clean validation and every shift."""
    import tensorflow as tf

    from training.robustness import (
        CLEAN,
        DEFAULT_SEED,
        VersionModel,
        condition_metrics,
        labels_of,
        load_originals,
        mean_over,
        split_rows,
    )
    from training.shifts import SHIFTS, apply_shift

    model = VersionModel(version_dir)
    card = model.card
    mask = load_mask_model(version_dir, card)
    locate = tf.function(lambda x: mask(x, training=False), reduce_retracing=True)
    rows = split_rows(split_file, "val", limit, DEFAULT_SEED)
    ids, labels = rows["image_id"].tolist(), labels_of(rows)
    originals = load_originals(data_dir, ids)
    names = [CLEAN, *(shifts or list(SHIFTS))]
    report = {"whole": {}, "framed": {}}
    for name in names:
        began = time.perf_counter()
        pictures = [o.picture if name == CLEAN else apply_shift(name, *o, DEFAULT_SEED, i).picture
                    for o, i in zip(originals, ids, strict=True)]  # fmt: skip
        whole = np.stack([to_model_input(picture, card.input_size, card.geometry) for picture in pictures])
        grids = np.concatenate([locate(whole[s : s + 64]).numpy() for s in range(0, len(whole), 64)])
        crops = [framed(p, to_picture_box(lesion_box(g), p.size, card)) for p, g in zip(pictures, grids, strict=True)]
        reframed = np.stack([to_model_input(crop, card.input_size, card.geometry) for crop in crops])
        for kind, pixels in (("whole", whole), ("framed", reframed)):
            probabilities = np.concatenate(
                [model.features_and_probabilities(pixels[s : s + 64])[1] for s in range(0, len(pixels), 64)]
            )
            report[kind][name] = condition_metrics(
                labels, probabilities, card.malignant_threshold, None, card.malignancy
            )
        whole_score, framed_score = (report[kind][name]["balanced_accuracy"] for kind in ("whole", "framed"))
        log(f"  {name:<18} whole {whole_score:.3f}  framed {framed_score:.3f}  ({time.perf_counter() - began:.0f} s)")
    shifted = [name for name in names if name != CLEAN]
    return {
        "version": card.version,
        "split": "val",
        "n_images": len(ids),
        "framing": {"present": PRESENT, "margin": MARGIN, "min_side": MIN_SIDE},
        "conditions": report,
        "mean_over_shifts": {kind: mean_over(report[kind], shifted) for kind in report},
    }


def main(argv: list[str] | None = None) -> None:
    parser = version_command(__doc__, masks=True)
    parser.add_argument("command", choices=("fit", "framing"))
    parser.add_argument("--shifts", help="framing: comma-separated shifts (default: all)")
    parser.add_argument("--limit", type=int, help="framing: a seeded random sample of validation")
    parser.add_argument("--out", type=Path, help="framing: where to write the report")
    args = parser.parse_args(argv)
    if args.command == "fit":
        print(json.dumps(fit_version(args.version_dir, args.data_dir, args.split_file), indent=2))
        return
    shifts = [s.strip() for s in args.shifts.split(",")] if args.shifts else None
    report = framing_report(args.version_dir, args.data_dir, args.split_file, shifts, args.limit)
    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(json.dumps(report["mean_over_shifts"], indent=2))


if __name__ == "__main__":
    main()
