"""Webhook target safety: only http(s) URLs whose host resolves to public addresses.

Checked after DNS resolution, when an endpoint is created or changed AND before every
delivery (DNS can change). The delivery then connects to the exact address that was checked
(the URL's host is replaced by it; Host header and TLS SNI keep the name), so a second,
different DNS answer between check and connect cannot redirect the request inward.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from service.errors import UnprocessableError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., list[Any]]
NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_URL_LENGTH = 2000


class TargetError(UnprocessableError):
    """The URL cannot be used as a webhook target."""


class UnresolvableTargetError(TargetError):
    """The host name does not resolve (may be transient: deliveries retry)."""


class ForbiddenTargetError(TargetError):
    """The host is, or resolves to, an address webhooks may not reach."""


@dataclass(frozen=True)
class Target:
    url: str  # the URL with its host replaced by the vetted address
    host_header: str
    sni_hostname: str | None
    address: str


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why webhooks may not reach `ip`, or None for a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            reason = forbidden_reason(inner)
            return f"embeds {inner}, which is {reason}" if reason else None
    checks = (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
              ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
              ("private", ip.is_private), ("reserved", ip.is_reserved),
              ("not globally routable", not ip.is_global))
    return next((f"{name} address" for name, hit in checks if hit), None)


def parse_url(url: str) -> SplitResult:
    """Syntax only: http(s), a host, no credentials, a valid port."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise TargetError(f"the URL scheme must be http or https, not {parts.scheme!r}")
    if not parts.hostname:
        raise TargetError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetError("the URL must not carry credentials; deliveries are signed instead")
    try:
        _ = parts.port
    except ValueError as exc:
        raise TargetError(f"the URL's port is invalid: {exc}") from None
    return parts


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _addresses(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnresolvableTargetError(f"the host {host!r} does not resolve: {exc}") from None
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not found:
        raise UnresolvableTargetError(f"the host {host!r} has no addresses")
    return list(dict.fromkeys(found))


def resolve(url: str, *, allow_private: bool,
            resolver: Resolver = socket.getaddrinfo) -> Target:
    """Check `url` and pick the address to connect to; raises a TargetError subclass."""
    parts = parse_url(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _addresses(host, port, resolver)
    if not allow_private:
        # Every address is checked: a name with one public and one private record could
        # otherwise be steered to the private one by the connecting side's choice.
        for ip in addresses:
            reason = forbidden_reason(ip)
            if reason:
                raise ForbiddenTargetError(
                    f"webhook targets must be public: {host} resolves to {ip} ({reason}); "
                    "set EARSHOT_WEBHOOK_ALLOW_PRIVATE=true to allow private targets")
    chosen = addresses[0]
    literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    is_literal = _is_ip(host)
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return Target(
        url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
        host_header=host_header,
        sni_hostname=host if parts.scheme == "https" and not is_literal else None,
        address=str(chosen),
    )
