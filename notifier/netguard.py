"""Which IP addresses outgoing requests (webhooks) may go to: a guard against SSRF.

A webhook endpoint is configuration, but its host name is resolved at send time, so a name
that points (or is later pointed) at an internal address would let a notification reach a
cloud metadata service or an admin port. :func:`check_host` resolves the host and refuses it
if **any** of its addresses is refused by :func:`check_address`:

=========================  ============================================================  ======
category                   addresses                                                     lifted
=========================  ============================================================  ======
``cloud metadata``         169.254.169.254, 169.254.170.2 (AWS ECS), fd00:ec2::254 (AWS   never
                           IPv6), 100.100.100.200 (Alibaba), 168.63.129.16 (Azure host)
``unspecified``            0.0.0.0/8, ``::``                                              never
``link-local``             169.254.0.0/16, fe80::/10                                      never
``multicast``              224.0.0.0/4, ff00::/8                                          never
``reserved``               240.0.0.0/4 (and 255.255.255.255), 192.0.0.0/24, the           never
                           documentation nets, 2001:db8::/32, 100::/64, 2001::/32
                           (Teredo), and IPv6 outside 2000::/3 not listed here
``loopback``               127.0.0.0/8, ``::1``                                           yes
``private``                10/8, 172.16/12, 192.168/16, 198.18/15, fc00::/7, fec0::/10,   yes
                           64:ff9b:1::/48
``shared (CGNAT)``         100.64.0.0/10                                                  yes
=========================  ============================================================  ======

"Lifted" categories are allowed with ``allow_private=True`` (``webhooks.allow_private_networks``).
IPv6 forms that carry an IPv4 address are judged by that address: IPv4-mapped
(``::ffff:169.254.1.1`` is link-local), NAT64 (``64:ff9b::/96``) and 6to4 (``2002::/16``).

DNS rebinding: the webhook channel hands aiohttp a resolver that runs this check and returns
the checked addresses, and aiohttp connects to exactly those (caching them for its DNS TTL),
so a name cannot answer the check with a public address and the connection with an internal
one. Keep an egress firewall anyway for hard guarantees.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from enum import StrEnum

__all__ = [
    "AddressRefused",
    "Category",
    "Resolver",
    "check_address",
    "check_host",
    "resolve",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Maps ``(host, port)`` to the host's IP addresses as strings (:func:`resolve`, or a fake)."""


class Category(StrEnum):
    """Why an address is refused; the value is what error messages show."""

    INVALID = "not an IP address"
    METADATA = "cloud metadata"
    UNSPECIFIED = "unspecified"
    LINK_LOCAL = "link-local"
    MULTICAST = "multicast"
    RESERVED = "reserved"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    SHARED = "shared (CGNAT)"


PRIVATE_CATEGORIES = frozenset({Category.LOOPBACK, Category.PRIVATE, Category.SHARED})
"""The categories ``allow_private=True`` lets through; every other one is always refused."""


class AddressRefused(ValueError):
    """An address outgoing requests must not go to; ``category`` says why.

    ``private`` tells whether ``allow_private=True`` would have allowed it.
    """

    def __init__(self, address: str, category: Category) -> None:
        super().__init__(f"address {address} is refused: {category}")
        self.address = address
        self.category = category

    @property
    def private(self) -> bool:
        """True if the address is only refused because private networks are not allowed."""
        return self.category in PRIVATE_CATEGORIES


def _nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean... instance metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud instance metadata
        "168.63.129.16",  # Azure host platform (WireServer): public-looking, never a receiver
    )
)
_UNSPECIFIED = _nets("0.0.0.0/8", "::/128")
_LINK_LOCAL = _nets("169.254.0.0/16", "fe80::/10")
_MULTICAST = _nets("224.0.0.0/4", "ff00::/8")
_LOOPBACK = _nets("127.0.0.0/8", "::1/128")
_PRIVATE = _nets(
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "198.18.0.0/15",  # benchmarking; also the fake-IP range of some local proxies
    "fc00::/7",
    "fec0::/10",  # deprecated site-local
    "64:ff9b:1::/48",  # local-use NAT64
)
_SHARED = _nets("100.64.0.0/10")
_RESERVED = _nets(
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation (TEST-NET-1..3)
    "198.51.100.0/24",
    "203.0.113.0/24",
    "2001:db8::/32",  # documentation
    "100::/64",  # discard-only
    "2001::/32",  # Teredo: the real destination is hidden in the address
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# Checked in this order: the first match names the category.
_TABLE: tuple[tuple[Category, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]], ...] = (
    (Category.UNSPECIFIED, _UNSPECIFIED),
    (Category.LINK_LOCAL, _LINK_LOCAL),
    (Category.MULTICAST, _MULTICAST),
    (Category.LOOPBACK, _LOOPBACK),
    (Category.PRIVATE, _PRIVATE),
    (Category.SHARED, _SHARED),
    (Category.RESERVED, _RESERVED),
)


def categorize(ip: str) -> Category | None:
    """Return the category that refuses ``ip`` unless private networks are allowed, or None.

    None means a public address; a category in :data:`PRIVATE_CATEGORIES` means refused only
    without ``allow_private``; any other category means always refused.
    """
    text = ip.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return Category.INVALID
    return _categorize(address)


def _categorize(address: IPAddress) -> Category | None:
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # drop a zone (%eth0): same host
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _categorize(embedded)
    if address in _METADATA:
        return Category.METADATA
    for category, networks in _TABLE:
        if any(address in network for network in networks):
            return category
    # IPv4 240.0.0.0/4 (with broadcast); IPv6 outside 2000::/3 that no row above named.
    return Category.RESERVED if address.is_reserved else None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def check_address(ip: str, *, allow_private: bool) -> None:
    """Raise :class:`AddressRefused` if outgoing requests must not go to ``ip``.

    ``ip`` is an IPv4 or IPv6 address (brackets and an IPv6 zone are accepted); anything else
    is refused as :attr:`Category.INVALID`.
    """
    category = categorize(ip)
    if category is None or (allow_private and category in PRIVATE_CATEGORIES):
        return
    raise AddressRefused(ip, category)


async def resolve(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the running loop's ``getaddrinfo``; return its addresses in order.

    Raises :class:`socket.gaierror` (an ``OSError``) if the name does not resolve.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: dict[str, None] = {}
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            addresses[str(sockaddr[0])] = None
    return list(addresses)


async def check_host(
    host: str, port: int, *, allow_private: bool, resolver: Resolver = resolve
) -> list[str]:
    """Resolve ``host`` and raise :class:`AddressRefused` if any of its addresses is refused.

    An IP literal (``10.0.0.7``, ``[::1]``) is checked as it is, without DNS. Returns the
    addresses checked. A name that does not resolve raises the resolver's ``OSError``
    (``socket.gaierror``), as does one that resolves to nothing.
    """
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(literal)
    except ValueError:
        pass
    else:
        check_address(literal, allow_private=allow_private)
        return [literal]
    addresses = await resolver(literal, port)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, "the name resolved to no address")
    for address in addresses:
        check_address(address, allow_private=allow_private)
    return addresses
