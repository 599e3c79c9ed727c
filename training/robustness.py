"""Framing-robustness report: a model version on clean validation and on every picture shift.

HAM10000's framing, scale and resolution are uniform, so clean validation cannot show
how a model reads a picture from another centre or dermatoscope. This command runs a
model version on the validation split as it is and under every shift of
``training.shifts`` (zoomed in and out, off-centre, rotated, vignetted, another aspect
ratio, high resolution, JPEG, white balance, blur), each picture fed exactly as the
worker feeds an upload (``model_input``), and reports per condition: balanced
accuracy, macro F1, melanoma recall (top class), malignant sensitivity and specificity
at the card's threshold, and the share the version's out-of-distribution check flags;
then the mean over the shifts. Choose between recipes on clean validation together
with that mean, never on the test split.

    python -m training.robustness models/mobilenetv2-150-v3 --data-dir ../shared/data/ham10000 \\
        [--shifts zoom_in,blur] [--limit 400] [--out report.json] [--write-card]
        [--ensemble-with models/another-seed]   # a probe: probabilities averaged with another version's

Writes ``<version>/report/robustness.json`` (or ``--out``) and, with ``--write-card``,
a compact summary as the card's ``robustness`` entry.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from training.card import CARD_FILENAME, MODEL_FILENAME, CardError, ModelCard, read_card, write_card
from training.classes import CLASSES
from training.commands import add_split_choice, version_command
from training.data import DEFAULT_SPLIT_FILE, SPLIT_FILE_IN_REPO, image_path, read_split
from training.malignancy import SUMMED, MalignancyScore
from training.ood import FLAGGED_ABOVE, load_detector
from training.preprocessing import GEOMETRIES, check_geometry, input_box, to_model_input
from training.shifts import SHIFTS, Shifted, apply_shift, describe

REPORT_FILENAME = "robustness.json"
MASKS_DIRNAME = "masks"
DEFAULT_SEED = 17
BATCH_SIZE = 64  # one compiled call per 64 pictures: ~20 MB of float32 input at 150x150
CLEAN = "clean"


# --- the model's input, as serving builds it --------------------------------------------------


def model_input(picture: Image.Image, card: ModelCard) -> np.ndarray:
    """float32 RGB pixels (H, W, 3) in 0..255, the picture as the version's serving path feeds it."""
    return to_model_input(picture, card.input_size, card.geometry)


def card_input_box(image_size: tuple[int, int], card: ModelCard) -> tuple[float, float, float, float]:
    """The part of a (width, height) picture that ``model_input`` shows the model, as fractions."""
    return input_box(image_size, card.input_size, card.geometry)


# --- the data --------------------------------------------------------------------------------


def split_rows(split_file: Path | str, split: str = "val", limit: int | None = None, seed: int = DEFAULT_SEED):
    """The split's rows; with ``limit``, a seeded random sample of them (the CSV is ordered by class)."""
    table = read_split(split_file)
    rows = table[table["split"] == split]
    if rows.empty:
        raise ValueError(f"{split_file} has no {split!r} rows")
    if limit is not None and limit < len(rows):
        rows = rows.sample(n=limit, random_state=seed).sort_index()
    return rows.reset_index(drop=True)


def _sample_description(split_file: Path | str, split: str, n_images: int, seed: int) -> str:
    table = read_split(split_file)
    total = int((table["split"] == split).sum())
    return "all" if n_images == total else f"a random {n_images} of the split's {total} (seed {seed})"


def mask_path(data_dir: Path | str, image_id: str) -> Path:
    return Path(data_dir) / MASKS_DIRNAME / f"{image_id}.png"


def load_originals(data_dir: Path | str, image_ids: list[str]) -> list[Shifted]:
    """Every picture (RGB) and its lesion mask (L), decoded once and kept for every condition."""
    if not (Path(data_dir) / MASKS_DIRNAME).is_dir():
        raise FileNotFoundError(f"{data_dir} has no {MASKS_DIRNAME}/ folder: the shifts need each picture's mask")
    originals = []
    for image_id in image_ids:
        with Image.open(image_path(data_dir, image_id)) as picture, Image.open(mask_path(data_dir, image_id)) as mask:
            originals.append(Shifted(picture.convert("RGB"), mask.convert("L")))
    return originals


def labels_of(rows: pd.DataFrame) -> np.ndarray:
    return np.array([CLASSES.index(code) for code in rows["dx"]], dtype=np.int64)


def machine() -> str:
    """The CPU (or what the platform says) and the cores visible, for reports that quote run times."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores visible"
    except OSError:
        pass
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible"


# --- the model -------------------------------------------------------------------------------


class VersionModel:
    """A version's calibrated model as one compiled call, with its out-of-distribution check."""

    def __init__(self, version_dir: Path | str, geometry: str | None = None, flips: bool = False):
        import keras
        import tensorflow as tf

        self.version_dir = Path(version_dir)
        self.card = read_card(self.version_dir)
        if geometry is not None:  # a probe: the version shown its pictures another way than its card says
            raw = {**self.card.raw, "input": {"geometry": check_geometry(geometry)}}
            self.card = replace(self.card, raw=raw)
        self.model = keras.saving.load_model(self.version_dir / MODEL_FILENAME, compile=False)
        described = self.card.raw.get("ood")
        self.detector = load_detector(self.version_dir / described["file"]) if described else None
        self.has_features = "pool" in {layer.name for layer in self.model.layers}
        if self.detector is not None and not self.has_features:
            raise CardError(f"{self.version_dir}: the card has an ood check but the model has no 'pool' features")
        outputs = [self.model.output]
        if self.has_features:
            outputs.insert(0, self.model.get_layer("pool").output)
        both = keras.Model(self.model.inputs, outputs)
        height, width = self.card.input_size
        spec = [tf.TensorSpec([None, height, width, 3], tf.float32)]

        def call(x):
            outputs = both(x, training=False)
            if not flips:
                return outputs
            # Test-time averaging over the picture and its three mirror images (a lesion has no "up"):
            # probabilities averaged, features (for the OOD check) of the picture as it is.
            views = [tf.reverse(x, [2]), tf.reverse(x, [1]), tf.reverse(x, [1, 2])]
            probabilities = [outputs[-1], *(both(view, training=False)[-1] for view in views)]
            return [*outputs[:-1], tf.add_n(probabilities) / len(probabilities)]

        self._call = tf.function(call, input_signature=spec, reduce_retracing=True)

    def features_and_probabilities(self, pixels: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Pooled features (N, d) or None, and calibrated probabilities (N, classes), from one compiled call."""
        import tensorflow as tf

        outputs = [output.numpy() for output in self._call(tf.convert_to_tensor(pixels, dtype=tf.float32))]
        return (outputs[0], outputs[1]) if self.has_features else (None, outputs[0])

    def flagged(self, features: np.ndarray | None, pixels: np.ndarray) -> np.ndarray | None:
        """(N,) out of distribution by the version's check; None when the version has none."""
        if self.detector is None or features is None:
            return None
        return self.detector.score(features, pixels) > FLAGGED_ABOVE


class EnsembleModel:
    """A probe: versions of one geometry with their calibrated probabilities averaged (a seed ensemble).

    The first version's out-of-distribution check and card stand for the ensemble; its
    malignant threshold is chosen again on the ensemble's clean probabilities (see
    ``robustness_report``), as a shipped card's is on its own. It costs one forward pass
    per member."""

    def __init__(self, members: list[VersionModel]):
        first = members[0]
        for other in members[1:]:
            if (other.card.geometry, other.card.input_size) != (first.card.geometry, first.card.input_size):
                raise ValueError(
                    f"an ensemble's versions must share geometry and input size: {first.card.version} has "
                    f"{first.card.geometry} {first.card.input_size}, {other.card.version} "
                    f"{other.card.geometry} {other.card.input_size}"
                )
        self.members = members
        self.card = first.card
        self.detector = first.detector

    def features_and_probabilities(self, pixels: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        outputs = [member.features_and_probabilities(pixels) for member in self.members]
        return outputs[0][0], np.mean([probabilities for _, probabilities in outputs], axis=0)

    def flagged(self, features: np.ndarray | None, pixels: np.ndarray) -> np.ndarray | None:
        return self.members[0].flagged(features, pixels)


def run_condition(
    model: VersionModel | EnsembleModel,
    originals: list[Shifted],
    image_ids: list[str],
    shift: str | None,
    seed: int,
    batch_size: int = BATCH_SIZE,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities (N, classes) and OOD flags (N,) or None, for every picture under one shift (None: clean).

    The next batch's pictures are shifted and resized on a second thread while the
    model runs on this one (TensorFlow and Pillow both release the GIL).
    """

    def prepare(start: int) -> np.ndarray:
        pixels = []
        for i in range(start, min(start + batch_size, len(originals))):
            picture = (
                originals[i].picture if shift is None else apply_shift(shift, *originals[i], seed, image_ids[i]).picture
            )
            pixels.append(model_input(picture, model.card))
        return np.stack(pixels)

    probabilities, flags = [], []
    starts = list(range(0, len(originals), batch_size))
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(prepare, starts[0])
        for i in range(len(starts)):
            pixels = upcoming.result()
            if i + 1 < len(starts):
                upcoming = pool.submit(prepare, starts[i + 1])
            features, batch_probabilities = model.features_and_probabilities(pixels)
            probabilities.append(batch_probabilities)
            flags.append(model.flagged(features, pixels))
    return np.concatenate(probabilities), None if flags[0] is None else np.concatenate(flags)


def save_probabilities(path: Path | str, version: str, image_ids: list[str], probabilities: dict) -> None:
    """Every condition's probabilities (N, classes), for the reports that read the same pictures
    again (training.malignancy_report --probabilities) without running the model again."""
    arrays = {f"condition_{name}": values for name, values in probabilities.items()}
    np.savez_compressed(path, version=np.array(version), image_ids=np.array(image_ids), **arrays)


def load_probabilities(path: Path | str, version: str, image_ids: list[str], names: list[str]) -> dict:
    """``save_probabilities``' file, refused (ValueError, naming why) unless it holds this version's
    readings of these pictures, in this order, under every condition in ``names``."""
    with np.load(path) as saved:
        if str(saved["version"]) != version:
            raise ValueError(f"{path} holds the probabilities of {saved['version']}, not {version}")
        if saved["image_ids"].tolist() != list(image_ids):
            raise ValueError(f"{path} holds other pictures than this split's {len(image_ids)} (or another order)")
        missing = [name for name in names if f"condition_{name}" not in saved]
        if missing:
            raise ValueError(f"{path} has no probabilities for {', '.join(missing)}")
        return {name: saved[f"condition_{name}"] for name in names}


# --- the report ------------------------------------------------------------------------------


def condition_metrics(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float, flags, score: MalignancyScore = SUMMED
) -> dict:
    from training.evaluate import compute_metrics

    full = compute_metrics(labels, probabilities, threshold, score)
    return {
        "balanced_accuracy": full["balanced_accuracy"],
        "macro_f1": full["macro_f1"],
        "melanoma_recall_top_class": full["melanoma_recall_top_class"],
        "malignant_sensitivity": full["malignant_sensitivity_at_threshold"],
        "malignant_specificity": full["malignant_specificity_at_threshold"],
        "ood_share": None if flags is None else float(flags.mean()),
        "per_class_recall": {code: entry["recall"] for code, entry in full["per_class"].items()},
    }


MEANED = (
    "balanced_accuracy",
    "macro_f1",
    "melanoma_recall_top_class",
    "malignant_sensitivity",
    "malignant_specificity",
    "ood_share",
)


def mean_over(conditions: dict[str, dict], names: list[str]) -> dict:
    means = {}
    for key in MEANED:
        values = [conditions[name][key] for name in names if conditions[name][key] is not None]
        means[key] = float(np.mean(values)) if values else None
    return means


def robustness_report(
    version_dir: Path | str,
    data_dir: Path | str,
    split_file: Path | str = DEFAULT_SPLIT_FILE,
    shifts: list[str] | None = None,
    limit: int | None = None,
    seed: int = DEFAULT_SEED,
    split: str = "val",
    log: Callable[[str], None] = print,
    geometry: str | None = None,
    flips: bool = False,
    ensemble_with: list[Path | str] | None = None,
    probabilities_out: Path | str | None = None,
) -> dict:
    """The whole report as a dict: per condition, then the mean over the shifts.

    ``geometry``: feed the version its pictures with this geometry instead of its card's (a probe);
    ``flips``: average each picture's probabilities with its three mirror images' (test-time averaging);
    ``ensemble_with``: average the version's probabilities with these versions' (a probe; the
    malignant threshold is chosen again on the ensemble's clean probabilities);
    ``probabilities_out``: also save every condition's probabilities there (``save_probabilities``)."""
    from training.operating_points import choose_malignant_threshold

    shifts = list(SHIFTS) if shifts is None else shifts
    unknown = [name for name in shifts if name not in SHIFTS]
    if unknown:
        raise ValueError(f"unknown shifts {unknown}; known shifts: {', '.join(SHIFTS)}")
    started = time.perf_counter()
    model = VersionModel(version_dir, geometry, flips)
    if ensemble_with:
        model = EnsembleModel([model, *(VersionModel(other, geometry, flips) for other in ensemble_with)])
    rows = split_rows(split_file, split, limit, seed)
    image_ids = rows["image_id"].tolist()
    labels = labels_of(rows)
    originals = load_originals(data_dir, image_ids)
    threshold, score = model.card.malignant_threshold, model.card.malignancy
    log(f"{model.card.version}: {len(rows)} {split} images, {len(shifts)} shifts")

    conditions, readings = {}, {}
    for name in [CLEAN, *shifts]:
        began = time.perf_counter()
        probabilities, flags = run_condition(model, originals, image_ids, None if name == CLEAN else name, seed)
        readings[name] = probabilities
        if name == CLEAN and ensemble_with:
            threshold = choose_malignant_threshold(labels, probabilities, model.card.target_sensitivity, score)
        conditions[name] = condition_metrics(labels, probabilities, threshold, flags, score)
        conditions[name]["seconds"] = round(time.perf_counter() - began, 1)
        entry = conditions[name]
        log(
            f"  {name:<18} bal.acc {entry['balanced_accuracy']:.3f}  sens {entry['malignant_sensitivity']:.3f}  "
            f"spec {entry['malignant_specificity']:.3f}  ({entry['seconds']:.0f} s)"
        )
    if probabilities_out is not None:
        save_probabilities(probabilities_out, model.card.version, image_ids, readings)
    return {
        "version": model.card.version,
        "ensemble": [member.card.version for member in model.members] if ensemble_with else None,
        "split": split,
        "split_file": SPLIT_FILE_IN_REPO if Path(split_file) == DEFAULT_SPLIT_FILE else str(split_file),
        "n_images": len(rows),
        "sample": _sample_description(split_file, split, len(rows), seed),
        "seed": seed,
        "malignant_threshold": threshold,
        "input": {"geometry": model.card.geometry, "input_size": list(model.card.input_size)},
        "ood_check": model.detector is not None,
        "shifts": {name: describe(name) for name in shifts},
        "conditions": conditions,
        "mean_over_shifts": mean_over(conditions, shifts),
        "how_measured": (
            "python -m training.robustness: each picture shifted by training.shifts (seeded per image), then fed "
            "as serving feeds an upload (training.robustness.model_input); malignant sensitivity / specificity "
            "at the card's threshold; ood_share: flagged by the version's out-of-distribution check"
        ),
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
    }


def card_summary(report: dict) -> dict:
    """The compact ``robustness`` entry of a card: per condition bacc / sens / spec / OOD share, and the means."""

    def compact(entry: dict) -> dict:
        return {
            "balanced_accuracy": _round(entry["balanced_accuracy"]),
            "malignant_sensitivity": _round(entry["malignant_sensitivity"]),
            "malignant_specificity": _round(entry["malignant_specificity"]),
            "ood_share": _round(entry["ood_share"]),
        }

    conditions = report["conditions"]
    return {
        "split": report["split"],
        "n_images": report["n_images"],
        "seed": report["seed"],
        "measured_with": "python -m training.robustness",
        "clean": compact(conditions[CLEAN]),
        "shifts": {name: compact(conditions[name]) for name in report["shifts"]},
        "mean_over_shifts": compact(report["mean_over_shifts"]),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def write_card_summary(version_dir: Path | str, report: dict) -> None:
    card = json.loads((Path(version_dir) / CARD_FILENAME).read_text(encoding="utf-8"))
    card["robustness"] = card_summary(report)
    write_card(version_dir, card)


def summary_table(report: dict) -> str:
    header = ("condition", "bal.acc", "macroF1", "mel rec", "mal sens", "mal spec", "OOD")
    rows = [header]
    entries = [*report["conditions"].items(), ("mean over shifts", report["mean_over_shifts"])]
    for name, entry in entries:
        ood = entry["ood_share"]
        cells = [entry[key] for key in MEANED[:-1]]
        rows.append((name, *(f"{value:.3f}" for value in cells), "-" if ood is None else f"{ood:.3f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.append(f"{report['version']}, {report['split']} split, N = {report['n_images']}, {report['seconds']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = version_command(__doc__, masks=True)
    add_split_choice(parser)
    parser.add_argument("--shifts", help=f"comma-separated subset of: {', '.join(SHIFTS)} (default: all)")
    parser.add_argument("--limit", type=int, help="a seeded random sample of this many images (for development)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, help=f"default: <version>/report/{REPORT_FILENAME}")
    parser.add_argument("--write-card", action="store_true", help="also write the summary as card['robustness']")
    parser.add_argument("--geometry", choices=list(GEOMETRIES), help="a probe: this geometry instead of the card's")
    parser.add_argument("--flips", action="store_true", help="a probe: average over the picture's mirror images")
    parser.add_argument(
        "--ensemble-with",
        type=Path,
        action="append",
        metavar="VERSION_DIR",
        help="a probe: average with this version's probabilities (repeatable; same geometry)",
    )
    parser.add_argument(
        "--probabilities-out", type=Path, help="also save every condition's probabilities (.npz), for malignancy_report"
    )
    args = parser.parse_args(argv)

    shifts = [name.strip() for name in args.shifts.split(",") if name.strip()] if args.shifts else None
    try:
        report = robustness_report(
            args.version_dir, args.data_dir, args.split_file, shifts, args.limit, args.seed, args.split,
            geometry=args.geometry, flips=args.flips, ensemble_with=args.ensemble_with,
            probabilities_out=args.probabilities_out,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    out = args.out or args.version_dir / "report" / REPORT_FILENAME
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(summary_table(report))
    print(f"report written to {out}")
    if args.write_card and args.geometry is None and not args.flips and not args.ensemble_with:
        write_card_summary(args.version_dir, report)
        print(f"card['robustness'] written to {args.version_dir / CARD_FILENAME}")


if __name__ == "__main__":
    main()
