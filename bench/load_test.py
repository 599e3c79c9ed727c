"""Load test: many clients upload single images at once; nothing may fail or get lost.

Each of ``clients`` threads uploads its share of ``uploads`` images, one request
each, then polls its predictions until they are done. Passes only with zero 5xx
answers, zero transport errors, every upload accepted, and every prediction done.
Bounded: a fixed number of uploads, and one deadline for the whole run.

Against a stack that is already running (e.g. `make run`, with its demo clinician):

    python -m bench.load_test --url http://127.0.0.1:8000 --username clinician --password lesionsite-clinician

Or let it start its own stack on loopback (gunicorn, Celery, the local Redis and
PostgreSQL, as bench/run.py does) and stop it afterwards:

    python -m bench.load_test --start-stack
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.client import Api, get_token, jpeg_bytes, percentiles, prediction_ids

POLL_INTERVAL = 0.25  # seconds between a client's polling rounds: light on the server, fine enough here


@dataclass
class LoadResult:
    uploads: int
    clients: int
    seconds: float
    status_codes: dict[str, int] = field(default_factory=dict)
    transport_errors: list[str] = field(default_factory=list)
    done: int = 0
    failed: int = 0
    lost: int = 0  # accepted, but not finished when the deadline came
    upload_ms: dict = field(default_factory=dict)
    upload_to_done_ms: dict = field(default_factory=dict)  # client-side, to the poll that first saw "done"

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.status_codes.items() if code.startswith("5"))

    @property
    def ok(self) -> bool:
        return (
            self.server_errors == 0
            and not self.transport_errors
            and self.status_codes.get("201", 0) == self.uploads
            and self.done == self.uploads
        )

    def summary(self) -> dict:
        return {**asdict(self), "server_errors": self.server_errors, "ok": self.ok}


def run_load_test(
    base_url: str, token: str, uploads: int = 200, clients: int = 20, timeout: float = 300.0, seed: int = 0
) -> LoadResult:
    """Upload ``uploads`` images from ``clients`` concurrent clients; wait for every prediction."""
    deadline = time.monotonic() + timeout
    lock = threading.Lock()
    codes: Counter[str] = Counter()
    errors: list[str] = []
    upload_ms: list[float] = []
    done_ms: list[float] = []
    outcome: Counter[str] = Counter()
    # Make the files first, so the clients start together and time only the server.
    shares = [[jpeg_bytes(seed + i) for i in range(start, uploads, clients)] for start in range(clients)]

    def client(files: list[bytes]) -> None:
        api = Api(base_url, token)
        pending: dict[int, float] = {}  # prediction id -> when its upload started
        try:
            for data in files:
                if time.monotonic() > deadline:
                    break
                began = time.monotonic()
                try:
                    status, body = api.upload([("lesion.jpg", data)])
                except Exception as exc:  # a refused or reset connection counts, it never crashes the run
                    with lock:
                        errors.append(f"upload: {exc.__class__.__name__}: {exc}")
                    continue
                with lock:
                    codes[str(status)] += 1
                    upload_ms.append((time.monotonic() - began) * 1000)
                for prediction_id in prediction_ids(body) if status == 201 else []:
                    pending[prediction_id] = began
            while pending and time.monotonic() < deadline:
                for prediction_id in list(pending):
                    try:
                        status, state = api.prediction_status(prediction_id)
                    except Exception as exc:
                        with lock:
                            errors.append(f"poll: {exc.__class__.__name__}: {exc}")
                        continue
                    if status >= 500:
                        with lock:
                            codes[str(status)] += 1
                    if state in ("done", "failed"):
                        with lock:
                            outcome[state] += 1
                            done_ms.append((time.monotonic() - pending.pop(prediction_id)) * 1000)
                if pending:
                    time.sleep(POLL_INTERVAL)
            with lock:
                outcome["lost"] += len(pending)
        finally:
            api.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(share,), daemon=True) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(deadline - time.monotonic(), 0) + 5)
    return LoadResult(
        uploads=uploads,
        clients=clients,
        seconds=round(time.monotonic() - started, 2),
        status_codes=dict(codes),
        transport_errors=errors[:20],
        done=outcome["done"],
        failed=outcome["failed"],
        lost=outcome["lost"] + sum(thread.is_alive() for thread in threads),
        upload_ms=percentiles(upload_ms),
        upload_to_done_ms=percentiles(done_ms),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Concurrent single-image uploads; zero 5xx, zero lost predictions.")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="a running stack (loopback)")
    parser.add_argument("--username", default="clinician")
    parser.add_argument("--password", default="lesionsite-clinician")
    parser.add_argument("--token", help="an API token instead of username/password")
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300, help="seconds for the whole run")
    parser.add_argument("--start-stack", action="store_true", help="start a bench stack (bench/run.py's) and stop it")
    parser.add_argument("--backend", default="keras", choices=["keras", "litert"], help="with --start-stack")
    parser.add_argument("--workers", type=int, default=2, help="inference processes, with --start-stack")
    parser.add_argument("--model-dir", type=Path, help="with --start-stack; default: the newest under models/")
    args = parser.parse_args(argv)

    if args.start_stack:
        from bench.run import warm_up
        from bench.stack import bench_stack

        with bench_stack(backend=args.backend, workers=args.workers, model_dir=args.model_dir) as stack:
            warm_up(stack, iter(range(10**6, 10**6 + 1000)))  # measure a warm stack, not the model loads
            result = run_load_test(stack.base_url, stack.token, args.uploads, args.clients, args.timeout)
    else:
        if not args.url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
            parser.error("the load test runs against loopback only")
        token = args.token or get_token(args.url, args.username, args.password)
        result = run_load_test(args.url, token, args.uploads, args.clients, args.timeout)
    print(json.dumps(result.summary(), indent=2))
    print("PASS" if result.ok else "FAIL", file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
