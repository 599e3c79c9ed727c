"""The ceiling: a model version in-process, through the same cache the worker uses (worker.model_cache).

Batch 1 and batch 32 of random pixels, timed after a warm-up: the call a worker makes
(probabilities, features and heatmap in one compiled call for keras, or the LiteRT
interpreter), the memory it holds, and whether TensorFlow was loaded. ``make bench``
(bench/run.py) runs it in a fresh process per backend, so its memory is that
backend's alone and a LiteRT run never has TensorFlow loaded:

    python -m bench.inprocess --backend litert --version-dir models/<version> --threads 0

``--predict-reference`` also times keras's ``model.predict`` on one image, the call
workers must not make per image (after the memory is measured: it loads the model a
second time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench.stack import newest_model_dir, rss_mb
from training.card import MODEL_FILENAME

WARMUP_CALLS = 3


def time_calls(predict, input_size: tuple[int, int], batch: int, calls: int, warmup: int = WARMUP_CALLS) -> dict:
    """Wall-clock timing of ``predict`` on ``batch`` random images, ``calls`` times after ``warmup``."""
    height, width = input_size
    pixels = np.random.default_rng(batch).uniform(0, 255, (batch, height, width, 3)).astype(np.float32)
    for _ in range(warmup):
        predict(pixels)
    timings = []
    for _ in range(calls):
        began = time.perf_counter()
        predict(pixels)
        timings.append(time.perf_counter() - began)
    ordered = sorted(timings)
    median = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "batch": batch,
        "calls": calls,
        "ms_per_call_p50": round(median * 1000, 2),
        "ms_per_call_p95": round(p95 * 1000, 2),
        "ms_per_image": round(median * 1000 / batch, 3),
        "images_per_s": round(batch / median, 1),
    }


def measure(
    version_dir: Path, backend: str, threads: int, seconds_per_size: float = 5.0, predict_reference: bool = False
) -> dict:
    from worker.model_cache import get_model

    began = time.perf_counter()
    model = get_model(version_dir.name, version_dir, threads, backend=backend)
    load_s = time.perf_counter() - began
    # Calls per batch size from a quick probe, so each size runs ~seconds_per_size whatever the backend.
    results = {}
    for batch in (1, 32):
        probe = time_calls(model.predict, model.input_size, batch, calls=3, warmup=2)["ms_per_call_p50"] / 1000
        calls = int(min(500, max(10, seconds_per_size / max(probe, 1e-4))))
        results[f"batch_{batch}"] = time_calls(model.predict, model.input_size, batch, calls)
    measured = {
        "backend": backend,
        "threads": threads,
        "load_s": round(load_s, 2),
        **results,
        "rss_mb_after_load_and_batches": rss_mb_self(),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }
    if predict_reference and backend == "keras":
        import keras

        reference = keras.saving.load_model(version_dir / MODEL_FILENAME, compile=False)
        single = time_calls(lambda x: reference.predict(x, verbose=0), model.input_size, 1, calls=25)
        measured["model_predict_batch_1_for_reference"] = single
    return measured


def rss_mb_self() -> float | None:
    import os

    return rss_mb(os.getpid())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="In-process inference speed and memory of one backend.")
    parser.add_argument("--backend", choices=["keras", "litert"], required=True)
    parser.add_argument("--version-dir", type=Path, help="models/<version>; default: the newest under models/")
    parser.add_argument("--threads", type=int, default=0, help="as INFERENCE_THREADS: 0 = every core")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per batch size")
    parser.add_argument("--predict-reference", action="store_true", help="also time model.predict on one image")
    args = parser.parse_args(argv)
    version_dir = args.version_dir or newest_model_dir()
    print(json.dumps(measure(version_dir, args.backend, args.threads, args.seconds, args.predict_reference)))


if __name__ == "__main__":
    main()
