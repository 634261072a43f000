# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""netaddr and the address facts the policy judges networks by: public or not, loopback, the IPv4
meaning of IPv6 networks. Pure functions, no error collecting (networks.py does that)."""

from __future__ import annotations

import bisect

from ansible_collections.mailsec.relay.plugins.module_utils import grammar

try:
    import netaddr
except ImportError:  # pragma: no cover - exercised only where netaddr is missing
    import traceback

    netaddr = None
    HAS_NETADDR = False
    NETADDR_IMPORT_ERROR = traceback.format_exc()  # for module.fail_json(msg=missing_required_lib('netaddr'), exception=...)
else:
    HAS_NETADDR = True
    NETADDR_IMPORT_ERROR = None

try:  # the IANA special-purpose registries behind IPAddress.is_global() (netaddr >= 0.10)
    from netaddr.ip import (
        IPV4_NOT_GLOBALLY_REACHABLE,
        IPV4_NOT_GLOBALLY_REACHABLE_EXCEPTIONS,
        IPV6_NOT_GLOBALLY_REACHABLE,
        IPV6_NOT_GLOBALLY_REACHABLE_EXCEPTIONS,
    )
except ImportError:  # pragma: no cover - old netaddr: fall back to per-address checks
    IPV4_NOT_GLOBALLY_REACHABLE = None

MISSING_LIBRARY_MESSAGE = (
    "The Python library netaddr is required on the controller for the mailsec.relay policy. Fix: pip install netaddr (into the Python that runs ansible)."
)

LOOPBACK_NETWORKS = ["127.0.0.0/8", "::1/128"]
# Relay networks wider than this need a named override (mailsec_relay_allow_broad_networks).
NARROWEST_BROAD_PREFIX = {4: 16, 6: 48}


def _sort_key(net):
    return (net.version, net.first, net.prefixlen)


_REACHABILITY = {}


def _reachability(version):
    """(sorted disjoint hidden ranges, their firsts, exception ranges) per IP version, built once."""
    if version not in _REACHABILITY:
        if version == 4:
            hidden, exceptions = IPV4_NOT_GLOBALLY_REACHABLE, IPV4_NOT_GLOBALLY_REACHABLE_EXCEPTIONS
        else:
            hidden, exceptions = IPV6_NOT_GLOBALLY_REACHABLE, IPV6_NOT_GLOBALLY_REACHABLE_EXCEPTIONS
        ranges = [(r.first, r.last) for r in netaddr.IPSet(hidden).iter_ipranges()]
        _REACHABILITY[version] = (ranges, [first for first, unused in ranges], [(n.first, n.last) for n in exceptions])
    return _REACHABILITY[version]


def _range_is_public(first, last, version):
    """Whether any address in [first, last] is globally reachable: O(log n) per range."""
    ranges, firsts, exceptions = _reachability(version)
    if any(first <= e_last and e_first <= last for e_first, e_last in exceptions):
        return True
    index = bisect.bisect_right(firsts, first) - 1
    # The hidden ranges are disjoint and not adjacent: [first, last] is hidden only inside one of them.
    return index < 0 or ranges[index][1] < last


def is_public(net):
    """True if any address of ``net`` is globally reachable (IPAddress.is_global() semantics).

    An IPv6 network carrying IPv4-mapped or IPv4-compatible addresses is public when its IPv4
    meaning is (::ffff:0:0/96 is all of IPv4).
    """
    if IPV4_NOT_GLOBALLY_REACHABLE is None:  # pragma: no cover
        return netaddr.IPAddress(net.first, net.version).is_global() or netaddr.IPAddress(net.last, net.version).is_global()
    if net.version == 6 and any(_range_is_public(first, last, 4) for first, last in grammar.ipv4_meaning(net.first, net.last)):
        return True
    return _range_is_public(net.first, net.last, net.version)


def ipv4_meaning(net):
    """The IPv4 networks an IPv6 network carries as mapped/compatible addresses ([] for IPv4 or none)."""
    if net.version != 6 or net.first > grammar.IPV4_CARRIERS_LAST:
        return []
    nets = []
    for first, last in grammar.ipv4_meaning(net.first, net.last):
        nets.extend(netaddr.iprange_to_cidrs(netaddr.IPAddress(first, 4), netaddr.IPAddress(last, 4)))
    return nets


def _meanings(net):
    """What a network grants, for broadness and overlap checks: itself plus its IPv4 meaning."""
    return [net] + ipv4_meaning(net)


def is_loopback_address(address):
    return address != "*" and netaddr.IPAddress(address).is_loopback()


def _parse_address(value):
    """One IP address (brackets allowed) as its canonical string, or None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not grammar.is_ip_text(text):
        return None
    try:
        return str(netaddr.IPAddress(text, flags=netaddr.INET_PTON))
    except (netaddr.AddrFormatError, ValueError):
        return None


def _overlaps(one, other):
    return one.version == other.version and one.first <= other.last and other.first <= one.last


def _covered(net, allowed):
    return any(net.version == other.version and net in other for other in allowed)
