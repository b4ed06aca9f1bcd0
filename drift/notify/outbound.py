"""Where a webhook may be sent: never inward. A notification URL is typed by an operator, so without this check it
reaches whatever Driftwatch's own network reaches (the cloud's metadata service at 169.254.169.254, Redis on
127.0.0.1, the cluster's API server on a Service address) and its errors map those ports.

Every address a host name resolves to is checked (a name that mixes a public address with an inward one is
refused whole), and the connection goes to the address that was checked: `PinnedAddressAdapter` hands urllib3 the
address instead of the name, so a second DNS answer (rebinding) is never asked for; the name stays in the Host
header and, over https, in SNI and the certificate check.

Refused unless an admin allows the range (DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS): loopback, link-local (cloud
metadata), private (RFC 1918, IPv6 unique-local), unspecified, and anything else the IANA registries do not mark
globally reachable (carrier-grade NAT, often a pod network; multicast; reserved), also when wrapped in IPv6
(IPv4-mapped, 6to4, NAT64). DRIFTWATCH_NOTIFY_DENIED_NETWORKS adds ranges refused even when allowed: a cluster's
Service and pod ranges when they are not private ones.

Hand-written rather than requests-hardened (the closest kept library, whose adapter technique this follows): its
filter allows loopback or nothing, with no way to allow an admin's range nor deny a cluster's, and checks only
the first address a name resolves to."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS"
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Not globally reachable, though Python 3.11's `is_global` says they are (fixed in later Pythons).
NOT_GLOBAL = tuple(
    ipaddress.ip_network(network)
    for network in ("192.0.0.0/24", "192.88.99.0/24", "64:ff9b:1::/48", "2001:20::/28", "5f00::/16", "3fff::/20")
)


class RefusedAddress(requests.RequestException):
    """The host resolves to an address Driftwatch does not send to (the text names the host and the kind)."""


def unwrapped(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, 6to4, NAT64), which is where it would end up."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def why_refused(address: str | Address, allowed: Sequence[Network], denied: Sequence[Network]) -> str | None:
    """None when a webhook may connect to `address`; otherwise what kind of address it is."""
    ip = unwrapped(ipaddress.ip_address(address) if isinstance(address, str) else address)
    if any(ip in network for network in denied):
        return "in a denied range (DRIFTWATCH_NOTIFY_DENIED_NETWORKS)"
    if any(ip in network for network in allowed):
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "an unspecified address (it reaches this host)"
    if ip.is_private:
        return "a private address"
    if not ip.is_global or ip.is_multicast or ip.is_reserved or any(ip in network for network in NOT_GLOBAL):
        return "not public"
    return None


def _refusal(host: str, address: str) -> str | None:
    reason = why_refused(
        address.split("%")[0], settings.DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS, settings.DRIFTWATCH_NOTIFY_DENIED_NETWORKS
    )
    if reason is None:
        return None
    shown = host if host == address else f"{host} ({address})"
    return f"refused {shown}: {reason}; an admin may allow its range with {SETTING}"


def literal_refusal(host: str) -> str | None:
    """The refusal for a host written as an address (in any form the resolver reads: 2130706433, 0x7f.1, [::1]),
    without asking DNS; a name is judged when a notice is sent, by what it resolves to then."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        return None
    return next((reason for info in found if (reason := _refusal(host, str(info[4][0])))), None)


def checked_address(host: str, port: int) -> str:
    """The address to connect to for `host`: every address it resolves to must be allowed; the first is used."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise requests.ConnectionError(f"cannot resolve {host}") from error
    addresses = [str(info[4][0]) for info in found if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not addresses:
        raise requests.ConnectionError(f"cannot resolve {host}")
    for address in addresses:
        if reason := _refusal(host, address):
            raise RefusedAddress(reason)
    return addresses[0]


class PinnedAddressAdapter(HTTPAdapter):
    """Connects to the checked address of the URL's host (see the module's docstring)."""

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host, port, scheme = host_params["host"], host_params["port"], host_params["scheme"]
        address = checked_address(host, port or (443 if scheme == "https" else 80))
        shown = f"[{host}]" if ":" in host else host
        request.headers["Host"] = f"{shown}:{port}" if port else shown
        if scheme == "https":
            # The certificate is checked against the name, and SNI names it, not the address connected to.
            tls = cast(dict[str, Any], pool_kwargs)  # urllib3's HTTPSConnectionPool takes both
            tls["server_hostname"] = host
            tls["assert_hostname"] = host
        host_params["host"] = f"[{address}]" if ":" in address else address
        return host_params, pool_kwargs


def session() -> requests.Session:
    """A session that sends only through the pinned adapter, and ignores proxy variables and .netrc (a proxy
    would connect somewhere other than the checked address; .netrc would add credentials)."""
    pinned = requests.Session()
    pinned.trust_env = False
    for prefix in ("http://", "https://"):
        pinned.mount(prefix, PinnedAddressAdapter())
    return pinned
