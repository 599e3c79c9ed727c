"""Camera-sized uploads end to end (docs/PERFORMANCE.md): 12 and 24 MP JPEGs through a real stack.

On the bench stack (gunicorn with 2 processes, one Celery inference worker, PostgreSQL, Redis;
bench/stack.py), with generated camera-like JPEGs (bench.picture_storage.camera_jpeg):

- one picture per request, ``--count`` times per size: the request's time as the client
  sees it, upload sent -> prediction done, and the bytes stored for it (picture, working
  copy and thumbnail) against the upload's;
- one request of ``--batch`` 12 MP pictures: its time, and the web processes' peak resident
  memory while it is processed (sampled every 20 ms).

    python -m bench.large_uploads [--count 5] [--batch 20] [--backend keras]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

from bench.client import Api, prediction_ids, wait_until
from bench.picture_storage import SIZES, camera_jpeg
from bench.run import finished_count, machine, rows
from bench.stack import bench_stack, child_pids, rss_mb


class PeakMemory:
    """The highest resident memory (MB) any of the given processes reached while it ran."""

    def __init__(self, pids: list[int], interval: float = 0.02):
        self.pids, self.interval, self.peak = pids, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                self.peak = max(self.peak, rss_mb(pid) or 0.0)
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def stored_bytes(image_ids: list[int]) -> int:
    from django.core.files.storage import default_storage

    from classifier.models import LesionImage
    from classifier.thumbnails import thumbnail_name

    total = 0
    for image in LesionImage.objects.filter(pk__in=image_ids):
        for name in (image.file.name, image.working_file.name, thumbnail_name(image.sha256)):
            if name and default_storage.exists(name):
                total += default_storage.size(name)
    return total


def one_at_a_time(api: Api, megapixels: int, count: int) -> dict:
    request_s, done_s, ratios = [], [], []
    for seed in range(count):
        data = camera_jpeg(SIZES[megapixels], seed=1000 * megapixels + seed)
        sent = time.time()
        began = time.monotonic()
        status, body = api.upload([(f"IMG_{megapixels}_{seed}.jpg", data)])
        request_s.append(time.monotonic() - began)
        if status != 201:
            raise RuntimeError(f"upload answered {status}: {body}")
        (prediction_id,) = prediction_ids(body)
        if not wait_until(lambda pid=prediction_id: finished_count([pid]) == 1, timeout=120, interval=0.01):
            raise RuntimeError(f"prediction {prediction_id} not done within 120 s")
        (row,) = rows([prediction_id])
        done_s.append(row["finished_at"].timestamp() - sent)
        ratios.append(stored_bytes([body["images"][0]["id"]]) / len(data))
    return {
        "uploaded_mb": round(len(data) / 1e6, 2),
        "request_s_median": round(statistics.median(request_s), 2),
        "request_s_max": round(max(request_s), 2),
        "upload_to_done_s_median": round(statistics.median(done_s), 2),
        "stored_over_uploaded": round(max(ratios), 3),
    }


def one_batch(api: Api, web_pids: list[int], files: int) -> dict:
    pictures = [(f"IMG_B{seed}.jpg", camera_jpeg(SIZES[12], seed=5000 + seed)) for seed in range(files)]
    baseline = max(rss_mb(pid) or 0.0 for pid in web_pids)
    with PeakMemory(web_pids) as memory:
        began = time.monotonic()
        status, body = api.upload(pictures)
        seconds = time.monotonic() - began
    if status != 201:
        raise RuntimeError(f"batch upload answered {status}: {body}")
    image_ids = [item["id"] for item in body["images"]]
    return {
        "files": files,
        "uploaded_mb": round(sum(len(data) for _, data in pictures) / 1e6, 1),
        "request_s": round(seconds, 2),
        "web_process_rss_mb_before": round(baseline),
        "web_process_rss_mb_peak": round(memory.peak),
        "stored_over_uploaded": round(stored_bytes(image_ids) / sum(len(data) for _, data in pictures), 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5, help="single uploads per size")
    parser.add_argument("--batch", type=int, default=20, help="12 MP files in the one batch request")
    parser.add_argument("--backend", default="keras", choices=["keras", "litert"])
    args = parser.parse_args(argv)
    with bench_stack(backend=args.backend, workers=1) as stack:
        api = Api(stack.base_url, stack.token)
        api.upload([("warm.jpg", camera_jpeg((800, 600), seed=1))])  # the worker's first call, not measured
        time.sleep(5)
        web_pids = child_pids(stack.processes[0].pid)  # gunicorn's workers, not its arbiter
        report = {
            "machine": machine(),
            "backend": args.backend,
            "single": {f"{mp} MP": one_at_a_time(api, mp, args.count) for mp in (12, 24)},
            "batch_12_mp": one_batch(api, web_pids, args.batch),
        }
        api.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
