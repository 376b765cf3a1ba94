"""Webhook target checks after DNS resolution: what is refused, and the pinned address."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from service.alerting import targets


def resolver_for(*addresses: str) -> Any:
    def resolve(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port)) for a in addresses]
    return resolve


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("192.168.0.10", "private"),
    ("172.16.5.5", "private"), ("169.254.169.254", "link-local"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("100.64.0.1", "not globally routable"),
    ("::1", "loopback"), ("fe80::1", "link-local"), ("fc00::1", "private"),
    ("ff02::1", "multicast"), ("::", "unspecified"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::a00:1", "private"), ("2002:7f00:1::", "loopback"),
])
def test_forbidden_addresses(address: str, reason: str) -> None:
    found = targets.forbidden_reason(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::6810:85e5", "8.8.8.8",
                                     "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert targets.forbidden_reason(ipaddress.ip_address(address)) is None


def test_a_name_with_any_private_record_is_refused() -> None:
    with pytest.raises(targets.ForbiddenTargetError, match=r"10\.0\.0\.7"):
        targets.resolve("https://hooks.example.com/x", allow_private=False,
                        resolver=resolver_for("93.184.216.34", "10.0.0.7"))


def test_real_dns_for_localhost_is_refused_unless_allowed() -> None:
    with pytest.raises(targets.ForbiddenTargetError, match="loopback"):
        targets.resolve("http://localhost:8080/hook", allow_private=False)
    target = targets.resolve("http://localhost:8080/hook?a=1", allow_private=True)
    assert target.host_header == "localhost:8080" and target.url.endswith(":8080/hook?a=1")
    assert ipaddress.ip_address(target.address).is_loopback


def test_connection_is_pinned_to_the_checked_address_with_name_for_host_and_sni() -> None:
    target = targets.resolve("https://hooks.example.com/in", allow_private=False,
                             resolver=resolver_for("93.184.216.34"))
    assert target.url == "https://93.184.216.34/in"
    assert target.host_header == "hooks.example.com"
    assert target.sni_hostname == "hooks.example.com"
    v6 = targets.resolve("https://hooks.example.com:8443/", allow_private=False,
                         resolver=resolver_for("2606:4700::6810:85e5"))
    assert v6.url == "https://[2606:4700::6810:85e5]:8443/"


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://example.com/x", "scheme"), ("http:///nohost", "no host"),
    ("https://user:pw@example.com/", "credentials"), ("http://example.com:99999/", "port"),
    ("https://" + "a" * 2000 + ".com/", "longer"),
])
def test_malformed_urls(url: str, message: str) -> None:
    with pytest.raises(targets.TargetError, match=message):
        targets.resolve(url, allow_private=True, resolver=resolver_for("93.184.216.34"))


def test_unresolvable_names_are_their_own_error() -> None:
    def failing(*_: Any, **__: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(targets.UnresolvableTargetError, match="does not resolve"):
        targets.resolve("https://nowhere.invalid/", allow_private=False, resolver=failing)
