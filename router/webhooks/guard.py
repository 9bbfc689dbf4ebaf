"""Which addresses a webhook may reach, decided once per attempt on the addresses DNS gave.

A URL is refused when any address its host resolves to is not on the public internet (loopback, private,
link-local, CGNAT, multicast, unspecified, reserved), looking through IPv4-mapped, NAT64, 6to4 and Teredo
forms to the IPv4 address inside. ``allow_private`` (an operator's setting, for receivers on the same
network) lifts that, except for the cloud metadata services, multicast and unspecified, which are never a
receiver. The caller connects to the address checked here, so a second lookup cannot swap it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""host, port -> the addresses a connection could go to."""

METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.169.123",  # AWS time sync
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::23",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
MAX_URL_CHARS = 2048


class Refused(ValueError):
    """The URL may not be called; the message says why, in terms the tenant can act on."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL and the one address to connect to."""

    url: httpx.URL
    ip: str


def embedded_v4(ip: IP) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, Teredo client), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def refusal(ip: IP, allow_private: bool) -> str | None:
    """Why a connection to ``ip`` is refused, or None when it is allowed."""
    inner = embedded_v4(ip)
    for candidate in (inner, ip) if inner is not None else (ip,):  # the IPv4 inside names the real risk
        if candidate in METADATA:
            return "a cloud metadata address"
        if candidate.is_multicast:
            return "a multicast address"
        if candidate.is_unspecified:
            return "an unspecified address"
        if allow_private:
            continue
        if candidate.is_loopback:
            return "a loopback address"
        if candidate.is_link_local:
            return "a link-local address"
        if candidate in _CGNAT:
            return "a shared (CGNAT) address"
        if candidate.is_reserved:
            return "a reserved address"
        if candidate.is_private:
            return "a private address"
        if not candidate.is_global:
            return "a reserved address"
    return None


def parse(url: str) -> httpx.URL:
    """The URL's form alone: http(s), a host, no credentials in it."""
    if len(url) > MAX_URL_CHARS:
        raise Refused(f"the URL is longer than {MAX_URL_CHARS} characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise Refused(f"not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise Refused("only http and https URLs are called")
    if not parsed.host:
        raise Refused("the URL has no host")
    if parsed.userinfo:
        raise Refused("credentials in the URL are not sent; put a token in the path or query instead")
    return parsed


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check(url: str, allow_private: bool, resolve: Resolver = system_resolver) -> Target:
    """Resolve the URL's host and refuse it if ANY of its addresses is refused (a host that answers with
    one public and one private address must not get through by luck of the order)."""
    parsed = parse(url)
    host = parsed.host
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            found = await resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80))
        except OSError as exc:
            raise Refused(f"the host {host!r} does not resolve ({exc.strerror or type(exc).__name__})") from None
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
    if not addresses:
        raise Refused(f"the host {host!r} does not resolve")
    for ip in addresses:
        if why := refusal(ip, allow_private):
            raise Refused(f"the host {host!r} resolves to {why} ({ip}), which webhooks may not call")
    return Target(parsed, str(addresses[0]))
