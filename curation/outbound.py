"""The one outbound HTTP client: timeouts, redirects and the address checks live here.

Every request Ballot makes to a URL a user typed (webhooks today) goes through
``post``. A user-supplied URL is a server-side request forgery risk: it could
name the cloud metadata service, a database on the private network or the
server itself. So each hop:

1. resolves the host once and checks every candidate address against the
   policy (no private, loopback, link-local, multicast, reserved, unspecified or
   cloud-metadata address unless a setting allows it);
2. connects to the address that was checked, never resolving the name again, so
   a DNS answer that changes between the check and the connection (DNS
   rebinding) cannot redirect the request; TLS still verifies the certificate
   against the host name;
3. follows a redirect only by going through 1 and 2 again for the new URL.

Errors are ``TransportError``; ``permanent`` says whether a retry could help
(Healthchecks' ``hc/api/transports.py`` pattern).

Settings (each also read from the environment of the same name):
``BALLOT_WEBHOOK_ALLOW_PRIVATE`` (private, loopback and link-local addresses
allowed; metadata addresses still refused), ``BALLOT_WEBHOOK_ALLOWED_NETWORKS``
(comma-separated CIDRs allowed whatever they are), ``BALLOT_WEBHOOK_TIMEOUT_SECONDS``
(per hop, default 10), ``BALLOT_WEBHOOK_MAX_REDIRECTS`` (default 3; 0 refuses them).
``BALLOT_OUTBOUND_ALLOW_PRIVATE`` and ``BALLOT_OUTBOUND_ALLOWED_NETWORKS`` are the same
switches under a name that is not about webhooks (LM judges call out through here too);
either name opens the policy.
"""

from __future__ import annotations

import datetime
import email.utils
import http.client
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance-metadata endpoints of the big clouds. Most are link-local or private
# anyway; they are listed so that BALLOT_WEBHOOK_ALLOW_PRIVATE cannot open them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS DNS resolver
        "169.254.169.123",  # AWS time sync
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS ECS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
    )
)
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# Worth another try later: the receiver is overloaded, rate-limits or timed out.
TRANSIENT_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RESPONSE_BYTES = 64 * 1024


class TransportError(Exception):
    """A request that did not succeed. ``permanent``: retrying the same request cannot help."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status_code = status_code
        # Seconds the receiver asked us to wait (its Retry-After header), when it said.
        self.retry_after = retry_after


class AddressRefused(TransportError):
    """The URL leads to an address the policy refuses. Always permanent; nothing was sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


@dataclass(frozen=True)
class OutboundResponse:
    status_code: int
    url: str
    body: bytes


def setting(name: str, default: Any) -> Any:
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name)
    return default if value is None else value


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def allowed_networks() -> list[IPNetwork]:
    networks: list[IPNetwork] = []
    for name in ("BALLOT_WEBHOOK_ALLOWED_NETWORKS", "BALLOT_OUTBOUND_ALLOWED_NETWORKS"):
        raw = setting(name, [])
        parts: Iterable[str] = raw.split(",") if isinstance(raw, str) else raw
        networks += [ipaddress.ip_network(p.strip(), strict=False) for p in parts if p.strip()]
    return networks


def private_allowed() -> bool:
    return as_bool(setting("BALLOT_WEBHOOK_ALLOW_PRIVATE", False)) or as_bool(
        setting("BALLOT_OUTBOUND_ALLOW_PRIVATE", False)
    )


def timeout_seconds() -> float:
    return float(setting("BALLOT_WEBHOOK_TIMEOUT_SECONDS", 10))


def max_redirects() -> int:
    return int(setting("BALLOT_WEBHOOK_MAX_REDIRECTS", 3))


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be connected to, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:10.0.0.1 and 64:ff9b::a00:1 reach IPv4 hosts: judge the IPv4 address.
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in ipaddress.ip_network("64:ff9b::/96"):
            address = ipaddress.ip_address(int(address) & 0xFFFFFFFF)
    if any(address in network for network in allowed_networks()):
        return None
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    private = address.is_loopback or address.is_link_local or address.is_private
    if private or not address.is_global:
        if private and private_allowed():
            return None
        if address.is_loopback:
            return "a loopback address"
        if address.is_link_local:
            return "a link-local address"
        return "a private or non-global address"
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (one DNS look-up per hop)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransportError(f"Could not resolve {host}: {exc}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def checked_address(host: str, port: int) -> IPAddress:
    """Resolve ``host`` and return the address to connect to, or raise ``AddressRefused``.

    A name with any refused address is refused as a whole: a receiver that is
    reachable on a public address has no reason to also publish a private one,
    and picking "the good one" would make the outcome depend on answer order.
    """
    addresses = _resolve(host, port)
    if not addresses:
        raise TransportError(f"{host} has no address.")
    for address in addresses:
        reason = address_refusal(address)
        if reason:
            raise AddressRefused(
                f"Refused to connect to {host} ({address}): {reason} is not allowed "
                "(see BALLOT_WEBHOOK_ALLOW_PRIVATE and BALLOT_WEBHOOK_ALLOWED_NETWORKS)."
            )
    return addresses[0]


def url_check(url: str) -> tuple[str, str, int]:
    """Split an http(s) URL into (scheme, host, port), refusing other schemes and credentials."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TransportError("Only http and https URLs can be called.", permanent=True)
    if not parts.hostname:
        raise TransportError("The URL has no host.", permanent=True)
    if parts.username or parts.password:
        raise TransportError("URLs with credentials are not allowed.", permanent=True)
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise TransportError("The URL's port is not valid.", permanent=True)
    return scheme, parts.hostname, port


def literal_address_refusal(url: str) -> str | None:
    """For a URL whose host is an IP literal or ``localhost``: why it would be refused, else None.

    Used to reject hopeless URLs when a webhook is saved; names are checked only
    when connecting, since their addresses may change.
    """
    _, host, _ = url_check(url)
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(
        ".localhost"
    ):
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return address_refusal(address)


def _tls_context() -> ssl.SSLContext:
    """Certificates checked against the system's trust store, host names verified."""
    return ssl.create_default_context()


def _connection(
    scheme: str, host: str, port: int, address: IPAddress, timeout: float
) -> http.client.HTTPConnection:
    if scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=_tls_context()
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)

    # The Host header and TLS (SNI, certificate check) use the name; the socket goes
    # to the address that passed the check. http.client opens its socket through
    # this attribute in connect(), for HTTP and HTTPS alike.
    def pinned(_address: tuple[str, int], timeout: float, source_address: Any = None):
        return socket.create_connection((str(address), port), timeout, source_address)

    connection._create_connection = pinned  # type: ignore[attr-defined]
    return connection


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def _send_once(
    url: str, body: bytes, headers: Mapping[str, str], timeout: float, max_bytes: int
) -> tuple[int, bytes, str | None, str | None]:
    scheme, host, port = url_check(url)
    address = checked_address(host, port)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = _connection(scheme, host, port, address, timeout)
    try:
        connection.request("POST", target, body=body, headers=dict(headers))
        response = connection.getresponse()
        content = response.read(max_bytes)
        return (
            response.status,
            content,
            response.getheader("Location"),
            response.getheader("Retry-After"),
        )
    except TimeoutError as exc:
        raise TransportError(f"Timed out after {timeout:g} s.") from exc
    except ssl.SSLCertVerificationError as exc:
        raise TransportError(f"TLS certificate check failed: {exc.verify_message}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise TransportError(f"Connection failed: {type(exc).__name__}: {exc}") from exc
    except (UnicodeError, ValueError) as exc:
        # http.client encodes the request line and headers as ASCII/Latin-1: a URL path or
        # header it cannot send is the caller's URL, and no retry changes it (it used to
        # escape as a 500 from whichever view or job made the call).
        raise TransportError(
            f"The request cannot be sent: {type(exc).__name__}: {exc}", permanent=True
        ) from exc
    finally:
        connection.close()


def post(
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float | None = None,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> OutboundResponse:
    """POST ``body`` to ``url`` through the address policy; answer a 2xx or raise ``TransportError``.

    Redirects are followed by this function (never by a library), each hop
    resolved and checked again, the method and body kept, at most
    ``BALLOT_WEBHOOK_MAX_REDIRECTS`` times.
    """
    timeout = timeout_seconds() if timeout is None else timeout
    redirects_left = max_redirects()
    current = url
    while True:
        status, content, location, retry_after = _send_once(
            current, body, headers, timeout, max_bytes
        )
        if status in REDIRECT_CODES and location:
            if redirects_left <= 0:
                raise TransportError(
                    f"The receiver redirected ({status}) and redirects are not followed here.",
                    permanent=True,
                    status_code=status,
                )
            redirects_left -= 1
            current = urljoin(current, location)
            continue
        if 200 <= status < 300:
            return OutboundResponse(status_code=status, url=current, body=content)
        raise TransportError(
            f"The receiver answered {status}.",
            permanent=status not in TRANSIENT_CODES,
            status_code=status,
            retry_after=retry_after_seconds(retry_after),
        )
