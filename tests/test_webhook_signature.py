"""The webhook signature: HMAC-SHA256 over "<timestamp>.<body>", and the README's way to check it."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

import pytest

from classifier.lib.webhook_signature import SECRET_PREFIX, SignatureError, new_secret, signature_header, verify
from tests.conftest import REPO_ROOT

SECRET = "whsec_test-secret"
BODY = b'{"id":"e1","type":"prediction.finished"}'
NOW = 1_780_000_000


def test_it_signs_the_timestamp_and_body_as_stripe_does():
    expected = hmac.new(SECRET.encode(), b"1780000000." + BODY, hashlib.sha256).hexdigest()
    header = signature_header(SECRET, BODY, NOW)
    assert header == f"t=1780000000,v1={expected}"
    assert verify(SECRET, header, BODY, now=NOW) == NOW


def test_it_refuses_a_changed_body():
    header = signature_header(SECRET, BODY, NOW)
    with pytest.raises(SignatureError, match="matches the body"):
        verify(SECRET, header, BODY.replace(b"e1", b"e2"), now=NOW)


def test_it_refuses_another_secret():
    header = signature_header("whsec_someone-else", BODY, NOW)
    with pytest.raises(SignatureError, match="matches the body"):
        verify(SECRET, header, BODY, now=NOW)


def test_it_refuses_an_old_timestamp_as_a_replay():
    header = signature_header(SECRET, BODY, NOW)
    verify(SECRET, header, BODY, now=NOW + 299)
    with pytest.raises(SignatureError, match="replay"):
        verify(SECRET, header, BODY, now=NOW + 301)


def test_it_refuses_a_header_without_a_timestamp():
    with pytest.raises(SignatureError, match="no timestamp"):
        verify(SECRET, "v1=00", BODY, now=NOW)


def test_a_new_secret_is_long_random_and_recognisable():
    one, two = new_secret(), new_secret()
    assert one.startswith(SECRET_PREFIX) and len(one) > 40 and one != two


def readme_verifier():
    """The README's verification snippet, run as it is written there."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("### Webhooks") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102  (our own README)
    return namespace["verify_lesionsite_signature"]


def test_the_readmes_snippet_accepts_a_real_signature_and_refuses_a_forged_or_old_one():
    verify_in_readme = readme_verifier()
    now = int(time.time())
    header = signature_header(SECRET, BODY, now)
    assert verify_in_readme(SECRET, header, BODY) is True
    assert verify_in_readme(SECRET, header, BODY + b" ") is False
    assert verify_in_readme(SECRET, signature_header(SECRET, BODY, now - 3600), BODY) is False
