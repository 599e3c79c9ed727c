"""Typed readers for settings that come from the environment.

Each raises ImproperlyConfigured on a bad value, so a typo in a deployment fails
at start-up with the variable's name rather than somewhere deep in a request.
"""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import parse_qsl, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str) -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def envint(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def envfloat(name: str, default: float, minimum: float | None = None, maximum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name}={value} must be between {minimum} and {maximum}")
    return value


def envlist(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def envfloats(name: str, default: list[float], minimum: float = 0.0) -> list[float]:
    """Comma-separated numbers ("10, 60, 300"), at least one, each at least ``minimum``."""
    values = []
    for item in envlist(name, [str(value) for value in default]):
        try:
            value = float(item)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not a number") from None
        if value < minimum:
            raise ImproperlyConfigured(f"{name}: {item} must be at least {minimum:g}")
        values.append(value)
    if not values:
        raise ImproperlyConfigured(f"{name} must list at least one number")
    return values


RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)s?\s*$", re.IGNORECASE)
NO_LIMIT_WORDS = {"", "0", "off", "none"}


def envrate(name: str, default: str) -> str:
    """A request rate such as "300/minute" (per s, m, h or d), or "" for no limit.

    "0", "off" and "none" also mean no limit: an operator who writes them means that,
    and DRF would otherwise fail every request on a rate it cannot parse.
    """
    raw = os.environ.get(name, default)
    if raw.strip().lower() in NO_LIMIT_WORDS:
        return ""
    match = RATE.match(raw)
    if match is None:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a rate: write requests/period, e.g. 300/minute or 10/s, or off for no limit"
        )
    return f"{int(match.group(1))}/{match.group(2).lower()}"


def envnetworks(name: str, default: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated addresses or CIDR ranges ("10.0.0.0/8, ::1"); a single address is a /32 (/128)."""
    networks = []
    for item in envlist(name, default):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP address or CIDR range") from None
    return networks


STORAGE_URL_OPTIONS = {"endpoint_url", "region", "addressing_style"}
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def envstorage(name: str) -> dict | None:
    """An S3-compatible store, or None when unset: django-storages' S3Storage options.

    ``name`` holds a URL, ``s3://bucket/prefix?endpoint_url=http://minio:9000&region=us-east-1``
    (options: endpoint_url, region, addressing_style). Without it, Django-storages' usual
    variables are read: AWS_STORAGE_BUCKET_NAME (which turns the store on), AWS_LOCATION,
    AWS_S3_ENDPOINT_URL, AWS_S3_REGION_NAME, AWS_S3_ADDRESSING_STYLE. Credentials never go in
    the URL: a URL is printed in logs, process lists and compose files, so the keys come from
    boto3's own chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws, an instance role).
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        bucket = envstr("AWS_STORAGE_BUCKET_NAME", "").strip()
        if not bucket:
            return None
        return _storage_options(
            "AWS_STORAGE_BUCKET_NAME",
            bucket,
            location=envstr("AWS_LOCATION", ""),
            endpoint=envstr("AWS_S3_ENDPOINT_URL", "").strip() or None,
            region=envstr("AWS_S3_REGION_NAME", "").strip() or None,
            style=envstr("AWS_S3_ADDRESSING_STYLE", "").strip() or None,
        )
    parts = urlsplit(raw)
    if parts.scheme != "s3":
        raise ImproperlyConfigured(f"{name}={raw!r} must start with s3:// (s3://bucket/prefix?endpoint_url=...)")
    if parts.username or parts.password:
        raise ImproperlyConfigured(
            f"{name} must not hold credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - STORAGE_URL_OPTIONS)
    if unknown:
        raise ImproperlyConfigured(
            f"{name}: unknown option {', '.join(unknown)} (known: {', '.join(sorted(STORAGE_URL_OPTIONS))})"
        )
    return _storage_options(
        name,
        parts.hostname or "",
        location=parts.path,
        endpoint=query.get("endpoint_url") or None,
        region=query.get("region") or None,
        style=query.get("addressing_style") or None,
    )


def _storage_options(name: str, bucket: str, *, location: str, endpoint, region, style) -> dict:
    if not BUCKET_NAME.fullmatch(bucket):
        raise ImproperlyConfigured(
            f"{name}: {bucket!r} is not a bucket name (3-63 lower-case letters, digits, dots and hyphens)"
        )
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ImproperlyConfigured(f"{name}: endpoint_url={endpoint!r} must be an http:// or https:// URL")
    # A self-hosted store (MinIO, Ceph) is reached by its address, not a bucket's DNS name.
    style = style or ("path" if endpoint else "auto")
    if style not in ("auto", "path", "virtual"):
        raise ImproperlyConfigured(f"{name}: addressing_style={style!r} must be auto, path or virtual")
    return {
        "bucket_name": bucket,
        "location": location.strip("/"),
        "endpoint_url": endpoint,
        "region_name": region,
        "addressing_style": style,
    }
