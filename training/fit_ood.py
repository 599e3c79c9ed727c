"""Give a model version its out-of-distribution check and its uncertainty report.

Fits training.ood's detector on the training split's features, sets its threshold
on the validation split, measures it on the test split (in-distribution, scored
only) and on synthetic non-dermatoscopic pictures (training.synthetic_ood), and
writes ``ood.npz`` beside the model with the card's ``ood`` and ``uncertainty``
entries. The worker then flags out-of-distribution uploads instead of giving them
a confident lesion label.

    python -m training.fit_ood models/mobilenetv2-150-v1 --data-dir ../shared/data/ham10000
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.card import CARD_FILENAME, MODEL_FILENAME, write_card
from training.classes import CLASSES
from training.commands import version_command
from training.ood import CHECKS, DEFAULT_FLAG_RATE, FLAGGED_ABOVE, OOD_FILENAME, fit_detector, save_detector
from training.preprocessing import DEFAULT_GEOMETRY, SOURCE_SIZE, to_model_input
from training.synthetic_ood import make_pictures

DEFAULT_UNCERTAIN_BELOW = 0.5  # lesionsite.settings.UNCERTAIN_BELOW's default
SYNTHETIC_PER_KIND = 40


def features_and_probabilities(model, images: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features (N, d) and probabilities (N, classes) of uint8 or float images (N, H, W, 3)."""
    import keras
    import tensorflow as tf

    both = keras.Model(model.inputs, [model.get_layer("pool").output, model.output])
    call = tf.function(lambda x: both(x, training=False), reduce_retracing=True)
    features, probabilities = [], []
    for start in range(0, len(images), batch_size):
        f, p = call(tf.convert_to_tensor(images[start : start + batch_size], dtype=tf.float32))
        features.append(f.numpy())
        probabilities.append(p.numpy())
    return np.concatenate(features), np.concatenate(probabilities)


def uncertainty_report(probabilities: np.ndarray, labels: np.ndarray, below: float) -> dict:
    """How often the top probability is under `below`, and how right the model is on each side of it."""
    top = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    uncertain = top < below

    def accuracy(mask):
        return round(float(right[mask].mean()), 3) if mask.any() else None

    return {
        "share_uncertain": round(float(uncertain.mean()), 3),
        "accuracy_when_uncertain": accuracy(uncertain),
        "accuracy_otherwise": accuracy(~uncertain),
    }


def fit_ood_entries(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    flag_rate: float = DEFAULT_FLAG_RATE,
    uncertain_below: float = DEFAULT_UNCERTAIN_BELOW,
    reframed: tuple[np.ndarray, np.ndarray] | None = None,
):
    """From (train features, labels) and (val features, probabilities, labels, pixels): detector and card entries.

    ``reframed``: (features, pixels) of the validation pictures reframed as other devices
    take them (``reframed_validation``); the thresholds are then set on both, so that a
    lesion zoomed, blurred or vignetted the way real pictures are is not called
    out of distribution, while blank frames and graphics still are (the synthetic check)."""
    train_features, train_labels = train
    val_features, val_probabilities, val_labels, val_pixels = val
    threshold_features, threshold_pixels = val_features, val_pixels
    if reframed is not None:
        threshold_features = np.concatenate([val_features, reframed[0]])
        threshold_pixels = np.concatenate([val_pixels, reframed[1]])
    detector = fit_detector(train_features, train_labels, len(CLASSES), threshold_features, threshold_pixels, flag_rate)
    mahalanobis, norm, texture, flatness = (round(float(t), 4) for t in detector.thresholds)
    ood = {
        "method": (
            "training.ood: the largest of (Mahalanobis distance of the pooled features to the nearest class mean "
            "/ its threshold), (its threshold / the feature vector's length), (mean absolute Laplacian of the "
            "grey levels / its threshold), (its threshold / that texture); flagged above 1"
        ),
        "file": OOD_FILENAME,
        "threshold": FLAGGED_ABOVE,
        "checks": {
            "mahalanobis_above": mahalanobis,
            "feature_norm_below": norm,
            "texture_above": texture,
            "texture_below": flatness,
        },
        "threshold_rule": (
            f"each check flags {flag_rate / len(CHECKS):.2%} of the validation split's (in-distribution) images"
            + (", as they are and once more reframed by training.framing" if reframed is not None else "")
        ),
        "fitted_on": f"train split features ({len(train_features)} images)",
        "flagged": {"val": flagged_share(detector, val_features, val_pixels)},
        **({"flagged_reframed_val": flagged_share(detector, *reframed)} if reframed is not None else {}),
    }
    uncertainty = {
        "top_probability_below": uncertain_below,
        "val": uncertainty_report(val_probabilities, val_labels, uncertain_below),
    }
    return detector, ood, uncertainty


def reframed_validation(model, pictures: np.ndarray, input_size, geometry: str, seed: int = 7):
    """(features, pixels) of training-scale pictures (N, 150, 200, 3) reframed once each by
    training.framing (the training augmentation, not the robustness instrument's shifts)."""
    import tensorflow as tf

    from training.framing import reframe, to_input

    tf.random.set_seed(seed)
    pixels = np.stack([to_input(reframe(tf.constant(p, tf.float32)), input_size, geometry).numpy() for p in pictures])
    pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    features, _ = features_and_probabilities(model, pixels)
    return features, pixels


def flagged_share(detector, features: np.ndarray, pixels: np.ndarray) -> float:
    return round(float((detector.score(features, pixels) > FLAGGED_ABOVE).mean()), 4)


def synthetic_detection(
    model, detector, input_size: tuple[int, int], per_kind: int, geometry: str = DEFAULT_GEOMETRY
) -> dict:
    """Share of each kind of synthetic non-dermatoscopic picture that is flagged."""
    by_kind = make_pictures(per_kind, seed=7)
    pixels = np.stack(
        [to_model_input(picture, input_size, geometry) for pictures in by_kind.values() for picture in pictures]
    )
    features, _ = features_and_probabilities(model, pixels)  # one pass for every kind
    return {
        kind: flagged_share(
            detector, features[i * per_kind : (i + 1) * per_kind], pixels[i * per_kind : (i + 1) * per_kind]
        )
        for i, kind in enumerate(by_kind)
    }


def write_ood(version_dir: Path, detector, ood: dict, uncertainty: dict) -> None:
    """Write the detector first, the card that refers to it last."""
    save_detector(detector, version_dir / OOD_FILENAME)
    card = json.loads((version_dir / CARD_FILENAME).read_text(encoding="utf-8"))
    card["ood"], card["uncertainty"] = ood, uncertainty
    write_card(version_dir, card)


def main(argv: list[str] | None = None) -> None:
    parser = version_command(__doc__, cache=True)
    parser.add_argument("--flag-rate", type=float, default=DEFAULT_FLAG_RATE)
    parser.add_argument("--uncertain-below", type=float, default=DEFAULT_UNCERTAIN_BELOW)
    parser.add_argument(
        "--reframed",
        action="store_true",
        help="set the thresholds on validation as it is and reframed (training.framing)",
    )
    args = parser.parse_args(argv)

    import keras

    from training.card import read_card
    from training.train import load_split_arrays

    card = read_card(args.version_dir)
    model = keras.saving.load_model(args.version_dir / MODEL_FILENAME, compile=False)
    arrays = load_split_arrays(
        args.data_dir, args.split_file, card.input_size, args.cache_dir or None, ("train", "val", "test"), card.geometry
    )
    outputs = {name: features_and_probabilities(model, images) for name, (images, _, _) in arrays.items()}
    labels = {name: arrays[name][1] for name in arrays}
    reframed = None
    if args.reframed:
        sources = load_split_arrays(args.data_dir, args.split_file, SOURCE_SIZE, args.cache_dir or None, ("val",))
        reframed = reframed_validation(model, sources["val"][0], card.input_size, card.geometry)
    detector, ood, uncertainty = fit_ood_entries(
        (outputs["train"][0], labels["train"]),
        (*outputs["val"], labels["val"], arrays["val"][0]),
        args.flag_rate,
        args.uncertain_below,
        reframed,
    )
    # Scored, not chosen on: the test split and the synthetic pictures.
    ood["flagged"]["test"] = flagged_share(detector, outputs["test"][0], arrays["test"][0])
    ood["synthetic_flagged"] = synthetic_detection(model, detector, card.input_size, SYNTHETIC_PER_KIND, card.geometry)
    ood["synthetic_note"] = (
        f"{SYNTHETIC_PER_KIND} generated pictures per kind (training.synthetic_ood): far-OOD only; "
        "near-OOD (clinical photos without a dermatoscope) is not measured"
    )
    uncertainty["test"] = uncertainty_report(outputs["test"][1], labels["test"], args.uncertain_below)
    write_ood(args.version_dir, detector, ood, uncertainty)
    print(json.dumps({"ood": ood, "uncertainty": uncertainty}, indent=2))


if __name__ == "__main__":
    main()
