"""An https receiver: the POST goes to the checked address, and the certificate must name the host."""

from __future__ import annotations

import ssl
import subprocess

import pytest

from classifier.lib.webhook_targets import check_target, post
from tests.webhook_receiver import running_receiver


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for localhost, and a TLS context that serves it."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(cert, key)
    return cert, serving


def send(url: str):
    target = check_target(url, allow_http=False, allow_private=True)
    return post(target, b"{}", {"Content-Type": "application/json"}, timeout=3)


def test_it_delivers_over_tls_to_a_host_whose_certificate_it_trusts(certificate, monkeypatch):
    cert, serving = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted, as a public CA's certificate would be
    with running_receiver([204], tls=serving) as receiver:
        answer = send(receiver.url)

    assert answer.delivered and answer.status == 204
    assert receiver.received[0].headers["Host"].startswith("localhost:")


def test_it_refuses_a_certificate_it_cannot_verify(certificate):
    _, serving = certificate
    with running_receiver([200], tls=serving) as receiver:
        answer = send(receiver.url)

    assert not answer.delivered and answer.status is None
    assert "TLS failed" in answer.error and "CERTIFICATE_VERIFY_FAILED" in answer.error
    assert receiver.received == []
