# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network lists: who may relay by address, who never may, who may connect.

Parses CIDR entries (ASCII only, no host bits), refuses open, public and broad relay grants
unless named in mailsec_relay_allow_broad_networks, and checks that a never-relay network does
not swallow a relay grant. Relay decisions themselves are made in relay_rules.py.
"""

from __future__ import annotations

import bisect
import socket

from ansible_collections.mailsec.relay.plugins.module_utils import grammar

from .addresses import LOOPBACK_NETWORKS, NARROWEST_BROAD_PREFIX, _covered, _meanings, _overlaps, _sort_key, ipv4_meaning, is_public, netaddr
from .errors import _kind_of
from .reading import Reader

VARIABLES = {
    "mailsec_relay_networks": "list",
    "mailsec_relay_never_networks": "list",
    "mailsec_relay_trust_loopback": "bool",
    "mailsec_relay_connect_allow": "list",
    "mailsec_relay_connect_deny": "list",
    "mailsec_relay_allow_broad_networks": "list",
}

# Spellings of "everyone": each of them turns a relay allowlist into an open relay.
_EVERYONE_WORDS = frozenset(("all", "any", "*", "0/0", "any4", "any6", "everyone", "default", "0", "::/0", "0::/0"))

_NETWORK_LIST_FIX = "write it as a YAML list, e.g. ['198.51.100.0/24']."


class NetworksMixin(Reader):
    """Network variables, and the network parts of listeners (relay_networks, connect_*)."""

    def network_lists(self):
        """The global network variables: {broad_allowed, relay_networks, relay_sources, never_parsed,
        never_networks, trust_loopback, connect_allow, connect_deny}."""
        broad_allowed = []
        for name, net in self.parse_networks("mailsec_relay_allow_broad_networks", None) or []:
            if net.prefixlen == 0:
                self.error(name, "%s cannot be allowed: it would make this host an open relay" % net, "list only the broad networks you really own")
            else:
                broad_allowed.append(net)

        relay_parsed = self.parse_networks("mailsec_relay_networks", None, purpose="relay")
        relay_networks = self.check_relay_networks("mailsec_relay_networks", relay_parsed or [], broad_allowed)
        relay_sources = list(relay_parsed or [])

        never_parsed = self.parse_networks("mailsec_relay_never_networks", None) or []
        # A mapped form (::ffff:198.51.100.7) must stop the IPv4 client too: its IPv4 meaning is listed as well.
        never_networks = sorted(netaddr.cidr_merge([m for unused, net in never_parsed for m in _meanings(net)]), key=_sort_key)

        return {
            "broad_allowed": broad_allowed,
            "relay_networks": relay_networks,
            "relay_sources": relay_sources,
            "never_parsed": never_parsed,
            "never_networks": never_networks,
            "trust_loopback": self.get_bool("mailsec_relay_trust_loopback", True),
            "connect_allow": self.merged("mailsec_relay_connect_allow"),
            "connect_deny": self.merged("mailsec_relay_connect_deny"),
        }

    def parse_network(self, variable, entry, purpose):
        """One CIDR entry -> IPNetwork (normalized), or None after recording an error.

        purpose: 'relay' (an allowlist that grants relaying) or 'other'.
        """
        if not isinstance(entry, str):
            self.error(variable, "expected a network as a string (CIDR), got %s" % _kind_of(entry), "quote the network, e.g. '198.51.100.0/24'")
            return None
        text = entry.strip()
        if purpose == "relay" and (text.startswith("!") or text.lower() in _EVERYONE_WORDS):
            self.error(
                variable,
                "'%s' is a 'relay for everyone (except ...)' form, which makes this host an open relay" % text,
                "list only the networks of your own servers; keep hosts that must never relay in mailsec_relay_never_networks",
            )
            return None
        if text.startswith("!"):
            self.error(variable, "'%s': negation is not supported in network lists" % text, "list the networks themselves; there is no 'all except' form")
            return None
        address, slash, prefix = text.partition("/")
        address = address.strip()
        if address.startswith("[") and address.endswith("]"):  # Postfix spelling [2001:db8::]/48
            address = address[1:-1]
        try:
            if not grammar.is_ip_text(address):  # ASCII hex digits, '.' and ':' only, before any parser
                raise ValueError(address)
            # inet_pton, as netaddr's INET_PTON flag, but without building objects twice (large lists).
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            value = int.from_bytes(socket.inet_pton(family, address), "big")
            ip = netaddr.IPAddress(value, 6 if family == socket.AF_INET6 else 4)
        except (netaddr.AddrFormatError, OSError, ValueError, TypeError):
            self.error(variable, "'%s' is not an IPv4 or IPv6 network" % text, "write a CIDR like 198.51.100.0/24 or 2001:db8:25::/64, or a single address")
            return None
        width = 32 if ip.version == 4 else 128
        if slash:
            prefixlen = grammar.parse_prefixlen(prefix, width)  # ASCII digits only: int('٣') is 3
            if prefixlen is None:
                self.error(variable, "'%s' has an invalid prefix length" % text, "use a prefix length from 0 to %d (ASCII digits)" % width)
                return None
        else:
            prefixlen = width
        net = netaddr.IPNetwork((value, prefixlen), version=ip.version)  # from ints: no text round trip
        if value & ((1 << (width - prefixlen)) - 1):
            self.error(
                variable,
                "'%s' has host bits set" % text,
                "write %s for the whole network, or %s/%d for the single host" % (net.cidr, ip, width),
            )
            return None
        return net

    def parse_networks(self, variable, value, purpose="other", given=False):
        """List of (variable[i], IPNetwork) for the entries that parsed, or None on a type error."""
        entries = self.get_list(variable, value=value, given=given, fix=_NETWORK_LIST_FIX)
        if entries is None:
            return None
        parsed = []
        for index, entry in enumerate(entries):
            name = "%s[%d]" % (variable, index)
            net = self.parse_network(name, entry, purpose)
            if net is not None:
                parsed.append((name, net))
        return parsed

    def check_relay_networks(self, variable, parsed, broad_allowed):
        """Refuse open, public and broad relay grants; return the merged, sorted networks."""
        good = []
        for name, net in parsed:
            # IPv4-mapped/-compatible IPv6 networks are judged by the IPv4 addresses they carry too.
            carried = ipv4_meaning(net)
            if net.prefixlen == 0:
                self.error(name, "%s would make this host an open relay" % net, "list only the networks of your own servers")
                continue
            if any(m.prefixlen == 0 for m in carried):
                self.error(
                    name,
                    "%s carries all of IPv4 (as IPv4-mapped or IPv4-compatible addresses), which would make this host an open relay" % net,
                    "list only the networks of your own servers, written as IPv4 networks",
                )
                continue
            problems = []
            if is_public(net):
                problems.append("contains public (globally routable) addresses")
            if net.prefixlen < NARROWEST_BROAD_PREFIX[net.version]:
                problems.append("is wider than /%d" % NARROWEST_BROAD_PREFIX[net.version])
            elif any(m.prefixlen < NARROWEST_BROAD_PREFIX[4] for m in carried):
                problems.append("carries IPv4 addresses wider than /%d (as IPv4-mapped or IPv4-compatible addresses)" % NARROWEST_BROAD_PREFIX[4])
            covered = _covered(net, broad_allowed) or bool(carried) and all(_covered(m, broad_allowed) for m in carried)
            if problems and not covered:
                fix = "relay only for the networks of your own servers; if %s really is yours, also list it in mailsec_relay_allow_broad_networks" % net
                if any(_overlaps(net, netaddr.IPNetwork(loopback)) for loopback in LOOPBACK_NETWORKS):
                    fix = "let mailsec_relay_trust_loopback cover loopback instead; otherwise " + fix
                self.error(name, "the relay network %s %s" % (net, " and ".join(problems)), fix)
                continue
            good.append((name, net))
        # A grant in mapped form is rendered with its IPv4 meaning too: what is judged is what is granted.
        merged = sorted(netaddr.cidr_merge([m for unused, net in good for m in _meanings(net)]), key=_sort_key)
        # Judged on what the entries grant, IPv4 meanings of IPv6 entries included (sorted for bisect).
        judged = sorted(((m, name) for name, net in good for m in _meanings(net)), key=lambda item: _sort_key(item[0]))
        judged_keys = [(m.version, m.first) for m, unused in judged]
        originals = set(m for m, unused in judged)
        for net in sorted(netaddr.cidr_merge(list(originals)), key=_sort_key):
            if net in originals:
                continue
            # Merging can build what no single entry says: 0.0.0.0/1 + 128.0.0.0/1 is 0.0.0.0/0.
            inside = judged[bisect.bisect_left(judged_keys, (net.version, net.first)) : bisect.bisect_right(judged_keys, (net.version, net.last))]
            parts = ", ".join("%s (%s)" % (n, name) for n, name in inside[:5]) + (" and %d more" % (len(inside) - 5) if len(inside) > 5 else "")
            if net.prefixlen == 0:
                self.error(
                    variable,
                    "%s together cover %s, which would make this host an open relay" % (parts, net),
                    "list only the networks of your own servers",
                )
            elif net.prefixlen < NARROWEST_BROAD_PREFIX[net.version] and not _covered(net, broad_allowed):
                self.error(
                    variable,
                    "%s merge into %s, which is wider than /%d" % (parts, net, NARROWEST_BROAD_PREFIX[net.version]),
                    "list narrower networks, or list %s in mailsec_relay_allow_broad_networks if relaying for all of it is intended" % net,
                )
        return merged

    def merged(self, variable, value=None, given=False):
        parsed = self.parse_networks(variable, value, given=given) or []
        return [str(net) for net in sorted(netaddr.cidr_merge([m for unused, net in parsed for m in _meanings(net)]), key=_sort_key)]

    def check_never_swallows(self, never_parsed, relay_sources):
        # O((n + m) log n): relay grants sorted by start; CIDRs nest or are disjoint, so the grants inside
        # a never-relay network are those starting within it and ending before its end.
        relays = sorted(
            ((m.version, m.first, m.last, index) for index, (unused, relay) in enumerate(relay_sources) for m in _meanings(relay)),
        )
        keys = [item[:2] for item in relays]
        for never_name, never in never_parsed:
            hits = set()
            for n in _meanings(never):
                start, end = bisect.bisect_left(keys, (n.version, n.first)), bisect.bisect_right(keys, (n.version, n.last))
                hits.update(index for _version, _first, last, index in relays[start:end] if last <= n.last)
            for index in sorted(hits):
                relay_name, relay = relay_sources[index]
                self.error(
                    never_name,
                    "the never-relay network %s covers the relay network %s (%s), so that grant could never be used" % (never, relay, relay_name),
                    "remove %s from %s, or narrow the never-relay entry to the hosts inside it that must not relay" % (relay, relay_name.rsplit("[", 1)[0]),
                )
