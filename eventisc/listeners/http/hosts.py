"""Guarding the hosts an ``http`` listener's url takes from event data.

A url whose host is a template field sends each request wherever the event's data points: a
caller who controls that data could aim it at the sender's own network (a database on
localhost, an admin port on 10.x, the cloud metadata service at 169.254.169.254). A
:class:`HostGuard`, built at load for such a url only, resolves the host before every request
and refuses an internal address unless ``allow_hosts`` lists it.

The address is resolved again by the connection itself: a name whose DNS answer changes
between the two (rebinding) is not caught. Nothing is cached, so the check is as fresh as it
can be without pinning the connection's address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from typing import Any, Union
from urllib.parse import urlsplit

from ...errors import ConfigError, ConnectError, DeliveryError
from .connection import DEFAULT_PORTS

__all__ = ["HostGuard", "host_is_templated"]

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: The scheme and authority at the start of a url, up to the path, query or a template field.
_AUTHORITY = re.compile(r"[^:/?#{]*://[^/?#{]*")
#: A host name: dot-separated labels of letters, digits and hyphens (a final dot allowed).
_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*\.?"
)
#: Shared address space (RFC 6598, carrier-grade NAT): internal, yet not ``is_private``.
_SHARED = ipaddress.ip_network("100.64.0.0/10")
#: The address cloud providers serve instance metadata (and credentials) on.
_METADATA = ipaddress.ip_address("169.254.169.254")


def host_is_templated(url: str) -> bool:
    """Whether the host of the url template ``url`` (or its scheme) depends on a field: its
    scheme and authority do not end before the first ``{``."""
    start = url.split("{", 1)[0]
    match = _AUTHORITY.match(start)
    return match is None or match.end() == len(start)


def _literal(host: str) -> Address | None:
    """``host`` as an address when it is one (an IPv6 zone left out), else None."""
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None


def _internal(address: Address) -> str | None:
    """Why ``address`` is internal (``"loopback"``...), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address == _METADATA:
        return "link-local (cloud metadata)"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if address in _SHARED:
        return "shared (carrier-grade NAT)"
    return None


def _parse_entry(entry: Any, path: str) -> str | Network:
    """An ``allow_hosts`` entry: a host name (lower case, no final dot) or a network."""
    if not isinstance(entry, str) or not entry.strip():
        raise ConfigError(f"must be a host, an address or a network (CIDR), not {entry!r}", path)
    text = entry.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]  # an IPv6 address as written in a url
    try:
        return ipaddress.ip_network(text)
    except ValueError as exc:
        if "/" in text or ":" in text or text.replace(".", "").isdigit():
            raise ConfigError(
                f"{entry!r} is not a valid address or network ({exc}); write a network as "
                "its first address and prefix length, such as 10.0.0.0/8",
                path,
            ) from None
    if not _HOSTNAME.fullmatch(text):
        raise ConfigError(
            f"{entry!r} is not a host name, an address or a network (such as "
            "hooks.internal, 10.0.0.5 or 10.0.0.0/8)",
            path,
        )
    return text.rstrip(".")


class HostGuard:
    """Refuses urls whose host resolves to an internal address that ``allow_hosts`` does not
    list. Built at load (:meth:`from_option`); :meth:`check` runs before each request.

    Thread-safe: it holds only what the config says.
    """

    def __init__(self, names: frozenset[str], networks: tuple[Network, ...]):
        self.names = names
        self.networks = networks

    @classmethod
    def from_option(cls, allow_hosts: Any, path: str = "allow_hosts") -> HostGuard:
        """The guard for the ``allow_hosts`` option (None: allow no internal host).

        Raises :class:`ConfigError` at ``allow_hosts[i]`` for an entry that is not a host
        name, an address or a network."""
        if allow_hosts is None:
            allow_hosts = []
        if isinstance(allow_hosts, str) or not isinstance(allow_hosts, Sequence):
            raise ConfigError("must be a list of hosts, addresses or networks", path)
        names: set[str] = set()
        networks: list[Network] = []
        for index, entry in enumerate(allow_hosts):
            parsed = _parse_entry(entry, f"{path}[{index}]")
            if isinstance(parsed, str):
                names.add(parsed)
            else:
                networks.append(parsed)
        return cls(frozenset(names), tuple(networks))

    def __repr__(self) -> str:
        allowed = sorted(self.names) + [str(n) for n in self.networks]
        return f"HostGuard(allow_hosts={allowed!r})"

    def check(self, url: str, where: str) -> None:
        """Resolve ``url``'s host (every address); raise :class:`DeliveryError` (not
        transient) naming the host and why when one address is internal and not allowed.

        A host that does not resolve is a :class:`ConnectError`, as when connecting.
        """
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        if host in self.names:
            return
        for address in self._addresses(
            host, parts.port or DEFAULT_PORTS.get(parts.scheme, 80), where
        ):
            reason = _internal(address)
            if reason is not None and not self._allowed(address):
                resolved = "is" if _literal(host) == address else f"resolves to {address},"
                raise DeliveryError(
                    f"{where}: not sent: host {host!r} {resolved} a {reason} address, and the "
                    "url takes its host from the event's data; list the host, its address or "
                    "its network in the listener's `allow_hosts` if it is meant"
                )

    def _allowed(self, address: Address) -> bool:
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return any(address in n or (mapped is not None and mapped in n) for n in self.networks)

    @staticmethod
    def _addresses(host: str, port: int, where: str) -> list[Address]:
        literal = _literal(host)
        if literal is not None:
            return [literal]
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise ConnectError(f"{where}: cannot resolve host {host!r} ({exc})") from exc
        # An IPv6 address may carry a zone (fe80::1%eth0): the address is what is judged.
        return [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]
