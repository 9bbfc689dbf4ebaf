"""The webhook address check as a unit: a resolver stub stands in for DNS, and no connection is opened."""

from __future__ import annotations

import asyncio

import pytest

from router.webhooks.guard import Refused, check


def stub(*addresses: str):  # type: ignore[no-untyped-def]
    seen: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        seen.append(f"{host}:{port}")
        return list(addresses)

    resolve.seen = seen  # type: ignore[attr-defined]
    return resolve


def refused(url: str, *addresses: str, allow_private: bool = False) -> str:
    with pytest.raises(Refused) as info:
        asyncio.run(check(url, allow_private, stub(*addresses)))
    return str(info.value)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.10.20", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("192.0.0.192", "metadata"),
        ("100.64.0.1", "CGNAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 form of 169.254.169.254
        ("2002:a9fe:a9fe::1", "metadata"),  # 6to4 form of 169.254.169.254
    ],
)
def test_a_host_resolving_to_a_non_public_address_is_refused(address: str, why: str) -> None:
    assert why in refused("https://hooks.example.com/in", address)


def test_one_bad_address_among_good_ones_refuses_the_host() -> None:
    assert "private" in refused("https://hooks.example.com/", "93.184.216.34", "10.0.0.7")


def test_a_public_address_passes_and_is_the_one_to_connect_to() -> None:
    resolve = stub("93.184.216.34", "2606:2800:220:1::1")
    target = asyncio.run(check("https://hooks.example.com:8443/in?x=1", False, resolve))
    assert target.ip == "93.184.216.34"
    assert resolve.seen == ["hooks.example.com:8443"]
    assert str(target.url) == "https://hooks.example.com:8443/in?x=1"


def test_ip_literals_are_checked_without_dns() -> None:
    resolve = stub("93.184.216.34")
    for url in ("http://169.254.169.254/latest/meta-data", "http://[::ffff:a9fe:a9fe]/", "http://[fd00:ec2::254]/"):
        with pytest.raises(Refused, match="metadata"):
            asyncio.run(check(url, False, resolve))
    assert resolve.seen == []


def test_the_operator_setting_allows_private_receivers_but_never_metadata() -> None:
    for address in ("127.0.0.1", "10.0.0.8", "::1", "100.64.3.4", "169.254.1.1"):
        assert asyncio.run(check("http://receiver.internal/", True, stub(address))).ip == address
    for address in ("169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254", "0.0.0.0", "224.0.0.1"):
        refused("http://receiver.internal/", address, allow_private=True)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.example.com/", "http and https"),
        ("file:///etc/passwd", "http and https"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("https:///nohost", "no host"),
        ("https://hooks.example.com/" + "a" * 2100, "longer"),
    ],
)
def test_the_url_form_is_checked_first(url: str, why: str) -> None:
    assert why in refused(url, "93.184.216.34")


def test_a_host_that_does_not_resolve_is_refused() -> None:
    async def fails(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    with pytest.raises(Refused, match="does not resolve"):
        asyncio.run(check("https://nowhere.invalid/", False, fails))
