"""The ceiling: the model in-process, through the same cache the worker uses (worker.model_cache).

Run in a fresh process per backend, so its memory is that backend's alone and a
LiteRT run never has TensorFlow loaded:

    python -m bench.inprocess --backend litert --version-dir models/<version> --threads 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench.stack import rss_mb


def time_calls(model, batch: int, calls: int, warmup: int = 3) -> dict:
    height, width = model.input_size
    pixels = np.random.default_rng(batch).uniform(0, 255, (batch, height, width, 3)).astype(np.float32)
    for _ in range(warmup):
        model.predict(pixels)
    timings = []
    for _ in range(calls):
        began = time.perf_counter()
        model.predict(pixels)
        timings.append(time.perf_counter() - began)
    median = statistics.median(timings)
    return {
        "batch": batch,
        "calls": calls,
        "ms_per_call_p50": round(median * 1000, 2),
        "ms_per_image": round(median * 1000 / batch, 3),
        "images_per_s": round(batch / median, 1),
    }


def measure(version_dir: Path, backend: str, threads: int, seconds_per_size: float = 5.0) -> dict:
    from worker.model_cache import get_model

    began = time.perf_counter()
    model = get_model(version_dir.name, version_dir, threads, backend=backend)
    load_s = time.perf_counter() - began
    # Calls per batch size from a quick probe, so each size runs ~seconds_per_size whatever the backend.
    results = {}
    for batch in (1, 32):
        probe = time_calls(model, batch, calls=3, warmup=2)["ms_per_call_p50"] / 1000
        calls = int(min(500, max(10, seconds_per_size / max(probe, 1e-4))))
        results[f"batch_{batch}"] = time_calls(model, batch, calls)
    return {
        "backend": backend,
        "threads": threads,
        "load_s": round(load_s, 2),
        **results,
        "rss_mb_after_load_and_batches": rss_mb_self(),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def rss_mb_self() -> float | None:
    import os

    return rss_mb(os.getpid())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="In-process inference speed and memory of one backend.")
    parser.add_argument("--backend", choices=["keras", "litert"], required=True)
    parser.add_argument("--version-dir", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=0, help="as INFERENCE_THREADS: 0 = every core")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per batch size")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.version_dir, args.backend, args.threads, args.seconds)))


if __name__ == "__main__":
    main()
