"""Where a webhook may be sent, and sending it there: the guard against server-side request forgery.

A webhook makes the platform send a request to an address a user chose. Without a guard
that user could aim it at the site's own network (the database, Redis, a cloud's metadata
service at 169.254.169.254) and use the platform as their proxy. So a target's host is
resolved and every address it resolves to must be public; it is checked when the URL is
registered and again before each delivery (DNS can change), and the request is sent to
the very address that was checked (a second lookup could answer differently: DNS
rebinding). Redirects are never followed: http.client does not follow them.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 500


class TargetRefused(ValueError):
    """A URL webhooks may not be sent to; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query
    addresses: tuple[str, ...]  # as checked, in the resolver's order


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer at all
    error: str  # empty for a 2xx

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])  # an IPv6 zone (fe80::1%eth0) is link-local anyway
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    special = ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast
    # is_global also leaves out ranges that are none of those, e.g. carrier-grade NAT (100.64.0.0/10).
    return ip.is_global and not special and not ip.is_unspecified


def check_target(url: str, *, allow_http: bool, allow_private: bool, resolve=socket.getaddrinfo) -> Target:
    """The target ``url`` names, resolved and checked; TargetRefused with the reason otherwise.

    ``allow_private``: addresses in the site's own networks are allowed (tests, on-premises
    receivers); plain http is then allowed to them too, since it never leaves those networks.
    ``allow_http``: plain http to any address (DEBUG).
    """
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused("The URL must start with https://.")
    if scheme == "http" and not (allow_http or allow_private):
        raise TargetRefused("The URL must use https: events must not cross the network in clear text.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("The URL must not carry a user name or password: check the signature instead.")
    if not parts.hostname:
        raise TargetRefused("The URL has no host name.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("The URL's port is not a number between 0 and 65535.") from None
    try:
        found = resolve(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"The host {parts.hostname} could not be resolved ({exc}).") from None
    addresses = tuple(dict.fromkeys(info[4][0] for info in found))
    if not addresses:
        raise TargetRefused(f"The host {parts.hostname} resolves to no address.")
    private = [address for address in addresses if not is_public(address)]
    if private and not allow_private:
        raise TargetRefused(
            f"The host {parts.hostname} resolves to {', '.join(private)}, which is not a public address "
            "(loopback, private, link-local, reserved, multicast or unspecified): webhooks may not reach "
            "the site's own network."
        )
    if scheme == "http" and not allow_http and len(private) < len(addresses):
        raise TargetRefused("The URL must use https: plain http is allowed only to addresses in the site's network.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, parts.hostname, port, path, addresses)


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` to the target's checked addresses (the first that connects); never raises for the network."""
    errors = []
    for address in target.addresses:
        connection = _connection(target, address, timeout)
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(64 * 1024)  # the answer's body is not used; read a little so the server is not cut off
            if 200 <= response.status < 300:
                return Answer(response.status, "")
            redirect = " (redirects are not followed)" if 300 <= response.status < 400 else ""
            return Answer(response.status, f"HTTP {response.status} {response.reason}{redirect}"[:200])
        except TimeoutError:
            errors.append(f"{address}: no answer within {timeout:g} s")
        except ssl.SSLError as exc:
            errors.append(f"{address}: TLS failed ({exc.reason or exc})")
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{address}: {exc.__class__.__name__}: {exc}")
        finally:
            connection.close()
    return Answer(None, "; ".join(errors)[:200])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address; the Host header still names the host."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As _PinnedHTTPConnection, over TLS whose certificate must name the host (not the address)."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


def _connection(target: Target, address: str, timeout: float) -> http.client.HTTPConnection:
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    return kind(target.host, target.port, address, timeout)
