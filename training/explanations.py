"""Heatmap evaluation: do a version's maps point at the lesion, and are they faithful to the model?

On the validation split with the lesion masks, for Grad-CAM of the top class on the last
feature maps (the worker's default map, computed as its compiled call computes it) and
for finer alternatives on earlier blocks (Grad-CAM, Grad-CAM++ and Layer-CAM on
MobileNetV2's ``block_13_expand_relu``, and Layer-CAM on ``block_12_expand_relu``, both
10x10 at 150 px; from tf.GradientTape), it measures:

- pointing game: the hottest point of the map, upsampled bilinearly over the part of
  the picture the model saw (``training.robustness.card_input_box``, as the result page
  places it), lies inside the lesion;
- heat in lesion: the share of the upsampled map's heat inside the lesion, beside the
  lesion's share of that area (the baseline it must beat);
- the centre baseline: does the centre of what the model saw lie in the lesion;
- faithfulness: blurring the map's hottest 10 % of the model's input pixels must lower
  the top class's probability more than blurring a random 10 % (a random map of the
  same grid, upsampled the same way, so the random region has the same granularity).

    python -m training.explanations models/mobilenetv2-150-v3 --data-dir ../shared/data/ham10000 \\
        [--method gradcam,layercam@block_13_expand_relu] [--limit 400] [--shift zoom_out_vignette] [--out ...] \\
        [--write-card layercam@block_12_expand_relu]

A method is ``gradcam`` (Grad-CAM on the last feature maps, as served) or ``<kind>@<layer>``
with kind one of gradcam, gradcam++, layercam and the layer's name (inside a nested base too).

``--write-card METHOD`` makes METHOD the map the version serves: ``gradcam`` or
``layercam@<layer>``. Its maps are then computed by the served code
(training.layercam.layer_cam_model for Layer-CAM, the one graph both backends run), and
the card gets ``explanation``: the method, the layer and these validation figures, which
the result page quotes. Re-export the LiteRT file afterwards (training.export_litert
follows the card). Figures come from the clean validation split only.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from training.card import CARD_FILENAME, MODEL_FILENAME, read_card, write_card
from training.data import DEFAULT_SPLIT_FILE, SPLIT_FILE_IN_REPO
from training.layercam import GRAD_CAM, LAYER_CAM, find_layer, rebuilt_with
from training.robustness import (
    DEFAULT_SEED,
    card_input_box,
    load_originals,
    machine,
    model_input,
    split_rows,
)
from training.shifts import LESION_LEVEL, SHIFTS, apply_shift

REPORT_FILENAME = "explanations.json"
SERVED_GRAD_CAM = "gradcam"  # the worker's default map: Grad-CAM on the feature maps the pooling reads
KINDS = ("gradcam", "gradcam++", "layercam")
DEFAULT_METHODS = (
    SERVED_GRAD_CAM,
    "gradcam@block_13_expand_relu",
    "gradcam++@block_13_expand_relu",
    "layercam@block_13_expand_relu",
    "layercam@block_12_expand_relu",
)
TOP_SHARE = 0.10  # the share of the input's pixels blurred by the faithfulness check
# Blur radius as a share of the input's shorter side: 6 px at 150, enough to wipe out
# a lesion's network and globules while keeping its colour.
BLUR_SHARE = 0.04
BATCH_SIZE = 32


def parse_method(spec: str) -> tuple[str, str | None]:
    """'gradcam' -> ('gradcam', None), the shipped map; 'layercam@block_13_expand_relu' -> (kind, layer)."""
    if spec == SERVED_GRAD_CAM:
        return SERVED_GRAD_CAM, None
    kind, at, layer = spec.partition("@")
    if not at or kind not in KINDS or not layer:
        raise ValueError(f"unknown method {spec!r}: use {SERVED_GRAD_CAM!r} or <kind>@<layer> with kind one of {KINDS}")
    return kind, layer


def servable(spec: str) -> tuple[str, str | None]:
    """The card's (method, layer) for a map the worker can serve: 'gradcam' or 'layercam@<layer>'."""
    kind, layer = parse_method(spec)
    if layer is None:
        return GRAD_CAM, None
    if kind == "layercam":
        return LAYER_CAM, layer
    raise ValueError(f"the worker serves {SERVED_GRAD_CAM!r} or layercam@<layer>, not {spec!r}")


# --- the maps --------------------------------------------------------------------------------


def served_grad_cam(model) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(pixels) -> (probabilities, heatmaps): the Grad-CAM the worker serves (training.gradcam)."""
    import tensorflow as tf

    from training.gradcam import grad_cam_function

    grad_cam = grad_cam_function(model)

    def call(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, _, heatmaps = grad_cam(tf.convert_to_tensor(pixels, dtype=tf.float32))
        return probabilities.numpy(), heatmaps.numpy()

    return call


def activations_and_logits(model, layer_name: str):
    """A model: pixels -> [the layer's activations, the logits], sharing the version's weights."""
    import keras

    layer, holder = find_layer(model, layer_name)
    pixels, (activations,), logits, _, _ = rebuilt_with(model, holder, [layer.output])
    return keras.Model(pixels, [activations, logits])


def cam(kind: str, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Class activation maps (N, h, w), each scaled to peak 1 (all 0 when nothing is positive).

    ``activations`` and ``gradients`` (of the top class's logit) are (N, h, w, channels).
    gradcam (Selvaraju et al. 2017): channels weighted by their mean gradient;
    gradcam++ (Chattopadhay et al. 2018): by positive gradients weighted per position;
    layercam (Jiang et al. 2021): every position weighted by its own positive gradient.
    """
    a, g = np.asarray(activations, dtype=np.float64), np.asarray(gradients, dtype=np.float64)
    if kind == "gradcam":
        maps = (a * g.mean(axis=(1, 2), keepdims=True)).sum(axis=-1)
    elif kind == "gradcam++":
        g2, g3 = g**2, g**3
        denominator = 2 * g2 + a.sum(axis=(1, 2), keepdims=True) * g3
        alpha = np.divide(g2, denominator, out=np.zeros_like(g), where=(g != 0) & (denominator != 0))
        weights = (alpha * np.maximum(g, 0)).sum(axis=(1, 2), keepdims=True)
        maps = (a * weights).sum(axis=-1)
    elif kind == "layercam":
        maps = (a * np.maximum(g, 0)).sum(axis=-1)
    else:
        raise ValueError(f"unknown kind {kind!r}; known: {KINDS}")
    maps = np.maximum(maps, 0)
    peak = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def layer_cams(model, layer_name: str, kinds: tuple[str, ...]):
    """(pixels) -> {kind: maps (N, h, w)} for the top class, from one forward and one backward pass."""
    import tensorflow as tf

    both = activations_and_logits(model, layer_name)

    @tf.function(reduce_retracing=True)
    def gradients_at_layer(pixels):
        with tf.GradientTape() as tape:
            tape.watch(pixels)  # records every op, frozen base layers included
            activations, logits = both(pixels, training=False)
            top_logits = tf.gather(logits, tf.argmax(logits, axis=1), axis=1, batch_dims=1)
        return activations, tape.gradient(top_logits, activations)

    def call(pixels: np.ndarray) -> dict[str, np.ndarray]:
        activations, gradients = gradients_at_layer(tf.convert_to_tensor(pixels, dtype=tf.float32))
        return {kind: cam(kind, activations.numpy(), gradients.numpy()) for kind in kinds}

    return call


def served_layer_cam(model, layer_name: str) -> Callable[[np.ndarray], np.ndarray]:
    """(pixels) -> Layer-CAM maps (N, h, w) as the worker serves them (training.layercam.layer_cam_model)."""
    import tensorflow as tf

    from training.layercam import layer_cam_model

    explained = layer_cam_model(model, layer_name)
    call = tf.function(lambda x: explained(x, training=False), reduce_retracing=True)
    return lambda pixels: call(tf.convert_to_tensor(pixels, dtype=tf.float32))[2].numpy()


def compiled_probabilities(model) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda pixels: call(tf.convert_to_tensor(pixels, dtype=tf.float32)).numpy()


# --- the measures (NumPy: tested on hand-made maps and masks) ---------------------------------


def upsample(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) map spread bilinearly over (width, height) pixels, cell centres on pixel centres: as a browser does."""
    image = Image.fromarray(np.asarray(grid, dtype=np.float32), mode="F")
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR))


def pointing_hit(heat: np.ndarray, lesion: np.ndarray) -> bool:
    """The hottest pixel lies in the lesion; an empty map (all 0) points nowhere."""
    if heat.max() <= 0:
        return False
    return bool(lesion.flat[int(np.argmax(heat))])


def heat_in_lesion(heat: np.ndarray, lesion: np.ndarray) -> float | None:
    """Share of the heat inside the lesion; None for an empty map."""
    total = float(heat.sum())
    return None if total <= 0 else float(heat[lesion].sum()) / total


def centre_in_lesion(lesion: np.ndarray) -> bool:
    height, width = lesion.shape
    return bool(lesion[height // 2, width // 2])


def hottest(heat: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of exactly round(share * pixels) hottest pixels; ties broken at random."""
    count = int(round(share * heat.size))
    jitter = rng.uniform(0, 1e-6, heat.shape)  # far below any real difference between two pixels
    order = np.argsort(-(heat.astype(np.float64) + jitter), axis=None)
    chosen = np.zeros(heat.size, dtype=bool)
    chosen[order[:count]] = True
    return chosen.reshape(heat.shape)


def blurred(pixels: np.ndarray, radius: float) -> np.ndarray:
    """(N, H, W, 3) uint8 pixels, each picture Gaussian-blurred."""
    out = np.empty(pixels.shape, dtype=np.uint8)
    for i, picture in enumerate(pixels):
        image = Image.fromarray(np.clip(np.rint(picture), 0, 255).astype(np.uint8))
        out[i] = np.asarray(image.filter(ImageFilter.GaussianBlur(radius)))
    return out


def probability_drops(
    pixels: np.ndarray,
    replacement: np.ndarray,
    regions: np.ndarray,
    top: np.ndarray,
    before: np.ndarray,
    probabilities_of: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """(N,) ``before`` (P(top class) on the pictures) minus P(top class) with ``regions`` taken from ``replacement``.

    pixels, replacement: (N, H, W, 3); regions: (N, H, W) booleans; top: (N,) class indices.
    """
    changed = np.where(regions[..., None], replacement, pixels).astype(np.float32)
    after = probabilities_of(changed)
    return before - after[np.arange(len(top)), top]


def faithfulness(map_drops: np.ndarray, random_drops: np.ndarray) -> dict:
    return {
        "map_drop": float(np.mean(map_drops)),
        "random_drop": float(np.mean(random_drops)),
        "map_beats_random": float(np.mean(map_drops > random_drops)),
    }


# --- the report ------------------------------------------------------------------------------


def _map_callers(model, parsed: dict[str, tuple[str, str | None]], served: str | None) -> list[Callable]:
    """Callables (pixels) -> {spec: maps} covering every method: one GradientTape pass per layer
    gives every kind of map on it; Grad-CAM as served, and the ``served`` map, by the served code."""
    callers = []
    by_layer: dict[str, dict[str, str]] = {}
    for spec, (kind, layer) in parsed.items():
        if layer is None:
            grad_cam = served_grad_cam(model)
            callers.append(lambda pixels, spec=spec, grad_cam=grad_cam: {spec: grad_cam(pixels)[1]})
        elif spec == served:
            layer_cam = served_layer_cam(model, layer)
            callers.append(lambda pixels, spec=spec, layer_cam=layer_cam: {spec: layer_cam(pixels)})
        else:
            by_layer.setdefault(layer, {})[spec] = kind
    for layer, kinds in by_layer.items():
        tape = layer_cams(model, layer, tuple(set(kinds.values())))
        callers.append(lambda pixels, kinds=kinds, tape=tape: _by_spec(tape(pixels), kinds))
    return callers


def _by_spec(by_kind: dict[str, np.ndarray], kinds: dict[str, str]) -> dict[str, np.ndarray]:
    return {spec: by_kind[kind] for spec, kind in kinds.items()}


def _drops(pixels, replacement, regions: list[np.ndarray], top, before, probabilities_of) -> np.ndarray:
    """``probability_drops`` batch by batch."""
    return np.concatenate(
        [
            probability_drops(
                pixels[s : s + BATCH_SIZE],
                replacement[s : s + BATCH_SIZE],
                np.stack(regions[s : s + BATCH_SIZE]),
                top[s : s + BATCH_SIZE],
                before[s : s + BATCH_SIZE],
                probabilities_of,
            )
            for s in range(0, len(pixels), BATCH_SIZE)
        ]
    )


def _pixel_box(box: tuple[float, ...], size: tuple[int, int]) -> tuple[int, int, int, int]:
    width, height = size
    left, top, right, bottom = box
    return (round(left * width), round(top * height), round(right * width), round(bottom * height))


def _rng(seed: int, method: str, image_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(method.encode()), zlib.crc32(image_id.encode())])


def explanation_report(
    version_dir: Path | str,
    data_dir: Path | str,
    split_file: Path | str = DEFAULT_SPLIT_FILE,
    methods: list[str] | None = None,
    limit: int | None = None,
    seed: int = DEFAULT_SEED,
    shift: str | None = None,
    split: str = "val",
    log: Callable[[str], None] = print,
    served: str | None = None,
) -> dict:
    """The report; ``served`` (one of ``methods``, or added to them): that map computed by the served code."""
    import keras

    methods = list(DEFAULT_METHODS) if methods is None else methods
    if served is not None:
        servable(served)
        methods = methods if served in methods else [*methods, served]
    parsed = {spec: parse_method(spec) for spec in methods}
    if shift is not None and shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}; known shifts: {', '.join(SHIFTS)}")
    started = time.perf_counter()
    version_dir = Path(version_dir)
    card = read_card(version_dir)
    model = keras.saving.load_model(version_dir / MODEL_FILENAME, compile=False)
    rows = split_rows(split_file, split, limit, seed)
    image_ids = rows["image_id"].tolist()
    log(f"{card.version}: {len(rows)} {split} images, methods {', '.join(methods)}")

    pictures, lesions = [], []
    for image_id, original in zip(image_ids, load_originals(data_dir, image_ids), strict=True):
        picture, mask = original if shift is None else apply_shift(shift, *original, seed, image_id)
        seen = _pixel_box(card_input_box(picture.size, card), picture.size)
        pictures.append(model_input(picture, card).astype(np.uint8))  # whole values 0..255: exact in uint8
        lesions.append(np.asarray(mask.crop(seen)) >= LESION_LEVEL)
    pixels = np.stack(pictures)
    height, width = card.input_size
    probabilities_of = compiled_probabilities(model)
    replacement = blurred(pixels, BLUR_SHARE * min(height, width))

    maps: dict[str, list[np.ndarray]] = {spec: [] for spec in methods}
    probabilities = []
    callers = _map_callers(model, parsed, served)
    for start in range(0, len(pixels), BATCH_SIZE):
        batch = pixels[start : start + BATCH_SIZE].astype(np.float32)
        probabilities.append(probabilities_of(batch))
        for caller in callers:
            for spec, spec_maps in caller(batch).items():
                maps[spec].append(spec_maps)
    probabilities = np.concatenate(probabilities)
    top = probabilities.argmax(axis=1)
    top_probability = probabilities[np.arange(len(top)), top]

    area = np.array([lesion.mean() for lesion in lesions])
    report = {
        "version": card.version,
        "split": split,
        "split_file": SPLIT_FILE_IN_REPO if Path(split_file) == DEFAULT_SPLIT_FILE else str(split_file),
        "n_images": len(rows),
        "seed": seed,
        "shift": shift or "none (clean)",
        "lesion_area_share": float(area.mean()),
        "centre_in_lesion": float(np.mean([centre_in_lesion(lesion) for lesion in lesions])),
        "faithfulness_test": (
            f"blur (Gaussian, radius {BLUR_SHARE * min(height, width):.1f} px) the hottest {TOP_SHARE:.0%} of the "
            f"model's input pixels, or the hottest {TOP_SHARE:.0%} of a random map on the same grid; "
            "drop = P(top class) before minus after"
        ),
        "methods": {},
    }
    for spec, (kind, layer) in parsed.items():
        method_maps = np.concatenate(maps[spec])
        hits, shares, regions, random_regions = [], [], [], []
        for i, grid in enumerate(method_maps):
            lesion = lesions[i]
            heat = upsample(grid, (lesion.shape[1], lesion.shape[0]))
            hits.append(pointing_hit(heat, lesion))
            shares.append(heat_in_lesion(heat, lesion))
            rng = _rng(seed, spec, image_ids[i])
            regions.append(hottest(upsample(grid, (width, height)), TOP_SHARE, rng))
            random_grid = rng.uniform(0, 1, grid.shape)
            random_regions.append(hottest(upsample(random_grid, (width, height)), TOP_SHARE, rng))
        map_drops = _drops(pixels, replacement, regions, top, top_probability, probabilities_of)
        random_drops = _drops(pixels, replacement, random_regions, top, top_probability, probabilities_of)
        filled = [(share, a) for share, a in zip(shares, area, strict=True) if share is not None]
        report["methods"][spec] = {
            "kind": kind,
            "layer": layer or "the feature maps the pooling reads (as served)",
            "computed_by": "the served code" if layer is None or spec == served else "tf.GradientTape",
            "grid": list(method_maps.shape[1:]),
            "pointing_game": float(np.mean(hits)),
            "heat_in_lesion": float(np.mean([share for share, _ in filled])) if filled else None,
            "heat_beats_area": float(np.mean([share > a for share, a in filled])) if filled else None,
            "empty_maps": float(np.mean([share is None for share in shares])),
            "faithfulness": faithfulness(map_drops, random_drops),
        }
        entry = report["methods"][spec]
        log(
            f"  {spec:<32} pointing {entry['pointing_game']:.3f}  heat in lesion {entry['heat_in_lesion']:.3f}  "
            f"faithful {entry['faithfulness']['map_beats_random']:.3f}"
        )
    report["machine"] = machine()
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def card_entry(report: dict, spec: str) -> dict:
    """The card's ``explanation``: the map the version serves and its figures, from a clean validation report."""
    if report["split"] != "val" or report["shift"] != "none (clean)":
        raise ValueError(
            f"a card's heatmap figures come from clean validation, not {report['split']} / {report['shift']}"
        )
    method, layer = servable(spec)
    entry = report["methods"][spec]
    return {
        "method": method,
        "layer": layer,  # None for Grad-CAM: the feature maps the pooling reads
        "grid": entry["grid"],
        "figures": {
            "pointing_game": entry["pointing_game"],
            "heat_in_lesion": entry["heat_in_lesion"],
            "lesion_area": report["lesion_area_share"],
            "centre_baseline": report["centre_in_lesion"],
            "heat_beats_area": entry["heat_beats_area"],
            "faithfulness": entry["faithfulness"],
            "measured_on": "validation",
            "n": report["n_images"],
            "split_file": report["split_file"],
            "seed": report["seed"],
        },
        "how_measured": (
            f"python -m training.explanations <version> --write-card {spec}: pointing game = the map's hottest "
            "point, spread over the part of the picture the model saw, lies in the lesion mask; heat in lesion = "
            "the share of the map's heat inside the mask (lesion_area: the mask's share of that part); "
            "centre_baseline = the centre of that part lies in the mask; faithfulness: "
            f"{report['faithfulness_test']}"
        ),
    }


def write_card_entry(version_dir: Path | str, entry: dict) -> Path:
    """Set the card's ``explanation`` (every other field as it was) and write the card."""
    path = Path(version_dir) / CARD_FILENAME
    data = json.loads(path.read_text(encoding="utf-8"))
    data["explanation"] = entry
    write_card(version_dir, data)
    return path


def summary_table(report: dict) -> str:
    header = ("method", "grid", "pointing", "heat in lesion", "drop map", "drop random", "map beats random")
    rows = [header]
    for spec, entry in report["methods"].items():
        f = entry["faithfulness"]
        heat = "-" if entry["heat_in_lesion"] is None else f"{entry['heat_in_lesion']:.3f}"
        grid = "x".join(str(side) for side in entry["grid"])
        rows.append(
            (
                spec,
                grid,
                f"{entry['pointing_game']:.3f}",
                heat,
                f"{f['map_drop']:.3f}",
                f"{f['random_drop']:.3f}",
                f"{f['map_beats_random']:.3f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.append(
        f"baselines: centre in lesion {report['centre_in_lesion']:.3f}, lesion area share "
        f"{report['lesion_area_share']:.3f}; {report['version']}, {report['split']} split, N = {report['n_images']}, "
        f"shift {report['shift']}, {report['seconds']:.0f} s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version_dir", type=Path)
    parser.add_argument("--data-dir", required=True, help="HAM10000 folder (metadata CSV, images/, masks/)")
    parser.add_argument("--split-file", default=str(DEFAULT_SPLIT_FILE))
    parser.add_argument(
        "--split", choices=("val", "test"), default="val", help="val (default); test only to score the chosen map"
    )
    parser.add_argument("--method", default=",".join(DEFAULT_METHODS), help="comma-separated methods (see above)")
    parser.add_argument("--limit", type=int, help="a seeded random sample of this many images")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--shift", help=f"score the maps on shifted pictures: one of {', '.join(SHIFTS)}")
    parser.add_argument("--out", type=Path, help=f"default: <version>/report/{REPORT_FILENAME}")
    parser.add_argument(
        "--write-card",
        metavar="METHOD",
        help="serve this map (gradcam or layercam@<layer>): its clean validation figures go in the card",
    )
    args = parser.parse_args(argv)

    methods = [spec.strip() for spec in args.method.split(",") if spec.strip()]
    if args.write_card is not None:
        if args.split != "val" or args.shift is not None:
            parser.error("--write-card stores clean validation figures: leave out --split test and --shift")
        try:
            servable(args.write_card)
        except ValueError as exc:
            parser.error(str(exc))
    try:
        report = explanation_report(
            args.version_dir,
            args.data_dir,
            args.split_file,
            methods,
            args.limit,
            args.seed,
            args.shift,
            args.split,
            served=args.write_card,
        )
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    out = args.out or args.version_dir / "report" / REPORT_FILENAME
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(summary_table(report))
    print(f"report written to {out}")
    if args.write_card is not None:
        card_path = write_card_entry(args.version_dir, card_entry(report, args.write_card))
        print(f"{card_path}: serves {args.write_card}; re-export its LiteRT file: python -m training.export_litert")


if __name__ == "__main__":
    main()
