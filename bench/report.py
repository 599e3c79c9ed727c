"""Markdown tables of a benchmark result, for docs/PERFORMANCE.md.

python -m bench.report [bench/results/latest.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.run import RESULTS


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if cell is None else str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render(results: dict) -> str:
    machine = results["machine"]
    parts = [
        f"Run {results['when']} on {machine['nproc']} cores ({machine['cpu_model']}), {machine['ram_gb']} GB RAM, "
        f"Python {machine['python']}; model `{results['model']['version']}`; "
        f"training running meanwhile: {machine['training_running_during_bench']}; "
        f"load average at start {[round(x, 2) for x in machine['load_average_at_start']]}.",
        "",
        "In-process (worker.model_cache, random pixels):",
        "",
    ]
    rows = []
    for label, group in (("all cores", "in_process"), ("1 thread", "in_process_1_thread")):
        for backend, run in results.get(group, {}).items():
            rows.append(
                [
                    backend,
                    label,
                    run["batch_1"]["ms_per_image"],
                    run["batch_1"]["images_per_s"],
                    run["batch_32"]["ms_per_image"],
                    run["batch_32"]["images_per_s"],
                    run["rss_mb_after_load_and_batches"],
                    run["load_s"],
                ]
            )
    parts.append(
        table(
            ["backend", "threads", "b1 ms/img", "b1 img/s", "b32 ms/img", "b32 img/s", "RSS MB", "load s"],
            rows,
        )
    )
    parts += ["", "End to end (gunicorn + Celery + Redis + PostgreSQL, loopback):", ""]
    rows = []
    for run in results["end_to_end"]:
        config = f"{run['backend']} {run['worker_processes']}x{run['inference_threads']}"
        for name in ("batch", "concurrent_singles"):
            scenario = run[name]
            rows.append(
                [
                    config,
                    name,
                    scenario["images"],
                    scenario["done"],
                    scenario["seconds_to_all_done"],
                    scenario["images_per_s"],
                    run[f"ratio_{'batch' if name == 'batch' else 'concurrent'}_to_in_process_batch32"],
                    scenario["upload_to_done_ms_server"]["p50"],
                    scenario["upload_to_done_ms_server"]["p95"],
                    scenario["upload_request_ms_client"]["p50"],
                    scenario.get("queue_drained_after_s", "-"),  # absent from runs before coalescing
                ]
            )
    parts.append(
        table(
            [
                "backend procs x threads",
                "scenario",
                "images",
                "done",
                "s to all done",
                "img/s",
                "ratio to in-process b32",
                "upload-to-done p50 ms",
                "p95 ms",
                "upload request p50 ms",
                "queue empty s later",
            ],
            rows,
        )  # fmt: skip
    )
    parts += ["", "One image at a time on a warm worker (upload sent -> prediction row finished_at):", ""]
    rows = []
    for run in results["end_to_end"]:
        single = run["single_warm"]
        rows.append(
            [
                f"{run['backend']} {run['worker_processes']}x{run['inference_threads']}",
                single["images"],
                single["upload_sent_to_done_ms"]["p50"],
                single["upload_sent_to_done_ms"]["p95"],
                single["upload_request_ms_client"]["p50"],
                single["created_to_started_ms"]["p50"],
                single["started_to_finished_ms"]["p50"],
                single["upload_to_done_ms_server"]["p50"],
                run["worker_memory_mb"]["main"],
                run["worker_memory_mb"]["pool"],
            ]
        )
    parts.append(
        table(
            [
                "backend procs x threads",
                "n",
                "upload-to-done p50 ms",
                "p95 ms",
                "upload request p50",
                "row created->started p50",
                "row started->finished p50",
                "row created->finished p50",
                "worker main RSS MB",
                "pool RSS MB",
            ],
            rows,
        )  # fmt: skip
    )
    return "\n".join(parts)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    print(render(json.loads(path.read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main()
