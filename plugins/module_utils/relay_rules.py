# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Relay rules: who may relay, decided once.

The policy model (policy/), the Exim -bh expectations (exim.py), the verifier's expectations
(verify_plan.py) and drift (drift.py, the readbacks) all ask the same question: may a client at
this address relay without AUTH on this listener, and is it never-relay? This module answers it,
on the address-set type they share (``NetSet``).

The rule (docs/policy-model.md): never-relay wins over every grant; a submission listener relays
only after AUTH; an mx listener relays unauthenticated for its relay networks and, when trusted,
loopback.

Standard library only (``ipaddress``, same set semantics as netaddr.IPSet): it runs inside modules
on managed hosts where netaddr is usually missing. No Ansible imports.
"""

from __future__ import annotations

import ipaddress

LOOPBACK_TEXT = ("127.0.0.0/8", "::1/128", "::ffff:127.0.0.0/104")


def parse_network(text):
    """One network in any spelling MTAs use -> ip_network, or None when it is not an address.

    Accepts ``198.51.100.0/24``, ``[2001:db8::]/48`` (Postfix), ``2001:db8::1`` (a host) and
    host bits set (``198.51.100.7/24`` means the /24, as MTAs read it).
    """
    text = str(text).strip()
    if not text:
        return None
    address, _slash, prefix = text.partition("/")
    address = address.strip()
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if prefix and not prefix.strip().isdigit():
        return None
    width = ip.max_prefixlen
    prefixlen = int(prefix) if prefix else width
    if prefixlen > width:
        return None
    return ipaddress.ip_network("%s/%d" % (ip, prefixlen), strict=False)


class NetSet(object):
    """An immutable set of addresses (IPv4 and IPv6) kept as merged CIDRs."""

    def __init__(self, networks=()):
        nets = []
        for item in networks or ():
            net = item if isinstance(item, (ipaddress.IPv4Network, ipaddress.IPv6Network)) else parse_network(item)
            if net is not None:
                nets.append(net)
        self.v4 = list(ipaddress.collapse_addresses([n for n in nets if n.version == 4]))
        self.v6 = list(ipaddress.collapse_addresses([n for n in nets if n.version == 6]))

    @property
    def networks(self):
        return self.v4 + self.v6

    def cidrs(self):
        """Merged CIDRs as strings, IPv4 first (the effective-policy ordering)."""
        return [str(n) for n in self.networks]

    def __bool__(self):
        return bool(self.v4 or self.v6)

    __nonzero__ = __bool__

    def __eq__(self, other):
        return isinstance(other, NetSet) and self.v4 == other.v4 and self.v6 == other.v6

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((tuple(self.v4), tuple(self.v6)))

    def __repr__(self):
        return "NetSet(%r)" % self.cidrs()

    def __or__(self, other):
        return NetSet(self.networks + other.networks)

    def __sub__(self, other):
        result = []
        for net in self.networks:
            pieces = [net]
            for cut in other.networks:
                if cut.version != net.version:
                    continue
                next_pieces = []
                for piece in pieces:
                    if piece.subnet_of(cut):
                        continue
                    if cut.subnet_of(piece):
                        next_pieces.extend(piece.address_exclude(cut))
                    else:
                        next_pieces.append(piece)
                pieces = next_pieces
            result.extend(pieces)
        return NetSet(result)

    def __and__(self, other):
        return self - (self - other)

    def contains(self, address):
        ip = ipaddress.ip_address(str(address).strip("[]"))
        return any(ip in net for net in self.networks if net.version == ip.version)

    def covers(self, other):
        return not (other - self)

    def is_everything(self):
        """True when a whole address family is inside (0.0.0.0/0 or ::/0)."""
        return any(n.prefixlen == 0 for n in self.networks)

    def describe(self, limit=4):
        """Short text: the CIDRs themselves, or "<span> except <holes>" when that is shorter
        (0.0.0.0/0 minus one host is 32 CIDRs, but one line to a reader)."""
        cidrs = self.cidrs()
        if len(cidrs) <= limit:
            return ", ".join(cidrs)
        parts = []
        for family in (self.v4, self.v6):
            if not family:
                continue
            span = _span(family[0], family[-1])
            holes = NetSet([span]) - self
            if len(family) <= limit or len(holes.networks) > limit:
                parts.append(", ".join(str(n) for n in family[:limit]) + (" and %d more" % (len(family) - limit) if len(family) > limit else ""))
            else:
                parts.append("%s except %s" % (span, ", ".join(holes.cidrs())))
        return "; ".join(parts)

    def share(self, version):
        """Fraction of the whole address family (4 or 6) inside this set."""
        nets = self.v4 if version == 4 else self.v6
        width = 32 if version == 4 else 128
        return sum(n.num_addresses for n in nets) / float(2**width)


def _span(first, last):
    """The smallest CIDR holding both networks."""
    low, high = int(first.network_address), int(last.broadcast_address)
    width = first.max_prefixlen
    prefix = width - (low ^ high).bit_length()
    return ipaddress.ip_network("%s/%d" % (ipaddress.ip_address(low) if first.version == 4 else ipaddress.IPv6Address(low), prefix), strict=False)


LOOPBACK = NetSet(LOOPBACK_TEXT)


def without_loopback(netset):
    """Drop the networks entirely inside loopback; 0.0.0.0/0 stays whole (it is not "trust loopback")."""
    return NetSet([n for n in netset.networks if NetSet([n]) - LOOPBACK])


def split_loopback(networks):
    """(non-loopback NetSet, loopback NetSet) of a list: networks entirely inside loopback go right.

    A network that merely contains loopback (0.0.0.0/0) stays a relay grant: it is not "trust loopback".
    """
    relay, loop = [], []
    for item in networks:
        net = parse_network(item)
        if net is None:
            continue
        (loop if NetSet([net]) - LOOPBACK == NetSet() else relay).append(net)
    return NetSet(relay), NetSet(loop)


# --------------------------------------------------------------------------------------------
# Who may relay
# --------------------------------------------------------------------------------------------


def relays_unauthenticated(listener):
    """Whether the listener's role grants any relay without AUTH (mx yes, submission never)."""
    return (listener.get("role") or "mx") == "mx"


def never_relay(policy):
    """The never-relay networks of an effective policy as a NetSet."""
    return NetSet(policy.get("never_relay_networks") or [])


def is_never_relay(policy, client):
    """True when ``client`` (an address in any spelling, or None for unknown) is never-relay."""
    return client is not None and never_relay(policy).contains(client)


def unauth_grants(policy, listener):
    """Who may relay without AUTH on ``listener``: its relay networks plus the loopback networks
    (present only when loopback is trusted), minus never-relay, which overrides every grant."""
    if not relays_unauthenticated(listener):
        return NetSet()
    grants = NetSet(listener.get("relay_networks") or []) | NetSet(policy.get("loopback_networks") or [])
    return grants - never_relay(policy)


def may_relay_unauthenticated(policy, listener, client):
    """Whether an unauthenticated client at ``client`` may relay on ``listener`` (None: unknown, no)."""
    return client is not None and unauth_grants(policy, listener).contains(client)


# --------------------------------------------------------------------------------------------
# Backwards: the readbacks' per-listener grants -> the policy's global relay fields
# --------------------------------------------------------------------------------------------


def finish_policy(policy):
    """Global relay fields derived from the listeners a readback found (Postfix and Exim readbacks):
    trust_loopback and loopback_networks from the port-25 listeners' grants, never_relay_networks as
    what every listener refuses, auth_relay when any listener relays after AUTH."""
    listeners = policy["listeners"]
    primary = [item for item in listeners if item["port"] == 25] or listeners
    loop = NetSet()
    for item in primary:
        loop = loop | (NetSet(item["grants"]) & LOOPBACK)
    policy["trust_loopback"] = loop.contains("127.0.0.1") if loop else False
    policy["loopback_networks"] = loop.cidrs()
    never = None
    for item in listeners:
        mine = NetSet(item["never"])
        never = mine if never is None else never & mine
    policy["never_relay_networks"] = (never or NetSet()).cidrs()
    policy["auth_relay"] = any(item["auth_relay"] for item in listeners)
