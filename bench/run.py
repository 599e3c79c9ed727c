"""`make bench`: the model in-process, then the whole stack end to end, for both backends.

1. The ceiling: the model through worker.model_cache in a fresh process per backend,
   batch 1 and batch 32 (bench/inprocess.py).
2. End to end: gunicorn, Celery inference workers, Redis and PostgreSQL on loopback
   (bench/stack.py). Images go in through POST /api/v1/images/ as batch uploads and
   as concurrent single uploads; the clock stops when the last prediction is done.
   With 1 and with 2 inference processes (processes x threads = cores), and one
   image at a time on a warm worker.
3. End-to-end throughput as a fraction of the in-process batch-32 throughput.
4. All of it for INFERENCE_BACKEND=keras and =litert.

Writes bench/results/latest.json; docs/PERFORMANCE.md explains the numbers.

    python -m bench.run [--model-dir models/<version>] [--images 500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.client import Api, jpeg_bytes, percentiles, prediction_ids, wait_until
from bench.stack import REPO_ROOT, Stack, newest_model_dir, prepare

RESULTS = REPO_ROOT / "bench" / "results" / "latest.json"
DONE_TIMEOUT = 600  # seconds for any one scenario's predictions; 500 images need ~10-60 s


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem_kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line).split()[1])
    busy = [cmd for cmd in other_python_commands() if "training.train" in cmd]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
        "training_running_during_bench": bool(busy),
    }


def other_python_commands() -> list[str]:
    commands = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            commands.append(path.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return commands


# --- 1. In-process.


def in_process(version_dir: Path, backend: str, threads: int, seconds: float) -> dict:
    command = [sys.executable, "-m", "bench.inprocess", "--backend", backend, "--version-dir", str(version_dir),
               "--threads", str(threads), "--seconds", str(seconds)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"in-process benchmark failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- 2. End to end.


def rows(ids: list[int]):
    from classifier.models import Prediction

    return list(Prediction.objects.filter(id__in=ids).values("status", "created_at", "started_at", "finished_at"))


def row_latencies(found: list[dict]) -> dict:
    """Per prediction row, in ms: created -> finished, and its two parts (waiting, and the task's work)."""

    def ms(rows_, start, end):
        return percentiles([(row[end] - row[start]).total_seconds() * 1000 for row in rows_ if row[start] and row[end]])

    return {
        "upload_to_done_ms_server": ms(found, "created_at", "finished_at"),
        "created_to_started_ms": ms(found, "created_at", "started_at"),
        "started_to_finished_ms": ms(found, "started_at", "finished_at"),
    }


def finished_count(ids: list[int]) -> int:
    from classifier.models import Prediction

    return Prediction.objects.filter(id__in=ids, status__in=["done", "failed"]).count()


def wait_for_predictions(ids: list[int]) -> None:
    # Polls the database, not the API: the clock must not load the web server it measures.
    if not wait_until(lambda: finished_count(ids) == len(ids), timeout=DONE_TIMEOUT, interval=0.05):
        raise RuntimeError(f"only {finished_count(ids)} of {len(ids)} predictions finished in {DONE_TIMEOUT} s")


def queued_messages() -> int:
    from lesionsite.celery import app

    with app.connection_for_write() as conn:
        try:
            return conn.default_channel.queue_declare("inference", passive=True).message_count
        except conn.channel_errors:  # Redis drops an empty queue's key: "no queue"
            return 0


def wait_for_empty_queue() -> float:
    """Seconds until the broker's queue is empty: after a scenario, the tasks whose rows
    another task took to fill its batch are still queued (each finds nothing to do).
    The next scenario must not start with them, or they would pick its uploads up at once."""
    began = time.monotonic()
    if not wait_until(lambda: queued_messages() == 0, timeout=DONE_TIMEOUT, interval=0.05):
        raise RuntimeError(f"{queued_messages()} messages still queued after {DONE_TIMEOUT} s")
    time.sleep(0.2)  # the last reserved ones finish
    return round(time.monotonic() - began, 2)


def scenario_result(ids: list[int], started_at: float, codes: list[int], upload_ms: list[float]) -> dict:
    """Throughput from the first request to the last finished row; latency per row (created_at -> finished_at)."""
    found = rows(ids)
    last = max(row["finished_at"] for row in found).timestamp()
    seconds = last - started_at
    return {
        "images": len(ids),
        "done": sum(row["status"] == "done" for row in found),
        "http_status": {str(code): codes.count(code) for code in sorted(set(codes))},
        "seconds_to_all_done": round(seconds, 2),
        "images_per_s": round(len(ids) / seconds, 1),
        **row_latencies(found),
        "upload_request_ms_client": percentiles(upload_ms),
        "queue_drained_after_s": wait_for_empty_queue(),
    }


def batch_uploads(stack: Stack, seeds, images: int, per_request: int) -> dict:
    """One REST client sends the images as consecutive requests of ``per_request`` files."""
    requests_files = [
        [(f"b{seed}.jpg", jpeg_bytes(seed)) for seed in itertools.islice(seeds, min(per_request, images - start))]
        for start in range(0, images, per_request)
    ]
    api = Api(stack.base_url, stack.token)
    ids, codes, upload_ms = [], [], []
    started_at = time.time()
    for files in requests_files:
        began = time.monotonic()
        status, body = api.upload(files)
        upload_ms.append((time.monotonic() - began) * 1000)
        codes.append(status)
        ids += prediction_ids(body) if status == 201 else []
    api.close()
    if len(ids) != images:
        raise RuntimeError(f"batch uploads answered {codes}")
    wait_for_predictions(ids)
    return {
        "requests": len(requests_files),
        "files_per_request": per_request,
        **scenario_result(ids, started_at, codes, upload_ms),
    }


def concurrent_singles(stack: Stack, seeds, images: int, clients: int) -> dict:
    """``clients`` threads upload one image per request, all at once."""
    files = [(f"s{seed}.jpg", jpeg_bytes(seed)) for seed in itertools.islice(seeds, images)]
    shares = [files[start::clients] for start in range(clients)]
    lock = threading.Lock()
    ids, codes, upload_ms, errors = [], [], [], []

    def client(share):
        api = Api(stack.base_url, stack.token)
        try:
            for item in share:
                began = time.monotonic()
                status, body = api.upload([item])
                with lock:
                    upload_ms.append((time.monotonic() - began) * 1000)
                    codes.append(status)
                    ids.extend(prediction_ids(body) if status == 201 else [])
        except Exception as exc:  # reported below; the run then fails clearly
            with lock:
                errors.append(repr(exc))
        finally:
            api.close()

    threads = [threading.Thread(target=client, args=(share,), daemon=True) for share in shares]
    started_at = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DONE_TIMEOUT)
    if errors or len(ids) != images:
        raise RuntimeError(f"concurrent uploads: {len(ids)} of {images} accepted, errors {errors[:3]}")
    wait_for_predictions(ids)
    return {"clients": clients, **scenario_result(ids, started_at, codes, upload_ms)}


def sequential_singles(stack: Stack, seeds, count: int) -> dict:
    """One image at a time on a warm worker: upload, wait until its row is done, next.

    Latency = the row's finished_at minus the moment the upload was sent (one clock:
    same host). The bench watches the row in the database every 2 ms rather than
    polling the API that often: such polling would itself load the 2 cores it measures.
    """
    api = Api(stack.base_url, stack.token)
    latency_ms, upload_ms, ids = [], [], []
    try:
        for seed in itertools.islice(seeds, count):
            data = jpeg_bytes(seed)
            sent = time.time()
            began = time.monotonic()
            status, body = api.upload([(f"one{seed}.jpg", data)])
            upload_ms.append((time.monotonic() - began) * 1000)
            if status != 201:
                raise RuntimeError(f"single upload answered {status}: {body}")
            (prediction_id,) = prediction_ids(body)
            if not wait_until(lambda pid=prediction_id: finished_count([pid]) == 1, timeout=60, interval=0.002):
                raise RuntimeError(f"prediction {prediction_id} not done within 60 s")
            (row,) = rows([prediction_id])
            latency_ms.append((row["finished_at"].timestamp() - sent) * 1000)
            ids.append(prediction_id)
            time.sleep(0.05)  # a pause between images, as between a clinician's uploads
    finally:
        api.close()
    found = rows(ids)
    return {
        "images": count,
        "done": sum(row["status"] == "done" for row in found),
        "upload_sent_to_done_ms": percentiles(latency_ms),
        "upload_request_ms_client": percentiles(upload_ms),
        **row_latencies(found),
    }


def warm_up(stack: Stack, seeds, per_request: int = 0) -> None:
    """Until every pool process has loaded the model, then one untimed batch upload (of
    ``per_request`` files; 0: none).

    A cold load is not what we measure, and neither are a worker's first model calls
    at batch sizes it has not run yet (measured, one thread: 368 and 313 ms for the
    first calls of 25 and 32 images against ~240 once warm): a warm worker has served
    batches before, so the timed scenarios start after one like theirs.
    """
    deadline = time.monotonic() + 180
    while stack.models_loaded() < stack.workers and time.monotonic() < deadline:
        api = Api(stack.base_url, stack.token)
        ids = []
        for seed in itertools.islice(seeds, stack.workers * 2):
            ids += prediction_ids(api.upload([(f"w{seed}.jpg", jpeg_bytes(seed))])[1])
        api.close()
        wait_for_predictions(ids)
    if stack.models_loaded() < stack.workers:
        raise RuntimeError(f"only {stack.models_loaded()} of {stack.workers} worker processes loaded the model")
    if per_request:
        batch_uploads(stack, seeds, per_request, per_request)
        wait_for_empty_queue()


def end_to_end(bench, backend: str, workers: int, args, seeds) -> dict:
    threads = max(1, (os.cpu_count() or 1) // workers)  # processes x threads = cores
    print(f"end to end: {backend}, {workers} inference process(es) x {threads} thread(s)", flush=True)
    with Stack(bench, backend=backend, workers=workers, threads=threads) as stack:
        warm_up(stack, seeds, args.per_request)
        result = {"backend": backend, "worker_processes": workers, "inference_threads": threads}
        result["batch"] = batch_uploads(stack, seeds, args.images, args.per_request)
        result["concurrent_singles"] = concurrent_singles(stack, seeds, args.images, args.clients)
        result["single_warm"] = sequential_singles(stack, seeds, args.single)
        result["worker_memory_mb"] = stack.worker_memory_mb()
    print(json.dumps(result), flush=True)
    return result


# --- 3. Ratios and targets.


def summarise(results: dict) -> dict:
    targets = []
    for run in results["end_to_end"]:
        ceiling = results["in_process"][run["backend"]]["batch_32"]["images_per_s"]
        run["ratio_batch_to_in_process_batch32"] = round(run["batch"]["images_per_s"] / ceiling, 3)
        run["ratio_concurrent_to_in_process_batch32"] = round(run["concurrent_singles"]["images_per_s"] / ceiling, 3)
        p50 = run["single_warm"]["upload_sent_to_done_ms"]["p50"]
        targets.append(
            {
                "backend": run["backend"],
                "worker_processes": run["worker_processes"],
                "batch_throughput_ratio": run["ratio_batch_to_in_process_batch32"],
                "batch_throughput_target_met": run["ratio_batch_to_in_process_batch32"] >= 0.5,
                "single_p50_ms": p50,
                "single_p50_target_met": p50 is not None and p50 <= 100,
            }
        )
    return {"batch_throughput_at_least": 0.5, "single_p50_at_most_ms": 100, "by_configuration": targets}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark the model in-process and the whole stack end to end.")
    parser.add_argument("--model-dir", type=Path, help="models/<version>; default: the newest under models/")
    parser.add_argument("--backends", default="keras,litert")
    parser.add_argument("--workers", default="1,2", help="inference processes to try, comma-separated")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--per-request", type=int, default=100)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--single", type=int, default=40, help="sequential single uploads on a warm worker")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per in-process batch size")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) for a look")
    args = parser.parse_args(argv)
    backends = args.backends.split(",")
    model_dir = (args.model_dir or newest_model_dir()).resolve()

    workdir = Path(tempfile.mkdtemp(prefix="lesionsite-bench-"))
    try:
        bench = prepare(model_dir, workdir, litert="litert" in backends)
        version_dir = workdir / "models" / model_dir.name
        results = {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "model": {"version": bench.version, "dir": str(model_dir)},
            "in_process": {},
            "in_process_1_thread": {},
            "end_to_end": [],
        }
        for backend in backends:
            print(f"in-process: {backend}", flush=True)
            results["in_process"][backend] = in_process(version_dir, backend, 0, args.seconds)
            results["in_process_1_thread"][backend] = in_process(version_dir, backend, 1, args.seconds)
            print(json.dumps(results["in_process"][backend]), flush=True)
        seeds = itertools.count(1)
        for backend in backends:
            for workers in (int(n) for n in args.workers.split(",")):
                results["end_to_end"].append(end_to_end(bench, backend, workers, args, seeds))
        results["targets"] = summarise(results)
        results["machine"]["load_average_at_end"] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        print(json.dumps(results["targets"], indent=2))
        print(f"wrote {args.out}")
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
