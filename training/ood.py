"""Out-of-distribution score: how unlike the training pictures an image looks to the model.

A classifier always answers with one of its seven classes, even for a blank frame
or a screenshot. To say "this does not look like a dermatoscopic image" instead,
lesionsite checks four things, each against the validation split's spread:

- the Mahalanobis distance of the model's pooled features (the 1,280 numbers
  before its last layer) to the nearest class mean, with one covariance shared by
  the classes (Lee et al., NeurIPS 2018): catches pictures with strong but
  unfamiliar content (drawings, graphics);
- the length of that feature vector, too short: pictures with nothing for the
  network to respond to (blank, flat colour, a gradient, a page of text) land
  near the features' mean, where the distance alone misses them (measured);
- the picture's fine texture (mean absolute Laplacian of the grey levels), too
  high: sensor noise and screenshots, which no dermatoscope produces;
- the same texture, too low: blank frames and smooth gradients, which have no skin
  in them. It needs no model, so it holds whatever a retrained model's features do
  (a logit-adjusted model can give blank pictures long feature vectors, which the
  feature-length check then misses).

Each threshold is a quantile of the validation split's values, so a known share
of real lesion images is flagged (the card records it). The score is the largest
of the four values over (or, for the lower bounds, under) its threshold: above 1 means
out of distribution. A detector saved with three thresholds (no texture-below check)
still loads and scores with its three.

NumPy only: the worker uses it with either inference backend, without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

OOD_FILENAME = "ood.npz"
# Share of validation (in-distribution) images flagged, split evenly between the
# CHECKS: a false alarm costs a clinician a second look, a missed out-of-distribution
# image a confident wrong label, so few false alarms, but not zero.
DEFAULT_FLAG_RATE = 0.01
RIDGE = 1e-3  # of the mean variance, added to the covariance's diagonal: keeps it invertible
CHECKS = ("mahalanobis", "feature_norm", "texture", "flatness")
FLAGGED_ABOVE = 1.0  # score() divides each check by its threshold: above 1 is out of distribution
# A blank frame's texture (0) or a zero feature vector would make its ratio to a
# "below" threshold astronomically large (trillions, on a clinician's screen);
# 100 times past a threshold is as far out as a score needs to say.
SCORE_CAP = 100.0


def texture(pixels: np.ndarray) -> np.ndarray:
    """Mean absolute Laplacian (N,) of the grey levels of RGB pixels (N, H, W, 3) in 0..255."""
    # Channel by channel and in place: the worker runs this on every batch, and
    # mean(axis=-1) over the 3 channels with its temporaries costs several times as
    # much, for the same values to 1e-7.
    pixels = np.asarray(pixels)
    grey = pixels[..., 0].astype(np.float32)
    grey += pixels[..., 1]
    grey += pixels[..., 2]
    grey /= 3
    negative_laplacian = grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1]
    negative_laplacian += grey[:, 1:-1, :-2]
    negative_laplacian += grey[:, 1:-1, 2:]
    negative_laplacian -= 4 * grey[:, 1:-1, 1:-1]
    return np.abs(negative_laplacian, out=negative_laplacian).mean(axis=(1, 2))


@dataclass(frozen=True)
class OodDetector:
    whitening: np.ndarray  # (d, d) W with W W^T = the inverse shared within-class covariance
    centres: np.ndarray  # (classes, d) the class means of the training features, times W
    thresholds: np.ndarray  # (4,) Mahalanobis above, feature norm below, texture above, texture below

    @property
    def feature_dim(self) -> int:
        return self.whitening.shape[0]

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance (N,) of each feature vector to the nearest class mean."""
        features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
        if features.shape[1] != self.feature_dim:
            raise ValueError(f"features have {features.shape[1]} dimensions; the detector expects {self.feature_dim}")
        # Whitened once, a Mahalanobis distance is a Euclidean one: one matrix product per batch.
        whitened = features @ self.whitening
        squared = ((whitened[:, None, :] - self.centres[None, :, :]) ** 2).sum(axis=2)
        return np.sqrt(squared.min(axis=1))

    def checks(self, features: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """(N, 3) raw values the CHECKS compare: distance, feature length, texture (read by the last two)."""
        return np.stack([self.distance(features), np.linalg.norm(features, axis=1), texture(pixels)], axis=1)

    def score(self, features: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """(N,) the worst check over its threshold, at most SCORE_CAP; above FLAGGED_ABOVE is out of distribution."""
        values = self.checks(features, pixels)
        ratios = [
            values[:, 0] / self.thresholds[0],
            self.thresholds[1] / np.maximum(values[:, 1], 1e-12),
            values[:, 2] / self.thresholds[2],
        ]
        if len(self.thresholds) > 3:
            ratios.append(self.thresholds[3] / np.maximum(values[:, 2], 1e-12))
        return np.minimum(np.stack(ratios, axis=1).max(axis=1), SCORE_CAP)


def fit_detector(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    validation_features: np.ndarray,
    validation_pixels: np.ndarray,
    flag_rate: float = DEFAULT_FLAG_RATE,
) -> OodDetector:
    """Fit on training features (N, d) with integer labels; set thresholds on the validation split."""
    if not 0.0 < flag_rate < 1.0:
        raise ValueError("flag_rate must be between 0 and 1")
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    missing = sorted(set(range(n_classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"no training features for classes {missing}")
    class_means = np.stack([features[labels == c].mean(axis=0) for c in range(n_classes)])
    residuals = features - class_means[labels]
    covariance = residuals.T @ residuals / len(residuals)
    dim = covariance.shape[0]
    covariance += np.eye(dim) * RIDGE * np.trace(covariance) / dim
    whitening = np.linalg.cholesky(np.linalg.inv(covariance))
    unset = OodDetector(whitening, class_means @ whitening, np.ones(len(CHECKS)))
    values = unset.checks(validation_features, validation_pixels)
    share = flag_rate / len(CHECKS)
    thresholds = np.array(
        [
            np.quantile(values[:, 0], 1 - share),
            np.quantile(values[:, 1], share),
            np.quantile(values[:, 2], 1 - share),
            np.quantile(values[:, 2], share),
        ]
    )
    return OodDetector(whitening, unset.centres, thresholds)


def save_detector(detector: OodDetector, path: Path | str) -> None:
    # float32 on disk halves the file; distances move by < 1e-4 relative.
    np.savez_compressed(
        path,
        whitening=detector.whitening.astype(np.float32),
        centres=detector.centres.astype(np.float32),
        thresholds=detector.thresholds,
    )


def load_detector(path: Path | str) -> OodDetector:
    with np.load(path) as arrays:
        return OodDetector(**{name: arrays[name].astype(np.float64) for name in ("whitening", "centres", "thresholds")})
