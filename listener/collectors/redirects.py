"""Where a collector's HTTP requests may be sent: the redirect policy.

A source's answer decides where its next request goes (a redirect, a link to the next
page). A feed answering ``302 Location: http://169.254.169.254/...`` must not turn the
daemon into a proxy to the cloud metadata service or the internal network. So a request
whose host is not one of the configured hosts is checked before any connection is made:
every address its host resolves to is classified (:func:`address_kind`: loopback,
link-local, private, unspecified, multicast, reserved, or public; IPv4-mapped, 6to4 and
NAT64 IPv6 addresses count as the IPv4 address inside), and it is refused when one of
them is of a kind none of the configured hosts is. A configured ``http://127.0.0.1:8080/``
may thus redirect to another loopback port (a test fake, a sidecar), but not to
``10.0.0.1`` or ``169.254.169.254``; a configured public host may only go to public
addresses. At most :data:`MAX_REDIRECTS` redirects are followed per request.

A host that does not resolve is not refused here (connecting to it fails anyway). The
check resolves the name itself, so a DNS answer that changes between the check and the
connection (DNS rebinding) is not covered.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Sequence[Address]]
"""Host name → its addresses (empty when it does not resolve)."""

MAX_REDIRECTS = 5
"""The most redirects one collector request follows."""

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def address_kind(address: Address) -> str | None:
    """``None`` for a public (globally routable) address, else what it is:
    ``"unspecified"``, ``"loopback"``, ``"link-local"``, ``"multicast"``, ``"private"`` or
    ``"reserved"`` (any other address that is not global: shared, documentation,
    benchmarking, broadcast …). Pure."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_kind(embedded)
        if address.is_site_local:
            return "private"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


def resolve_host(host: str) -> list[Address]:
    """The addresses of ``host``: itself when it is an IP literal, else what the system
    resolver says (empty when it cannot resolve it)."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError):
        return []
    found: list[Address] = []
    for info in infos:
        address = _literal(str(info[4][0]))
        if address is not None and address not in found:
            found.append(address)
    return found


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return ""


def _kinds(addresses: Iterable[Address]) -> dict[str, Address]:
    found: dict[str, Address] = {}
    for address in addresses:
        kind = address_kind(address)
        if kind is not None:
            found.setdefault(kind, address)
    return found


def refusal(origins: Sequence[str], target: str, resolve: Resolver = resolve_host) -> str | None:
    """Why a request to ``target`` (a URL) may not be sent for a source configured with
    the URLs ``origins``, or ``None`` when it may (see the module docstring). A target
    on one of the origins' hosts is always allowed (no lookup). The reason names the
    host and address, never the URL's path or query."""
    host = _host(target)
    origin_hosts = {h for h in map(_host, origins) if h}
    if not host or host in origin_hosts:
        return None
    target_kinds = _kinds(resolve(host))
    if not target_kinds:
        return None
    allowed: set[str] = set()
    for origin_host in origin_hosts:
        allowed.update(_kinds(resolve(origin_host)))
    for kind, address in target_kinds.items():
        if kind not in allowed:
            shown = host if host == str(address) else f"{host} ({address})"
            return (
                f"{shown} is a {kind} address and the configured URL is not: "
                "requests to loopback, link-local, private, unspecified, multicast or "
                "reserved addresses are refused"
            )
    return None


__all__ = ["MAX_REDIRECTS", "Address", "Resolver", "address_kind", "refusal", "resolve_host"]
