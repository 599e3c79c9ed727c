"""Signing a webhook's body, Stripe's way: HMAC-SHA256 of "<timestamp>.<body>" with the endpoint's secret.

The timestamp is signed with the body, so a receiver that refuses old timestamps also
refuses a captured request sent again later (a replay); the README shows the receiver's side.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "Lesionsite-Signature"
EVENT_HEADER = "Lesionsite-Event"
DELIVERY_HEADER = "Lesionsite-Delivery"
SECRET_PREFIX = "whsec_"  # recognisable in a leaked config file or a secret scanner's rules
DEFAULT_TOLERANCE_SECONDS = 300  # Stripe's default: room for clock skew and a retry in flight


class SignatureError(ValueError):
    """A signature header that does not prove the body came from the platform; the message says why."""


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)  # 256 random bits


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={_mac(secret, body, timestamp)}"


def verify(
    secret: str, header: str, body: bytes, *, tolerance: float = DEFAULT_TOLERANCE_SECONDS, now: float | None = None
) -> int:
    """The signed timestamp if ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of now."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError("The signature header has no timestamp (t=...).") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise SignatureError(f"The signature's timestamp is more than {tolerance:g} s from now: refused as a replay.")
    expected = _mac(secret, body, timestamp)
    # Any v1 may match: during a secret's rotation a sender may sign with both.
    if not any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", [])):
        raise SignatureError("No v1 signature in the header matches the body.")
    return timestamp


def _mac(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
