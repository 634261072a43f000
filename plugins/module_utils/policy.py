# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The relay policy model: parse, normalize and validate the ``mailsec_relay_*`` variables.

This is the single source of truth for the policy (docs/policy-model.md): its variables, their
defaults per profile and the effective policy every role, renderer and verifier consumes.
Pure Python plus netaddr; no Ansible imports, so tests and tools use it directly.

Entry point: ``build_policy(variables, inventory_hostname)`` returns the effective policy or raises
``PolicyErrors`` holding every problem found (never only the first one).
"""

from __future__ import annotations

import bisect
import difflib
import re
import socket

from ansible_collections.mailsec.relay.plugins.module_utils import grammar, relay_rules

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

PREFIX = "mailsec_relay_"
EFFECTIVE_FACT = "mailsec_relay_effective"
# Variables with the policy prefix that this collection itself sets: outputs, not policy input.
OUTPUT_VARIABLES = frozenset({EFFECTIVE_FACT, "mailsec_relay_readback"})

PROFILES = ("mx", "mx_submission", "relay_hub", "null_client")
LISTENER_ROLES = ("mx", "submission")
TLS_MODES = ("none", "starttls", "required", "implicit")
SASL_BACKENDS = ("dovecot",)

SELFSIGNED_CERT = "/etc/ssl/mailsec/relay.crt"
SELFSIGNED_KEY = "/etc/ssl/mailsec/relay.key"
LOOPBACK_NETWORKS = ["127.0.0.0/8", "::1/128"]
# Relay networks wider than this need a named override (mailsec_relay_allow_broad_networks).
NARROWEST_BROAD_PREFIX = {4: 16, 6: 48}

# Every policy variable once: name -> kind. Defaults are applied in _Builder (profile-dependent).
VARIABLES = {
    "mailsec_relay_profile": "str",
    "mailsec_relay_hostname": "str",
    "mailsec_relay_local_domains": "list",
    "mailsec_relay_relay_domains": "list",
    "mailsec_relay_networks": "list",
    "mailsec_relay_never_networks": "list",
    "mailsec_relay_trust_loopback": "bool",
    "mailsec_relay_connect_allow": "list",
    "mailsec_relay_connect_deny": "list",
    "mailsec_relay_auth_relay": "bool",
    "mailsec_relay_client_names": "list",
    "mailsec_relay_client_names_accept_risk": "bool",
    "mailsec_relay_listeners": "list",
    "mailsec_relay_tls_cert": "str",
    "mailsec_relay_tls_key": "str",
    "mailsec_relay_tls_selfsigned": "bool",
    "mailsec_relay_sasl_backend": "str",
    "mailsec_relay_sasl_users": "list",
    "mailsec_relay_smarthost": "str",
    "mailsec_relay_allow_broad_networks": "list",
    "mailsec_relay_sender_login_match": "bool",
    "mailsec_relay_sender_aliases": "list",
    "mailsec_relay_client_connection_count_limit": "int",
    "mailsec_relay_client_connection_rate_limit": "int",
    "mailsec_relay_client_auth_rate_limit": "int",
    "mailsec_relay_smarthost_tls": "str",
    # Brownfield hosts (issue 15): postscreen and the hosted domain kinds.
    "mailsec_relay_postscreen": "bool",
    "mailsec_relay_postscreen_pregreet": "str",
    "mailsec_relay_virtual_mailbox_domains": "list",
    "mailsec_relay_virtual_mailbox_maps": "list",
    "mailsec_relay_virtual_alias_domains": "list",
    "mailsec_relay_virtual_alias_maps": "list",
    "mailsec_relay_relay_recipients": "list",
    "mailsec_relay_relay_recipient_maps": "list",
    "mailsec_relay_blocked_domains": "list",
    "mailsec_relay_content_filter": "dict",
    "mailsec_relay_milters": "list",
}
SMARTHOST_TLS_MODES = ("none", "encrypt")

# Per-client brakes (issue 14): variable -> (effective key, default, ceiling); 0 switches one off.
# Rates count per minute. AUTH attempts are counted, failed or not (Postfix anvil semantics).
CLIENT_LIMITS = {
    "mailsec_relay_client_connection_count_limit": ("connection_count", 50, 10000),
    "mailsec_relay_client_connection_rate_limit": ("connection_rate", 0, 100000),
    "mailsec_relay_client_auth_rate_limit": ("auth_rate", 30, 10000),
}
CONTENT_FILTER_KEYS = ("next_hop", "reinject_address", "reinject_port")
# Matched with fullmatch (a "$" anchor would let a trailing newline through).
_MILTER = re.compile(r"(inet:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}|unix:/[^\s,{}]+)")

PREGREET_ACTIONS = ("enforce", "drop", "ignore")
# Lookup tables a map variable may name (Postfix type:name; the Exim renderer reads the file types).
MAP_TYPES = (
    "hash",
    "btree",
    "lmdb",
    "cdb",
    "dbm",
    "texthash",
    "regexp",
    "pcre",
    "cidr",
    "proxy",
    "mysql",
    "pgsql",
    "sqlite",
    "ldap",
    "memcache",
    "socketmap",
    "tcp",
)
FILE_MAP_TYPES = ("hash", "btree", "lmdb", "cdb", "dbm", "texthash", "regexp", "pcre", "cidr")
_MAP_REFERENCE = re.compile(r"(?P<type>[a-z0-9]+):(?P<name>[^\s,{}]+)")
_RECIPIENT = re.compile(r"(?P<local>[^\s@<>(),;:\"]*)@(?P<domain>[^\s@<>]+)")

LISTENER_KEYS = ("name", "address", "port", "role", "tls", "auth", "relay_networks", "connect_allow", "connect_deny", "sender_login_match")
SASL_USER_KEYS = ("name", "password")

_TRUE_STRINGS = frozenset(("true", "yes", "on", "1", "y", "t"))
_FALSE_STRINGS = frozenset(("false", "no", "off", "0", "n", "f"))
# Spellings of "everyone": each of them turns a relay allowlist into an open relay.
_EVERYONE_WORDS = frozenset(("all", "any", "*", "0/0", "any4", "any6", "everyone", "default", "0", "::/0", "0::/0"))
_EXCEPT_VARIABLE = re.compile(r"except|exclu|all_but|but_not|allow_all|relay_all")
# Anchored with \A...\Z (module_utils/grammar.py): '$' would also match before a trailing newline.
_LABEL = grammar.LABEL
_LISTENER_NAME = grammar.NAME
# Near-misses of the prefix (case, '-', a missing '_', a typo) are errors too, never silently ignored.
_SQUASHED_PREFIX = "mailsecrelay"
# Local parts a sender map can hold safely in Postfix tables and Exim expansions (no '$', '{', ';').
_LOCAL_PART = re.compile(r"\A[a-z0-9._+=-]{1,64}\Z")
SENDER_ALIAS_KEYS = ("login", "addresses")

_NETWORK_LIST_FIX = "write it as a YAML list, e.g. ['198.51.100.0/24']."


class PolicyError(Exception):
    """One problem in a policy: which variable, what is wrong, how to fix it."""

    def __init__(self, variable, message, fix):
        super().__init__(variable, message, fix)
        self.variable = _printable(variable)
        self.message = _sentence(_printable(message))
        self.fix = _sentence(_printable(fix))

    def __str__(self):
        return "%s: %s Fix: %s" % (self.variable, self.message, self.fix)

    def as_dict(self):
        return {"variable": self.variable, "message": self.message, "fix": self.fix}


class PolicyErrors(Exception):
    """Every problem found in one policy, reported together."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self):
        return "\n".join(str(e) for e in self.errors)

    def __iter__(self):
        return iter(self.errors)

    def __len__(self):
        return len(self.errors)


def _printable(text):
    """Control characters escaped: a value with a line break cannot forge a line of output."""
    text = str(text)
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _sentence(text):
    text = str(text).strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _kind_of(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "nothing (null)"
    return "a %s" % type(value).__name__


def _did_you_mean(word, candidates):
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return " (did you mean %s?)" % match[0] if match else ""


def _sort_key(net):
    return (net.version, net.first, net.prefixlen)


def policy_variables(variables):
    """The subset of ``variables`` that is policy input (prefixed, minus this collection's outputs).

    Names that only nearly carry the prefix are kept too, so that build_policy reports them.
    """
    return dict((k, v) for k, v in variables.items() if is_policy_name(k))


def is_near_miss(name):
    """True for a name that looks like a policy variable but is not spelled with the exact prefix.

    ``Mailsec_relay_never_networks``, ``mailsec-relay_networks``, ``mailsecrelay_networks``,
    ``mailsec_realy_networks``: each would otherwise be ignored, and its part of the policy lost.
    """
    if not isinstance(name, str) or name.startswith(PREFIX):
        return False
    squashed = re.sub(r"[^a-z0-9]", "", name.lower())
    if squashed.startswith(_SQUASHED_PREFIX):
        return True
    if len(squashed) <= len(_SQUASHED_PREFIX):
        return False
    # A typo in the prefix: at most two edits (a transposition counts as one) in its first 12 letters.
    return _edit_distance(squashed[: len(_SQUASHED_PREFIX)], _SQUASHED_PREFIX) <= 2


def is_policy_name(name):
    """Policy input: the exact prefix (minus this collection's outputs) or a near-miss of it."""
    if not isinstance(name, str):
        return False
    if name.startswith(PREFIX):
        return name not in OUTPUT_VARIABLES
    return is_near_miss(name)


def _edit_distance(one, other):
    """Optimal string alignment distance (Levenshtein plus adjacent transpositions)."""
    previous2, previous = None, list(range(len(other) + 1))
    for i, a in enumerate(one, 1):
        current = [i] + [0] * len(other)
        for j, b in enumerate(other, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b))
            if i > 1 and j > 1 and a == other[j - 2] and one[i - 2] == b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def default_hostname(inventory_hostname):
    """``inventory_hostname`` if it is an FQDN, else ``<name>.localdomain``."""
    name = str(inventory_hostname or "localhost").strip().lower().rstrip(".")
    labels = name.split(".")
    if len(labels) > 1 and all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit():
        return name
    # IP addresses or odd inventory names become one safe label.
    label = re.sub(r"[^a-z0-9-]+", "-", name).strip("-")[:63].strip("-") or "localhost"
    return label + ".localdomain"


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


class _Builder(object):
    """Collects errors while turning raw variables into the effective policy."""

    def __init__(self, variables, inventory_hostname):
        self.raw = variables
        self.inventory_hostname = inventory_hostname
        self.errors = []
        self.warnings = []
        self.listener_errors = False

    def error(self, variable, message, fix):
        self.errors.append(PolicyError(variable, message, fix))

    # ---- typed accessors -------------------------------------------------------------------

    def get_str(self, name, default=None, value=None, given=False):
        if not given:
            if name not in self.raw:
                return default
            value = self.raw[name]
        if value is None or value == "":
            return default
        if not isinstance(value, str):
            self.error(name, "expected a string, got %s" % _kind_of(value), "quote the value in YAML")
            return default
        return value.strip()

    def get_bool(self, name, default, value=None, given=False):
        if not given:
            if name not in self.raw or self.raw[name] is None:
                return default
            value = self.raw[name]
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE_STRINGS | _FALSE_STRINGS:
            return value.strip().lower() in _TRUE_STRINGS
        self.error(name, "expected a boolean, got %s" % _kind_of(value), "write true or false")
        return default

    def get_list(self, name, value=None, given=False, fix=None):
        """A list, or None when the value has the wrong type (the error is recorded)."""
        if not given:
            value = self.raw.get(name)
        if value is None:
            return []
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, str):
            self.error(name, "expected a list, got a string (%r)" % value[:60], fix or "write it as a YAML list, e.g. ['%s']" % value.strip()[:60])
        else:
            self.error(name, "expected a list, got %s" % _kind_of(value), fix or "write it as a YAML list")
        return None

    # ---- networks ---------------------------------------------------------------------------

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

    # ---- domains ----------------------------------------------------------------------------

    def normalize_domain(self, variable, value, subtree_ok=False, fqdn=False):
        if not isinstance(value, str):
            self.error(variable, "expected a domain name as a string, got %s" % _kind_of(value), "quote the domain, e.g. 'example.test'")
            return None
        text = value.strip().lower()
        if text.endswith("."):
            text = text[:-1]  # the absolute form means the same domain
        if "*" in text:
            fix = (
                "use '.%s' to match every name below it" % text.lstrip("*.")
                if subtree_ok
                else "list the domain itself (each subdomain that must be handled is listed on its own)"
            )
            self.error(variable, "'%s': wildcards are not allowed" % value, fix)
            return None
        subtree = False
        if text.startswith("."):
            if not subtree_ok:
                self.error(variable, "'%s' starts with a dot" % value, "remove the leading dot")
                return None
            subtree, text = True, text[1:]
        try:
            ascii_text = text.encode("idna").decode("ascii").lower() if not text.isascii() else text
        except (UnicodeError, ValueError):
            self.error(variable, "'%s' is not a valid internationalized domain name" % value, "check the spelling, or write the punycode (xn--) form")
            return None
        labels = ascii_text.split(".")
        if not ascii_text or len(ascii_text) > 253 or not all(_LABEL.match(label) for label in labels):
            self.error(
                variable,
                "'%s' is not a valid domain name" % value,
                "use letters, digits and hyphens in dot-separated labels of at most 63 characters (e.g. mail.example.test)",
            )
            return None
        if labels[-1].isdigit():
            self.error(
                variable,
                "'%s' looks like an IP address, not a domain name" % value,
                "write a domain name here; networks belong in mailsec_relay_networks",
            )
            return None
        if fqdn and len(labels) < 2:
            self.error(variable, "'%s' is not a fully qualified name" % value, "use a name with a domain, e.g. mx1.example.test")
            return None
        return ("." if subtree else "") + ascii_text

    def domain_list(self, variable, subtree_ok=False):
        entries = self.get_list(variable, fix="write it as a YAML list, e.g. ['example.test']")
        result = {}
        for index, entry in enumerate(entries or []):
            name = "%s[%d]" % (variable, index)
            domain = self.normalize_domain(name, entry, subtree_ok=subtree_ok)
            if domain is not None:
                result.setdefault(domain, name)
        return result  # domain -> the variable[i] it came from first

    # ---- the whole policy -------------------------------------------------------------------

    def build(self):
        self.check_variable_names()

        profile = self.get_str("mailsec_relay_profile", "mx")
        if profile not in PROFILES:
            self.error(
                "mailsec_relay_profile",
                "unknown profile '%s'%s" % (profile, _did_you_mean(profile, PROFILES)),
                "use one of: %s" % ", ".join(PROFILES),
            )
            profile = "mx"  # keep checking the rest against the most restrictive profile

        hostname_value = self.get_str("mailsec_relay_hostname")
        if hostname_value is None:
            hostname = default_hostname(self.inventory_hostname)
        else:
            hostname = self.normalize_domain("mailsec_relay_hostname", hostname_value, fqdn=True)

        local_domains = self.domain_list("mailsec_relay_local_domains")
        relay_domains = self.domain_list("mailsec_relay_relay_domains")
        for domain, name in relay_domains.items():
            if domain in local_domains:
                self.error(
                    name,
                    "%s is also in mailsec_relay_local_domains (%s)" % (domain, local_domains[domain]),
                    "a domain is either delivered here (local) or forwarded (relay): remove it from one of the two lists",
                )

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

        trust_loopback = self.get_bool("mailsec_relay_trust_loopback", True)
        connect_allow = self.merged("mailsec_relay_connect_allow")
        connect_deny = self.merged("mailsec_relay_connect_deny")

        auth_relay = self.get_bool("mailsec_relay_auth_relay", profile == "mx_submission")

        client_names = self.domain_list("mailsec_relay_client_names", subtree_ok=True)
        accept_risk = self.get_bool("mailsec_relay_client_names_accept_risk", False)
        if client_names and not accept_risk:
            self.error(
                "mailsec_relay_client_names",
                "relaying by client name trusts DNS, which the client's network owner controls",
                "prefer mailsec_relay_networks; if you must, also set mailsec_relay_client_names_accept_risk: true",
            )
        elif client_names:
            self.warnings.append(
                "mailsec_relay_client_names: relaying by forward-confirmed client name (%s) is weak: "
                "whoever controls those DNS zones can relay through this host." % ", ".join(sorted(client_names))
            )

        tls = self.tls()
        has_tls = tls["selfsigned"] or bool(tls["cert"] and tls["key"])

        self.sender_login_match_default = self.get_bool("mailsec_relay_sender_login_match", False)
        listeners, listener_sources = self.listeners(profile, has_tls, auth_relay, broad_allowed)
        for listener, sources in zip(listeners, listener_sources):
            relay_sources.extend(sources)

        self.check_never_swallows(never_parsed, relay_sources)

        submission = [item for item in listeners if item["role"] == "submission"]
        if auth_relay and not submission and not self.listener_errors:
            self.error(
                "mailsec_relay_auth_relay",
                "authenticated relay is only offered on submission listeners, and this policy (profile %s) has none" % profile,
                "use profile mx_submission, add a submission listener (587/465) to mailsec_relay_listeners, or set mailsec_relay_auth_relay: false",
            )
        for item in submission:
            if not item["auth"]:
                self.warnings.append(
                    "listener %s (port %d) is a submission listener without AUTH: it accepts mail only for local and relay domains."
                    % (item["name"], item["port"])
                )

        # Judged on what the user wrote, so a rejected entry does not also read as "nothing listed".
        relay_written = bool(self.raw.get("mailsec_relay_networks")) or any(
            isinstance(item, dict) and item.get("relay_networks") for item in _as_list(self.raw.get("mailsec_relay_listeners"))
        )
        if profile == "null_client":
            for variable in ("mailsec_relay_networks", "mailsec_relay_local_domains", "mailsec_relay_relay_domains", "mailsec_relay_client_names"):
                if self.raw.get(variable):
                    self.error(
                        variable,
                        "a null_client only sends its own mail: it accepts nothing from the network and relays for no one",
                        "remove %s, or choose profile mx or relay_hub" % variable,
                    )
        if profile == "relay_hub" and not relay_written:
            self.error(
                "mailsec_relay_networks",
                "profile relay_hub relays for allowlisted networks, but none is listed",
                "list the networks of the servers that send through this hub, e.g. ['198.51.100.0/28'], or choose profile mx",
            )

        sasl = self.sasl(auth_relay)
        smarthost = self.smarthost()
        sender_logins = self.sender_logins(sasl["users"], sorted(local_domains), hostname, listeners)
        client_limits = self.client_limits()
        smarthost_tls = self.smarthost_tls(smarthost)
        hosted = self.hosted_domains(local_domains, relay_domains, profile)
        postscreen = self.postscreen(listeners)
        content_filter = self.content_filter()
        milters = self.milters()

        if self.errors:
            raise PolicyErrors(self.errors)

        return {
            "profile": profile,
            "hostname": hostname,
            "local_domains": sorted(local_domains),
            "relay_domains": sorted(relay_domains),
            "relay_networks": [str(net) for net in relay_networks],
            "never_relay_networks": [str(net) for net in never_networks],
            "trust_loopback": trust_loopback,
            "loopback_networks": list(LOOPBACK_NETWORKS) if trust_loopback else [],
            "connect_allow": connect_allow,
            "connect_deny": connect_deny,
            "auth_relay": auth_relay,
            "client_names": sorted(client_names),
            "listeners": listeners,
            "tls": tls,
            "sasl": sasl,
            "smarthost": smarthost,
            "sender_logins": sender_logins,
            "client_limits": client_limits,
            "smarthost_tls": smarthost_tls,
            "postscreen": postscreen,
            "postscreen_pregreet": self.get_str("mailsec_relay_postscreen_pregreet", "enforce"),
            **hosted,
            "content_filter": content_filter,
            "milters": milters,
            "warnings": list(self.warnings),
        }

    def check_variable_names(self):
        for name in sorted(self.raw, key=str):
            if is_near_miss(name):
                squashed = dict((re.sub(r"[^a-z0-9]", "", known), known) for known in VARIABLES)
                meant = difflib.get_close_matches(re.sub(r"[^a-z0-9]", "", name.lower()), list(squashed), n=1, cutoff=0.8)
                self.error(
                    name,
                    "this looks like a policy variable but its prefix is not spelled exactly 'mailsec_relay_' (lower case, underscores); "
                    "it would be ignored and its part of the policy lost%s" % (" (did you mean %s?)" % squashed[meant[0]] if meant else ""),
                    "rename it with the exact prefix mailsec_relay_ (see docs/policy-model.md)",
                )
                continue
            if not name.startswith(PREFIX) or name in VARIABLES or name in OUTPUT_VARIABLES:
                continue
            if _EXCEPT_VARIABLE.search(name[len(PREFIX) :]):
                self.error(
                    name,
                    "'relay for all except ...' is not supported: without a connect-level limit it is an open relay",
                    "list the networks that may relay in mailsec_relay_networks and those that never may in mailsec_relay_never_networks",
                )
            else:
                self.error(
                    name,
                    "unknown policy variable%s" % _did_you_mean(name.lower(), VARIABLES),
                    "fix the spelling or remove it; every mailsec_relay_* variable is part of the relay policy (see docs/policy-model.md)",
                )

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

    def tls(self):
        cert = self.get_str("mailsec_relay_tls_cert")
        key = self.get_str("mailsec_relay_tls_key")
        selfsigned = self.get_bool("mailsec_relay_tls_selfsigned", False)
        for name, path in (("mailsec_relay_tls_cert", cert), ("mailsec_relay_tls_key", key)):
            if path is not None and not path.startswith("/"):
                self.error(name, "'%s' is not an absolute path" % path, "give the full path of the file on the managed host, e.g. /etc/ssl/private/mx.key")
            elif path is not None and not grammar.is_abs_path(path):
                # Exim expands '${...}' in these values at run time; a line break would write a line of its own.
                self.error(
                    name,
                    "%r contains characters a certificate or key path cannot have here (allowed: letters, digits, '/', '.', '_', '-', '+', '@', '='; "
                    "no '..' segments; at most %d characters)" % (path, grammar.PATH_MAX),
                    "rename the file, or give a path without '$', braces, whitespace, ',' or ':', e.g. /etc/ssl/private/mx.key",
                )
        if bool(cert) != bool(key):
            missing = "mailsec_relay_tls_key" if cert else "mailsec_relay_tls_cert"
            self.error(missing, "a certificate needs its key and a key its certificate", "set both mailsec_relay_tls_cert and mailsec_relay_tls_key")
        if selfsigned and not cert and not key:
            cert, key = SELFSIGNED_CERT, SELFSIGNED_KEY
        return {"cert": cert, "key": key, "selfsigned": selfsigned}

    def listeners(self, profile, has_tls, auth_relay, broad_allowed):
        raw = self.raw.get("mailsec_relay_listeners")
        from_profile = raw is None
        if from_profile:
            raw = profile_listeners(profile, has_tls)
            if not has_tls and any(item["role"] == "submission" for item in raw):
                self.error(
                    "mailsec_relay_tls_cert",
                    "profile %s has submission listeners (587, 465), which need TLS material" % profile,
                    "set mailsec_relay_tls_cert and mailsec_relay_tls_key, or mailsec_relay_tls_selfsigned: true (labs only)",
                )
        entries = self.get_list("mailsec_relay_listeners", value=raw, given=True)
        if entries is None:
            self.listener_errors = True
            return [], []
        if not entries and profile != "null_client":
            self.error(
                "mailsec_relay_listeners",
                "no listeners: this host would receive no mail",
                "remove the variable to get the profile's listeners, or list at least one",
            )
        listeners, sources, seen_names = [], [], {}
        for index, entry in enumerate(entries):
            variable = "mailsec_relay_listeners[%d]" % index
            item = self.listener(variable, entry, profile, has_tls, auth_relay, broad_allowed, check_tls=not from_profile)
            if item is None:
                continue
            listener, relay_sources = item
            same_port = [other for other in listeners if other["port"] == listener["port"]]
            if listener["name"] in seen_names:
                self.error(
                    variable + ".name",
                    "name '%s' is already used by %s" % (listener["name"], seen_names[listener["name"]]),
                    "give every listener its own name",
                )
            seen_names.setdefault(listener["name"], variable)
            for other in same_port:
                # '*' binds every address of both families, so it collides with any specific one.
                if "*" in (other["address"], listener["address"]) or other["address"] == listener["address"]:
                    self.error(
                        variable + ".port",
                        "%s:%d clashes with listener %s (%s:%d): both would bind the same port"
                        % (listener["address"], listener["port"], other["name"], other["address"], other["port"]),
                        "use another port, or bind both listeners to distinct specific addresses instead of '*'",
                    )
            listeners.append(listener)
            sources.append(relay_sources)
        return listeners, sources

    def listener(self, variable, entry, profile, has_tls, auth_relay, broad_allowed, check_tls):
        if not isinstance(entry, dict):
            self.error(variable, "expected a mapping {name, address, port, role, tls}, got %s" % _kind_of(entry), "write each listener as a YAML mapping")
            return None
        ok = True
        for key in entry:
            if key not in LISTENER_KEYS:
                self.error(
                    "%s.%s" % (variable, key),
                    "unknown listener key%s" % _did_you_mean(str(key), LISTENER_KEYS),
                    "use only: %s" % ", ".join(LISTENER_KEYS),
                )
                ok = False

        name = entry.get("name")
        if not grammar.is_name(name):
            self.error(
                variable + ".name",
                "missing or invalid listener name (%r)" % (name,),
                "name the listener with lower-case letters, digits, '-' or '_' (e.g. smtp, submission)",
            )
            ok = False

        role = entry.get("role")
        if role not in LISTENER_ROLES:
            self.error(
                variable + ".role",
                "missing or unknown role %r%s" % (role, _did_you_mean(str(role), LISTENER_ROLES)),
                "use mx (port-25 semantics) or submission (AUTH after TLS)",
            )
            ok = False

        port = grammar.parse_port(entry.get("port"))  # ASCII digits only
        if port is None:
            self.error(variable + ".port", "invalid port %r" % (entry.get("port"),), "use a number from 1 to 65535 (25, 587, 465)")
            ok = False

        address = entry.get("address", "*")
        if address != "*":
            address = _parse_address(address)
            if address is None:
                self.error(
                    variable + ".address",
                    "%r is not '*' or one IP address" % (entry.get("address"),),
                    "use '*' for all addresses, or one address such as 198.51.100.10 (no prefix length)",
                )
                ok = False
        if ok and profile == "null_client" and not is_loopback_address(address):
            self.error(
                variable + ".address",
                "a null_client listens on loopback only, not on %s" % address,
                "bind the listener to 127.0.0.1 or ::1, or choose another profile",
            )

        tls = entry.get("tls")
        if tls is None and role in LISTENER_ROLES and ok:  # defaults as in the profiles
            tls = ("implicit" if port == 465 else "required") if role == "submission" else ("starttls" if has_tls else "none")
        if tls is None:  # no default without a valid role and port, already reported
            ok = False
        elif tls not in TLS_MODES:
            self.error(variable + ".tls", "unknown TLS mode %r%s" % (tls, _did_you_mean(str(tls), TLS_MODES)), "use one of: %s" % ", ".join(TLS_MODES))
            ok = False

        auth_given = entry.get("auth")
        auth = None
        if auth_given is not None:
            auth = self.get_bool(variable + ".auth", None, value=auth_given, given=True)
            if auth is None:
                ok = False

        sender_match_given = entry.get("sender_login_match")
        sender_match = None
        if sender_match_given is not None:
            sender_match = self.get_bool(variable + ".sender_login_match", None, value=sender_match_given, given=True)
            if sender_match is None:
                ok = False

        relay_value = entry.get("relay_networks")
        relay_parsed = None
        if relay_value is not None:
            relay_parsed = self.parse_networks(variable + ".relay_networks", relay_value, purpose="relay", given=True)
            if relay_parsed is None:
                ok = False
        connect_allow = connect_deny = None
        if entry.get("connect_allow") is not None:
            connect_allow = self.merged(variable + ".connect_allow", entry["connect_allow"], given=True)
        if entry.get("connect_deny") is not None:
            connect_deny = self.merged(variable + ".connect_deny", entry["connect_deny"], given=True)

        if relay_value and profile == "null_client":
            self.error(variable + ".relay_networks", "a null_client relays for no one", "remove relay_networks, or choose profile mx or relay_hub")
        if not ok:
            self.listener_errors = True
            return None

        if role == "submission":
            if port == 25:
                self.error(
                    variable + ".role",
                    "a submission listener on port 25 would offer AUTH on 25",
                    "use role mx on port 25, and ports 587/465 for submission",
                )
            if tls == "none":
                self.error(variable + ".tls", "a submission listener must protect AUTH with TLS", "use tls: required (587) or tls: implicit (465)")
            if relay_value:
                self.error(
                    variable + ".relay_networks",
                    "submission listeners relay only after AUTH, never for networks",
                    "remove relay_networks here, or put them on an mx listener",
                )
            if auth is None:
                auth = auth_relay
            elif auth and not auth_relay:
                self.error(
                    variable + ".auth",
                    "AUTH is enabled on this listener but mailsec_relay_auth_relay is false",
                    "set mailsec_relay_auth_relay: true, or remove auth here",
                )
            if sender_match and not auth:
                self.error(
                    variable + ".sender_login_match",
                    "sender identity is checked against the AUTH login, and this listener has no AUTH",
                    "enable auth on this listener (and mailsec_relay_auth_relay), or remove sender_login_match",
                )
            if sender_match is None:
                sender_match = bool(auth) and self.sender_login_match_default
        else:
            if sender_match:
                self.error(
                    variable + ".sender_login_match",
                    "mx listeners never offer AUTH, so there is no login to match the sender against",
                    "remove sender_login_match here; set it on a submission listener",
                )
            sender_match = False
            if auth:
                self.error(
                    variable + ".auth",
                    "AUTH on an mx listener lets password guessers relay through port 25",
                    "remove auth here; offer AUTH on a submission listener (587/465)",
                )
            auth = False
        if port == 25 and tls == "implicit":
            self.error(
                variable + ".tls",
                "implicit TLS on port 25 breaks every sending MTA (they speak plain SMTP, then STARTTLS)",
                "use tls: starttls on port 25, and implicit only on 465",
            )
        if check_tls and tls != "none" and not has_tls:
            self.error(
                variable + ".tls",
                "tls: %s needs a certificate and key, and none is configured" % tls,
                "set mailsec_relay_tls_cert and mailsec_relay_tls_key, or mailsec_relay_tls_selfsigned: true (labs only)",
            )

        sources = []
        if role == "submission":
            networks = []
        elif relay_parsed is not None:
            networks = [str(n) for n in self.check_relay_networks(variable + ".relay_networks", relay_parsed, broad_allowed)]
            sources = relay_parsed
        else:
            networks = None  # filled with the global list by the caller
        listener = {
            "name": name,
            "address": address,
            "port": port,
            "role": role,
            "tls": tls,
            "auth": bool(auth),
            "relay_networks": networks,
            "connect_allow": connect_allow,
            "connect_deny": connect_deny,
            "sender_login_match": bool(sender_match),
        }
        return listener, sources

    def sasl(self, auth_relay):
        backend = self.get_str("mailsec_relay_sasl_backend", "dovecot")
        if backend not in SASL_BACKENDS:
            self.error(
                "mailsec_relay_sasl_backend",
                "SASL backend '%s' is not supported" % backend,
                "use dovecot (the only backend the roles set up for both Postfix and Exim)",
            )
        users = self.get_list("mailsec_relay_sasl_users", fix="write it as a YAML list of {name, password} mappings")
        names = []
        for index, entry in enumerate(users or []):
            variable = "mailsec_relay_sasl_users[%d]" % index
            if not isinstance(entry, dict):
                # Never echo the value: it may be a password.
                self.error(variable, "expected a mapping {name, password}, got %s" % _kind_of(entry), "write each user as {name: ..., password: ...}")
                continue
            for key in entry:
                if key not in SASL_USER_KEYS:
                    self.error("%s.%s" % (variable, key), "unknown key%s" % _did_you_mean(str(key), SASL_USER_KEYS), "use only name and password")
            name = entry.get("name")
            if not isinstance(name, str) or not name.strip():
                self.error(variable + ".name", "the user has no name", "give every SASL user a name, e.g. alice@example.test")
                name = None
            elif not grammar.is_login(name.strip()):
                self.error(
                    variable + ".name",
                    "user names are a plain login or address: letters, digits, '.', '_', '+', '=', '-', optionally @domain",
                    "use a plain login such as alice or alice@example.test",
                )
                name = None
            else:
                name = name.strip()
                if name in names:
                    self.error(variable + ".name", "user '%s' is listed twice" % name, "list every user once")
            password = entry.get("password")
            if not isinstance(password, str) or not password:
                self.error(variable + ".password", "the user has no password (a non-empty string)", "set a password, ideally from Ansible Vault")
            elif ":" in password or "\n" in password or "\r" in password:
                self.error(
                    variable + ".password",
                    "the password contains ':' or a line break, which Dovecot's passwd-file cannot store",
                    "choose a password without ':' and line breaks",
                )
            if name is not None and name not in names:
                names.append(name)
        if names and not auth_relay:
            self.warnings.append("mailsec_relay_sasl_users is set but mailsec_relay_auth_relay is false: the users can log in but not relay.")
        return {"backend": backend, "users": names}

    def smarthost(self):
        value = self.get_str("mailsec_relay_smarthost")
        if value is None:
            return None
        match = re.fullmatch(r"(\[(?P<bracketed>[^\]]+)\]|(?P<plain>[^\[\]:]+))(:(?P<port>[0-9]{1,5}))?", value)
        host = port = None
        if match:
            host = match.group("bracketed") or match.group("plain")
            port = int(match.group("port")) if match.group("port") else None
        elif value.count(":") > 1 and not value.startswith("["):
            host = False  # a bare IPv6 address: its colons cannot be told from a port
        fix = "write host, [host] or [host]:port, e.g. '[198.51.100.100]:25' (IPv6 inside brackets)"
        if not host or (port is not None and not 1 <= port <= 65535):
            self.error("mailsec_relay_smarthost", "'%s' is not a valid smarthost" % value, fix)
            return None
        ip = None
        address_text = host[5:] if host.lower().startswith("ipv6:") else host
        try:
            ip = netaddr.IPAddress(address_text, flags=netaddr.INET_PTON)
        except (netaddr.AddrFormatError, ValueError):
            pass
        if ip is not None:
            if ip.version == 6 and not match.group("bracketed"):
                self.error("mailsec_relay_smarthost", "'%s': an IPv6 address must be in brackets" % value, fix)
                return None
            normalized = "[%s]" % ip  # an address never has MX records: brackets say so explicitly
        else:
            name = self.normalize_domain("mailsec_relay_smarthost", host, fqdn=False)
            if name is None:
                return None
            normalized = "[%s]" % name if match.group("bracketed") else name
        return normalized + (":%d" % port if port is not None else "")

    def smarthost_tls(self, smarthost):
        """TLS to the smarthost: none (opportunistic as the MTA's default) or encrypt (required)."""
        mode = self.get_str("mailsec_relay_smarthost_tls", "none")
        if mode not in SMARTHOST_TLS_MODES:
            self.error(
                "mailsec_relay_smarthost_tls",
                "unknown mode %r%s" % (mode, _did_you_mean(str(mode), SMARTHOST_TLS_MODES)),
                "use none or encrypt (mail to the smarthost stays queued unless TLS is negotiated)",
            )
            return "none"
        if mode != "none" and smarthost is None:
            self.error(
                "mailsec_relay_smarthost_tls",
                "TLS to the smarthost is required, but no smarthost is set",
                "set mailsec_relay_smarthost, or remove mailsec_relay_smarthost_tls",
            )
        return mode

    def client_limits(self):
        """Per-client connection and AUTH brakes: {connection_count, connection_rate, auth_rate}."""
        limits = {}
        for variable, (key, default, ceiling) in CLIENT_LIMITS.items():
            value = self.raw.get(variable)
            if value is None:
                limits[key] = default
                continue
            if isinstance(value, str) and re.fullmatch(r"[0-9]{1,6}", value.strip()):  # ASCII digits only
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= ceiling:
                self.error(
                    variable,
                    "expected a whole number from 0 to %d, got %s" % (ceiling, repr(value) if isinstance(value, int) else _kind_of(value)),
                    "write a number such as %d (0 switches this limit off)" % (default or 60),
                )
                value = default
            limits[key] = value
        return limits

    def sender_address(self, variable, value):
        """A sender address as local@domain (domain normalized, all lower-case), or None."""
        if not isinstance(value, str) or value.count("@") != 1:
            self.error(variable, "%r is not an address local@domain" % (value,), "write one address such as alice@example.test")
            return None
        local, unused, domain = value.strip().lower().partition("@")
        if not _LOCAL_PART.fullmatch(local):
            self.error(
                variable,
                "the local part of %r has characters the sender maps cannot hold" % value,
                "use letters, digits and . _ + = - in the local part",
            )
            return None
        domain = self.normalize_domain(variable, domain)
        return None if domain is None else "%s@%s" % (local, domain)

    def sender_logins(self, sasl_names, local_domains, hostname, listeners):
        """Who may use which envelope sender after AUTH: {address: [logins]} (sender_login_match).

        A login that is an address owns that address; a bare login owns login@ each local domain
        and the host name. mailsec_relay_sender_aliases adds addresses per login.
        """
        owners = {}

        def own(address, login):
            logins = owners.setdefault(address, [])
            if login not in logins:
                logins.append(login)

        home = list(local_domains) + ([hostname] if hostname and hostname not in local_domains else [])

        def own_login(login):
            login = login.lower()  # Dovecot's passdb (username_format=%Lu) hands the MTA lower-case logins
            if "@" in login:
                address = login.lower()
                if address.count("@") == 1 and _LOCAL_PART.fullmatch(address.partition("@")[0]):
                    own(address, login)
            elif _LOCAL_PART.fullmatch(login.lower()):
                for domain in home:
                    own("%s@%s" % (login.lower(), domain), login)

        for login in sasl_names:
            own_login(login)
        entries = self.get_list("mailsec_relay_sender_aliases", fix="write it as a YAML list of {login, addresses} mappings")
        for index, entry in enumerate(entries or []):
            variable = "mailsec_relay_sender_aliases[%d]" % index
            if not isinstance(entry, dict):
                self.error(variable, "expected a mapping {login, addresses}, got %s" % _kind_of(entry), "write each entry as {login: alice, addresses: [...]}")
                continue
            for key in entry:
                if key not in SENDER_ALIAS_KEYS:
                    self.error("%s.%s" % (variable, key), "unknown key%s" % _did_you_mean(str(key), SENDER_ALIAS_KEYS), "use only login and addresses")
            login = entry.get("login")
            if not isinstance(login, str) or not grammar.is_login(login.strip()):
                self.error(variable + ".login", "missing or invalid login %r" % (login,), "give the SASL login name, e.g. alice or alice@example.test")
                continue
            login = login.strip().lower()
            own_login(login)
            addresses = self.get_list(variable + ".addresses", value=entry.get("addresses"), given=True, fix="write it as a YAML list of addresses")
            if not addresses:
                if addresses == []:
                    self.error(variable + ".addresses", "no addresses listed for %s" % login, "list the extra sender addresses of this login")
                continue
            for number, item in enumerate(addresses):
                address = self.sender_address("%s.addresses[%d]" % (variable, number), item)
                if address is not None:
                    own(address, login)
        enforced = [item["name"] for item in listeners if item.get("sender_login_match")]
        if enforced and not owners and not self.errors:
            self.error(
                "mailsec_relay_sender_login_match",
                "listener %s checks the sender against the login, but no login owns any address: every authenticated sender would be refused"
                % ", ".join(enforced),
                "list the users in mailsec_relay_sasl_users or their addresses in mailsec_relay_sender_aliases, or set sender_login_match: false",
            )
        return dict((address, sorted(owners[address])) for address in sorted(owners))

    # ---- brownfield: postscreen and hosted domain kinds (issue 15) -----------------------------

    def postscreen(self, listeners):
        """True/False: render (or remove) a postscreen front; None: keep whatever the host has."""
        value = self.get_bool("mailsec_relay_postscreen", None)
        pregreet = self.get_str("mailsec_relay_postscreen_pregreet", "enforce")
        if pregreet not in PREGREET_ACTIONS:
            self.error(
                "mailsec_relay_postscreen_pregreet",
                "unknown action '%s'%s" % (pregreet, _did_you_mean(str(pregreet), PREGREET_ACTIONS)),
                "use enforce (refuse clients that talk before the greeting, the default), drop or ignore",
            )
        fronted = [item for item in listeners if item["role"] == "mx" and item["port"] == 25]
        if value and not fronted:
            self.error(
                "mailsec_relay_postscreen",
                "postscreen fronts an mx listener on port 25, and this policy has none",
                "add an mx listener on port 25, or set mailsec_relay_postscreen: false",
            )
        elif value and len(fronted) > 1:
            self.error(
                "mailsec_relay_postscreen",
                "postscreen can front one port-25 listener, and this policy has %d (%s)" % (len(fronted), ", ".join(i["name"] for i in fronted)),
                "keep one mx listener on port 25, or set mailsec_relay_postscreen: false",
            )
        return value

    def content_filter(self):
        """An after-queue content filter (FILTER_README): mail goes to next_hop, comes back on a
        re-injection listener of its own, bound to loopback and relaying only for loopback. None: keep as found."""
        variable = "mailsec_relay_content_filter"
        raw = self.raw.get(variable)
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.error(
                variable,
                "expected a mapping {next_hop, reinject_address, reinject_port}, got %s" % _kind_of(raw),
                "write e.g. {next_hop: '[127.0.0.1]:10024', reinject_port: 10025}",
            )
            return None
        for key in raw:
            if key not in CONTENT_FILTER_KEYS:
                self.error(
                    "%s.%s" % (variable, key), "unknown key%s" % _did_you_mean(str(key), CONTENT_FILTER_KEYS), "use only: %s" % ", ".join(CONTENT_FILTER_KEYS)
                )
        hop = raw.get("next_hop")
        match = re.fullmatch(r"^\[(?P<host>[^\]]+)\]:(?P<port>[0-9]{1,5})$", hop.strip()) if isinstance(hop, str) else None
        if not match or _parse_address(match.group("host")) is None or not 1 <= int(match.group("port")) <= 65535:
            self.error(variable + ".next_hop", "%r is not [address]:port" % (hop,), "write where the filter listens, e.g. '[127.0.0.1]:10024'")
        address = _parse_address(raw.get("reinject_address", "127.0.0.1"))
        if address is None or not is_loopback_address(address):
            self.error(
                variable + ".reinject_address",
                "the re-injection listener must be bound to loopback, not %r: from outside it would be an open relay" % (raw.get("reinject_address"),),
                "use 127.0.0.1 or ::1 (the filter runs on this host)",
            )
        port = raw.get("reinject_port", 10025)
        if isinstance(port, str) and port.strip().isdigit():
            port = int(port)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535 or port in (25, 465, 587):
            self.error(variable + ".reinject_port", "invalid re-injection port %r" % (port,), "use a free port of its own, e.g. 10025")
        if not match or address is None or not isinstance(port, int):
            return None
        return {"next_hop": "[%s]:%s" % (_parse_address(match.group("host")), match.group("port")), "reinject_address": address, "reinject_port": port}

    def milters(self):
        """Milters for mail from the network (Postfix smtpd_milters). [] : keep what the host has."""
        result = []
        for index, entry in enumerate(self.get_list("mailsec_relay_milters", fix="write it as a YAML list, e.g. ['inet:127.0.0.1:8891']") or []):
            if not isinstance(entry, str) or not _MILTER.fullmatch(entry.strip()):
                self.error(
                    "mailsec_relay_milters[%d]" % index,
                    "%r is not a milter address" % (entry,),
                    "write inet:host:port or unix:/path, e.g. inet:127.0.0.1:8891 (OpenDKIM)",
                )
            elif entry.strip() not in result:
                result.append(entry.strip())
        return result

    def map_references(self, variable):
        result = []
        for index, entry in enumerate(self.get_list(variable, fix="write it as a YAML list, e.g. ['hash:/etc/postfix/vmailbox']") or []):
            name = "%s[%d]" % (variable, index)
            match = _MAP_REFERENCE.fullmatch(entry.strip()) if isinstance(entry, str) else None
            if not match or match.group("type") not in MAP_TYPES:
                self.error(
                    name,
                    "%r is not a lookup table reference (type:name)" % (entry,),
                    "write type:/absolute/path with one of %s, e.g. hash:/etc/postfix/vmailbox" % ", ".join(FILE_MAP_TYPES),
                )
                continue
            if match.group("type") in FILE_MAP_TYPES and not match.group("name").startswith("/"):
                self.error(name, "'%s': the table file is not an absolute path" % entry, "give the full path, e.g. hash:/etc/postfix/vmailbox")
                continue
            if entry.strip() not in result:
                result.append(entry.strip())
        return result

    def hosted_domains(self, local_domains, relay_domains, profile):
        """The hosted domain kinds besides local and relay: virtual mailbox, virtual alias, blocked;
        recipient validation for relay domains. Every domain has exactly one kind."""
        kinds = [("mailsec_relay_local_domains", local_domains), ("mailsec_relay_relay_domains", relay_domains)]
        found = {}
        for variable in ("mailsec_relay_virtual_mailbox_domains", "mailsec_relay_virtual_alias_domains", "mailsec_relay_blocked_domains"):
            found[variable] = self.domain_list(variable)
            kinds.append((variable, found[variable]))
        owner = {}
        for variable, domains in kinds:
            for domain, name in domains.items():
                if domain in owner:
                    self.error(
                        name,
                        "%s is also in %s" % (domain, owner[domain]),
                        "a domain has one kind (local, virtual mailbox, virtual alias, relay or blocked): remove it from one of the lists",
                    )
                else:
                    owner[domain] = name
        if profile == "null_client":
            for variable in ("mailsec_relay_virtual_mailbox_domains", "mailsec_relay_virtual_alias_domains"):
                if found[variable]:
                    self.error(variable, "a null_client accepts no mail from the network", "remove %s, or choose profile mx" % variable)
        mailbox_maps = self.map_references("mailsec_relay_virtual_mailbox_maps")
        alias_maps = self.map_references("mailsec_relay_virtual_alias_maps")
        recipient_maps = self.map_references("mailsec_relay_relay_recipient_maps")
        if mailbox_maps and not found["mailsec_relay_virtual_mailbox_domains"]:
            self.error(
                "mailsec_relay_virtual_mailbox_maps",
                "mailbox maps without virtual mailbox domains are never consulted",
                "list the domains in mailsec_relay_virtual_mailbox_domains, or remove the maps",
            )
        recipients = []
        for index, entry in enumerate(self.get_list("mailsec_relay_relay_recipients", fix="write it as a YAML list, e.g. ['alice@partner.example']") or []):
            name = "mailsec_relay_relay_recipients[%d]" % index
            match = _RECIPIENT.fullmatch(entry.strip().lower()) if isinstance(entry, str) else None
            if not match:
                self.error(name, "%r is not an address (local@domain, or @domain for every name)" % (entry,), "write e.g. alice@partner.example")
                continue
            domain = self.normalize_domain(name, match.group("domain"))
            if domain is None:
                continue
            if domain not in relay_domains:
                self.error(
                    name,
                    "%s is not in mailsec_relay_relay_domains: recipient validation applies to relay domains only" % domain,
                    "add %s to mailsec_relay_relay_domains, or remove this entry" % domain,
                )
                continue
            address = "%s@%s" % (match.group("local"), domain)
            if address not in recipients:
                recipients.append(address)
        validation = bool(recipients or recipient_maps)
        if validation and not relay_domains:
            self.error(
                "mailsec_relay_relay_recipients",
                "recipient validation is set but there is no relay domain",
                "list the relay domains in mailsec_relay_relay_domains, or remove the recipients and maps",
            )
        if recipients and not recipient_maps:
            listed = set(address.split("@", 1)[1] for address in recipients)
            for domain in sorted(set(relay_domains) - listed):
                self.error(
                    relay_domains[domain],
                    "recipient validation is on and no recipient of %s is listed: all its mail would be refused" % domain,
                    "list its recipients in mailsec_relay_relay_recipients (@%s accepts every name), or name a map in "
                    "mailsec_relay_relay_recipient_maps" % domain,
                )
        if validation:
            # RFC 5321 4.5.1: postmaster must be accepted for every domain the host accepts mail for.
            for domain in sorted(relay_domains):
                if recipients and "postmaster@%s" % domain not in recipients and "@%s" % domain not in recipients:
                    recipients.append("postmaster@%s" % domain)
        return {
            "virtual_mailbox_domains": sorted(found["mailsec_relay_virtual_mailbox_domains"]),
            "virtual_mailbox_maps": mailbox_maps,
            "virtual_alias_domains": sorted(found["mailsec_relay_virtual_alias_domains"]),
            "virtual_alias_maps": alias_maps,
            "relay_recipient_validation": validation,
            "relay_recipients": sorted(recipients),
            "relay_recipient_maps": recipient_maps,
            "blocked_domains": sorted(found["mailsec_relay_blocked_domains"]),
        }


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else []


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


def profile_listeners(profile, has_tls):
    """The listeners a profile gets when mailsec_relay_listeners is not set."""
    if profile == "null_client":
        return [{"name": "smtp", "address": "127.0.0.1", "port": 25, "role": "mx", "tls": "none"}]
    listeners = [{"name": "smtp", "address": "*", "port": 25, "role": "mx", "tls": "starttls" if has_tls else "none"}]
    if profile == "mx_submission":
        listeners.append({"name": "submission", "address": "*", "port": 587, "role": "submission", "tls": "required"})
        listeners.append({"name": "submissions", "address": "*", "port": 465, "role": "submission", "tls": "implicit"})
    return listeners


def build_policy(variables, inventory_hostname="localhost"):
    """Parse, normalize and validate the policy variables; return the effective policy.

    ``variables`` may hold any variables: only ``mailsec_relay_*`` ones are read (unknown ones
    with that prefix are errors). Raises ``PolicyErrors`` with every problem found.
    """
    if not HAS_NETADDR:
        raise ImportError(MISSING_LIBRARY_MESSAGE)
    if not isinstance(variables, dict):
        raise PolicyErrors([PolicyError("variables", "expected a mapping of mailsec_relay_* variables, got %s" % _kind_of(variables), "pass a dict")])
    builder = _Builder(policy_variables(variables), inventory_hostname)
    policy = builder.build()
    # Listeners without an override carry the global lists, so consumers never re-derive them.
    for listener in policy["listeners"]:
        if listener["relay_networks"] is None:
            listener["relay_networks"] = list(policy["relay_networks"])
        if listener["connect_allow"] is None:
            listener["connect_allow"] = list(policy["connect_allow"])
        if listener["connect_deny"] is None:
            listener["connect_deny"] = list(policy["connect_deny"])
    return policy


def relay_allowed(policy, listener, client_ip):
    """Whether an unauthenticated client at ``client_ip`` may relay on ``listener`` (verifier helper).

    Mirrors the model: never-relay wins; submission listeners relay only after AUTH; mx listeners
    relay for their relay networks and, when trusted, loopback.
    """
    return relay_rules.may_relay_unauthenticated(policy, listener, client_ip)
