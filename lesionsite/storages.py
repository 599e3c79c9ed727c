"""The STORAGES entry for an S3-compatible store (settings.py, and tests that start one)."""

from __future__ import annotations


def s3_storage(options: dict, *, connect_timeout: int, read_timeout: int, attempts: int) -> dict:
    """django-storages' S3 backend with ``options`` (lesionsite.env.envstorage's), private.

    Private objects, and no URL that works without the app: every picture is served by an
    access-checked view that streams it (classifier.views.private_file).
    """
    from botocore.config import Config

    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            **options,
            "default_acl": "private",
            "querystring_auth": True,
            "querystring_expire": 60,
            # As on the filesystem: a name already taken gets a new one instead of overwriting
            # (pictures are content-addressed, so that only happens in a race between two uploads).
            "file_overwrite": False,
            "signature_version": "s3v4",
            # An unreachable store must fail an upload within seconds (a 503), not hang it for
            # botocore's default 60 s connect timeout times its retries.
            "client_config": Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": attempts, "mode": "standard"},
            ),
        },
    }
