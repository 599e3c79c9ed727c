"""Typed readers for settings that come from the environment.

Each raises ImproperlyConfigured on a bad value, so a typo in a deployment fails
at start-up with the variable's name rather than somewhere deep in a request.
"""

from __future__ import annotations

import ipaddress
import os
import re

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
