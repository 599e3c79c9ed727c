"""A real S3-compatible server for tests: moto's standalone server as its own process, over HTTP.

Nothing leaves the machine: the server listens on 127.0.0.1, and its buckets live in its
memory. A test points the web side at it with ``storages_for`` (override_settings) and a worker
process with ``worker_env``, both through the same STORAGE_URL a deployment would set.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.stack import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "lesionsite-test", "AWS_SECRET_ACCESS_KEY": "lesionsite-test-secret"}
REGION = "us-east-1"


@dataclass
class ObjectStore:
    endpoint: str
    bucket: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/site?endpoint_url={self.endpoint}&region={REGION}"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip

    def keys(self, prefix: str = "site/") -> list[str]:
        listed = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def write(self, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=self.bucket, Key=key, Body=body)

    def empty(self) -> None:
        client = self.client()
        for key in self.keys(""):
            client.delete_object(Bucket=self.bucket, Key=key)

    def worker_env(self) -> dict[str, str]:
        return {"STORAGE_URL": self.url, **CREDENTIALS}


def storages_for(url: str) -> dict:
    """The STORAGES setting of a process started with STORAGE_URL=url, as settings.py makes it,
    with the test credentials; one attempt and a 1 s connect timeout, so an outage shows at once."""
    from django.conf import settings

    from lesionsite.env import envstorage
    from lesionsite.storages import s3_storage

    with _environment({"STORAGE_URL": url}):
        options = envstorage("STORAGE_URL")
    default = s3_storage(options, connect_timeout=1, read_timeout=10, attempts=1)
    default["OPTIONS"].update(
        access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"], secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    )
    return {**settings.STORAGES, "default": default}


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def moto_server(log_path: Path, bucket: str = "lesionsite-test") -> Iterator[ObjectStore]:
    port = free_port()
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    store = ObjectStore(f"http://127.0.0.1:{port}", bucket)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                store.client().create_bucket(Bucket=bucket)
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's S3 server did not start:\n{log_path.read_text()}") from None
                time.sleep(0.2)
        yield store
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
