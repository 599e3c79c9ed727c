"""STORAGE_URL (or django-storages' AWS_* variables) turns the S3 backend on; a bad value stops start-up by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from lesionsite.env import envstorage
from tests.conftest import REPO_ROOT

STORE_VARIABLES = ("STORAGE_URL", "AWS_STORAGE_BUCKET_NAME", "AWS_LOCATION", "AWS_S3_ENDPOINT_URL",
                   "AWS_S3_REGION_NAME", "AWS_S3_ADDRESSING_STYLE", "MODEL_VERSIONS_IN_STORE")  # fmt: skip


@pytest.fixture(autouse=True)
def no_store_in_the_environment(monkeypatch):
    for name in STORE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_a_storage_url_gives_the_bucket_prefix_endpoint_and_region(monkeypatch):
    monkeypatch.setenv("STORAGE_URL", "s3://lesionsite/site/a?endpoint_url=http://minio:9000&region=eu-west-1")

    assert envstorage("STORAGE_URL") == {
        "bucket_name": "lesionsite",
        "location": "site/a",
        "endpoint_url": "http://minio:9000",
        "region_name": "eu-west-1",
        "addressing_style": "path",  # a self-hosted store is reached by its address, not a bucket's DNS name
    }


def test_aws_s3_itself_needs_only_the_bucket(monkeypatch):
    monkeypatch.setenv("STORAGE_URL", "s3://lesionsite")

    assert envstorage("STORAGE_URL") == {"bucket_name": "lesionsite", "location": "", "endpoint_url": None,
                                         "region_name": None, "addressing_style": "auto"}  # fmt: skip


def test_without_either_the_filesystem_stays_the_default():
    assert envstorage("STORAGE_URL") is None


def test_django_storages_usual_variables_turn_it_on_too(monkeypatch):
    monkeypatch.setenv("AWS_STORAGE_BUCKET_NAME", "lesionsite")
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", "https://ceph.example.org")
    monkeypatch.setenv("AWS_LOCATION", "/pictures/")

    options = envstorage("STORAGE_URL")

    assert (options["bucket_name"], options["location"], options["endpoint_url"]) == (
        "lesionsite", "pictures", "https://ceph.example.org",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("https://lesionsite/", "must start with s3://"),
        ("s3://key:secret@lesionsite/", "must not hold credentials: set AWS_ACCESS_KEY_ID"),
        ("s3://Lesion_Site/", "'lesion_site' is not a bucket name"),
        ("s3://lesionsite/?endpoint=http://minio:9000", "unknown option endpoint (known: addressing_style"),
        ("s3://lesionsite/?endpoint_url=minio:9000", "endpoint_url='minio:9000' must be an http:// or https:// URL"),
        ("s3://lesionsite/?addressing_style=dns", "addressing_style='dns' must be auto, path or virtual"),
    ],
)
def test_a_bad_storage_url_is_refused_naming_what_is_wrong(monkeypatch, url, complaint):
    monkeypatch.setenv("STORAGE_URL", url)

    with pytest.raises(ImproperlyConfigured, match="STORAGE_URL") as refused:
        envstorage("STORAGE_URL")
    assert complaint in str(refused.value)


def settings_in_a_fresh_process(env: dict) -> dict:
    script = (
        "import json, lesionsite.settings as s; d = s.STORAGES['default']; o = d.get('OPTIONS', {}); "
        "print(json.dumps({'backend': d['BACKEND'], 'acl': o.get('default_acl'), 'signed': o.get('querystring_auth'),"
        " 'bucket': o.get('bucket_name'), 'in_store': s.MODEL_VERSIONS_IN_STORE, 'cache': str(s.MODEL_CACHE_DIR)}))"
    )
    environment = {key: value for key, value in os.environ.items() if key not in STORE_VARIABLES}
    done = subprocess.run([sys.executable, "-c", script], env={**environment, **env}, cwd=REPO_ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_settings_use_the_private_s3_backend_and_keep_model_versions_in_the_store():
    configured = settings_in_a_fresh_process({"STORAGE_URL": "s3://lesionsite/?endpoint_url=http://minio:9000",
                                              "MODEL_CACHE_DIR": "/tmp/cache"})  # fmt: skip

    assert configured == {"backend": "storages.backends.s3.S3Storage", "acl": "private", "signed": True,
                          "bucket": "lesionsite", "in_store": True, "cache": "/tmp/cache"}  # fmt: skip


def test_settings_keep_the_filesystem_without_a_store():
    configured = settings_in_a_fresh_process({})

    assert configured["backend"] == "django.core.files.storage.FileSystemStorage"
    assert configured["in_store"] is False and configured["cache"].endswith("var/model-cache")
