"""The redirect policy: which addresses a collector's redirects may lead to (pure, with
injected name resolution; no network)."""

from __future__ import annotations

import ipaddress

import pytest

from listener.collectors.redirects import Address, address_kind, refusal

NAMES: dict[str, list[str]] = {
    "example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "cdn.example.net": ["151.101.1.1"],
    "localhost": ["127.0.0.1", "::1"],
    "metadata.internal": ["169.254.169.254"],
    "split.example": ["151.101.1.2", "10.1.2.3"],
    "feeds.corp": ["10.1.2.3"],
}


def resolve(host: str) -> list[Address]:
    """A fake resolver: NAMES, IP literals as themselves, nothing else."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        return [ipaddress.ip_address(a) for a in NAMES.get(host, [])]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.216.34", None),
        ("8.8.8.8", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("100.64.0.1", "reserved"),
        ("192.0.2.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:93.184.216.34", None),
        ("2002:a9fe:a9fe::1", "link-local"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
    ],
)
def test_address_kind(address: str, kind: str | None) -> None:
    """Public addresses pass; every non-global range is named, IPv4 inside IPv6 included."""
    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    "target",
    [
        "http://localhost/",
        "http://127.0.0.1:8080/admin",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.internal/",
        "http://10.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://split.example/",
    ],
)
def test_a_public_source_may_not_redirect_inwards(target: str) -> None:
    """A configured public host may not lead to any non-public address (a name with one
    private address among public ones included)."""
    reason = refusal(["https://example.com/feed?token=s3cret"], target, resolve)
    assert reason is not None
    assert "s3cret" not in reason
    assert "refused" in reason


@pytest.mark.parametrize(
    "target",
    [
        "https://example.com/elsewhere",
        "http://EXAMPLE.com./x",
        "https://cdn.example.net/feed.xml",
        "https://unresolvable.example/feed",
        "http://93.184.216.34/feed",
    ],
)
def test_a_public_source_may_redirect_to_public_hosts(target: str) -> None:
    """Public targets, the same host, and names that do not resolve are allowed."""
    assert refusal(["https://example.com/feed"], target, resolve) is None


def test_the_same_host_is_allowed_without_a_lookup() -> None:
    """A redirect within the configured host needs no resolution at all."""

    def no_lookups(host: str) -> list[Address]:
        raise AssertionError(f"looked up {host}")

    assert refusal(["https://example.com/a"], "https://example.com/b", no_lookups) is None


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("http://127.0.0.1:9090/feed", True),
        ("http://localhost:9090/feed", True),
        ("http://[::1]:9090/feed", True),
        ("https://example.com/feed", True),
        ("http://169.254.169.254/", False),
        ("http://10.0.0.1/", False),
        ("http://192.168.0.1/", False),
        ("http://224.0.0.1/", False),
    ],
)
def test_a_loopback_source_may_redirect_within_loopback_only(target: str, allowed: bool) -> None:
    """A configured loopback URL may lead to loopback (and public) addresses, not to
    link-local, private or other non-public ones."""
    assert (refusal(["http://127.0.0.1:8080/feed"], target, resolve) is None) is allowed


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("http://10.9.9.9/feed", True),
        ("http://169.254.169.254/", False),
        ("http://127.0.0.1/", False),
    ],
)
def test_an_intranet_source_may_redirect_within_private_addresses(
    target: str, allowed: bool
) -> None:
    """A configured host that resolves to a private address vouches for private targets."""
    assert (refusal(["http://feeds.corp/rss"], target, resolve) is None) is allowed
