"""Where webhooks may go: public addresses only, https only, unless the settings allow (SSRF)."""

from __future__ import annotations

import socket

import pytest

from classifier.lib.webhook_targets import TargetRefused, check_target, is_public

STRICT = {"allow_http": False, "allow_private": False}


def resolving_to(*addresses):
    def resolve(host, port, type=0):
        family = lambda a: socket.AF_INET6 if ":" in a else socket.AF_INET  # noqa: E731
        return [(family(a), socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    return resolve


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.5", "192.168.1.1", "169.254.169.254", "::1", "fe80::1", "fc00::1", "0.0.0.0",
     "::", "224.0.0.1", "240.0.0.1", "100.64.0.1", "::ffff:127.0.0.1", "::ffff:10.0.0.1"],
)  # fmt: skip
def test_it_refuses_a_host_that_resolves_to_a_non_public_address(address):
    assert not is_public(address)
    with pytest.raises(TargetRefused, match="not a public address"):
        check_target("https://hooks.example.com/x", **STRICT, resolve=resolving_to(address))


def test_it_refuses_a_host_when_any_of_its_addresses_is_private():
    with pytest.raises(TargetRefused, match="10.0.0.7"):
        check_target("https://hooks.example.com/x", **STRICT, resolve=resolving_to("93.184.215.14", "10.0.0.7"))


def test_it_refuses_literal_private_addresses_without_a_lookup():
    for url in ("https://127.0.0.1/", "https://10.0.0.1:8443/", "https://169.254.169.254/latest/meta-data/",
                "https://[::1]/", "https://localhost/"):  # fmt: skip
        with pytest.raises(TargetRefused):
            check_target(url, **STRICT)


def test_it_accepts_a_public_https_target_and_keeps_the_checked_addresses():
    target = check_target("https://hooks.example.com:8443/in?x=1", **STRICT, resolve=resolving_to("93.184.215.14"))
    assert (target.scheme, target.host, target.port, target.path) == ("https", "hooks.example.com", 8443, "/in?x=1")
    assert target.addresses == ("93.184.215.14",)


def test_a_literal_public_address_is_accepted():
    assert check_target("https://93.184.215.14/", **STRICT).addresses == ("93.184.215.14",)


def test_it_refuses_plain_http_outside_debug():
    with pytest.raises(TargetRefused, match="https"):
        check_target("http://hooks.example.com/", **STRICT, resolve=resolving_to("93.184.215.14"))


def test_allowing_private_targets_allows_them_and_plain_http_to_them_only():
    options = {"allow_http": False, "allow_private": True}
    assert check_target("http://127.0.0.1:8080/", **options).addresses == ("127.0.0.1",)
    assert check_target("https://10.0.0.5/", **options, resolve=resolving_to("10.0.0.5")).port == 443
    with pytest.raises(TargetRefused, match="plain http is allowed only"):
        check_target("http://hooks.example.com/", **options, resolve=resolving_to("93.184.215.14"))


def test_debug_allows_plain_http_anywhere():
    options = {"allow_http": True, "allow_private": True}
    assert check_target("http://hooks.example.com/", **options, resolve=resolving_to("93.184.215.14")).port == 80


@pytest.mark.parametrize(
    ("url", "message"),
    [("ftp://hooks.example.com/", "https://"), ("https://user:pw@hooks.example.com/", "user name or password"),
     ("https:///nohost", "no host"), ("https://hooks.example.com:99999/", "port"),
     ("https://" + "a" * 500 + ".com/", "longer than")],
)  # fmt: skip
def test_it_names_what_is_wrong_with_a_malformed_url(url, message):
    with pytest.raises(TargetRefused, match=message):
        check_target(url, **STRICT, resolve=resolving_to("93.184.215.14"))


def test_a_host_that_does_not_resolve_is_refused():
    def fail(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    with pytest.raises(TargetRefused, match="could not be resolved"):
        check_target("https://no-such-host.invalid/", **STRICT, resolve=fail)
