"""Inference latency of a shipped model version: one image, and a batch of 32.

Measures the compiled call the workers should use (a ``tf.function`` with a fixed
input signature, traced once), not ``model.predict`` per image; that one is timed
too, for reference only.

    python -m training.benchmark_inference --model-dir models/mobilenetv2-150-v1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from training.card import MODEL_FILENAME, find_version_dirs, read_card


def compiled_call(model, input_size: tuple[int, int]):
    """model(x, training=False) traced once for any batch size of float32 images."""
    import tensorflow as tf

    signature = [tf.TensorSpec(shape=(None, *input_size, 3), dtype=tf.float32)]
    return tf.function(lambda pixels: model(pixels, training=False), input_signature=signature)


def time_calls(call, pixels: np.ndarray, repeats: int, warmup: int) -> list[float]:
    """Wall-clock milliseconds of each call, results fetched to host memory."""
    for _ in range(warmup):
        np.asarray(call(pixels))
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(call(pixels))
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def summarise(timings: list[float], batch: int) -> dict:
    ordered = sorted(timings)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    median = statistics.median(ordered)
    return {
        "batch": batch,
        "calls": len(ordered),
        "ms_per_call_p50": round(median, 2),
        "ms_per_call_p95": round(p95, 2),
        "ms_per_call_mean": round(statistics.fmean(ordered), 2),
        "ms_per_image_p50": round(median / batch, 2),
        "images_per_s": round(1000 * batch / median, 1),
    }


def benchmark(model_dir: Path, repeats: int, warmup: int) -> dict:
    import keras
    import tensorflow as tf

    card = read_card(model_dir)
    model = keras.saving.load_model(model_dir / MODEL_FILENAME)
    call = compiled_call(model, card.input_size)
    rng = np.random.default_rng(0)
    results = {
        "model": card.version,
        "input_size": list(card.input_size),
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "tensorflow": tf.__version__,
            "gpus": len(tf.config.list_physical_devices("GPU")),
        },
    }
    for batch in (1, 32):
        pixels = rng.uniform(0, 255, (batch, *card.input_size, 3)).astype(np.float32)
        calls = repeats if batch == 1 else max(5, repeats // 4)
        results[f"compiled_batch_{batch}"] = summarise(time_calls(call, pixels, calls, warmup), batch)
    single = rng.uniform(0, 255, (1, *card.input_size, 3)).astype(np.float32)
    predict_timings = time_calls(lambda x: model.predict(x, verbose=0), single, max(5, repeats // 4), 2)
    results["predict_batch_1_for_reference"] = summarise(predict_timings, 1)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Latency of a shipped model version on this machine.")
    parser.add_argument("--model-dir", help="models/<version>; default: the last version under models/")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args(argv)

    if args.model_dir:
        model_dir = Path(args.model_dir)
    else:
        versions = find_version_dirs("models")
        if not versions:
            parser.error("no model version under models/")
        model_dir = versions[-1]
    results = benchmark(model_dir, args.repeats, args.warmup)
    for key, value in results.items():
        if isinstance(value, dict) and "batch" in value:
            print(
                f"{key:32s} p50 {value['ms_per_call_p50']:8.2f} ms/call  p95 {value['ms_per_call_p95']:8.2f}  "
                f"{value['ms_per_image_p50']:7.2f} ms/image  {value['images_per_s']:7.1f} images/s"
            )
    print(json.dumps(results["machine"]))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
