# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Strict grammars for every kind of value that reaches an MTA configuration, a file name or a command.

One grammar per kind, used twice (docs/security.md):

- by the policy model (policy/) when it parses the inventory, so bad input gets a PolicyError;
- by the renderers (postfix.py, exim.py) on the effective policy they are given, so a value outside
  its grammar never reaches a rendered file, whoever built that policy (``check_effective``).

Every pattern is anchored with ``\\A ... \\Z`` and applied with ``fullmatch``: ``$`` would also match
before a trailing newline. Digits are ASCII only (``int()`` accepts Arabic-Indic and other digits).
Pure standard library: no Ansible imports, no netaddr (the renderers run on the managed host).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

# Absolute paths: a conservative character set. No '$', '{', '}' (Exim expansion, Postfix $name),
# no whitespace or control characters (line injection), no ',' or ':' (list separators in Postfix
# and Exim values), no '..' or '.' segments.
PATH_MAX = 4096
PATH_SEGMENT_MAX = 255
ABS_PATH = re.compile(r"\A(?:/[A-Za-z0-9_.+@=-]{1,%d})+\Z" % PATH_SEGMENT_MAX)

# Host and domain names in A-label (ASCII) form: LDH labels of 1-63 characters, at most 253 in all.
LABEL = re.compile(r"\A(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
DOMAIN_MAX = 253
HOST_TOKEN = re.compile(r"\A[a-z0-9][a-z0-9._:-]{0,252}\Z")
# Unicode names that do not say plainly which domain they are, refused before IDNA encoding:
# - one label mixing alphabets whose letters look alike (a Cyrillic 'а' is a Latin 'a' on screen),
#   by typo, paste or intent (UTS #39);
# - characters Python's idna codec (IDNA 2003) maps away (straße -> strasse) and IDNA 2008, what
#   registries and current MTAs use, keeps (xn--strae-oqa): the two forms are different domains.
CONFUSABLE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN"})
IDNA_DEVIATIONS = {"\u00df": "sharp s", "\u03c2": "final sigma", "\u200c": "zero width non-joiner", "\u200d": "zero width joiner"}
# Listener names, SASL backends, profiles, roles, TLS modes: short lower-case words.
NAME = re.compile(r"\A[a-z][a-z0-9_-]{0,31}\Z")
CONFIG_KEY = re.compile(r"\A[a-z][a-z0-9_]{0,99}\Z")
# A login or the local part of an e-mail address: a plain dot-atom of safe characters.
LOCAL_PART = re.compile(r"\A[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*\Z")
LOCAL_PART_MAX = 64
ASCII_DIGITS = re.compile(r"\A[0-9]{1,5}\Z")
# Written forms of IP addresses and networks before they are parsed (ASCII only).
IP_TEXT = re.compile(r"\A[0-9A-Fa-f:.]{1,45}\Z")
NETWORK_TEXT = re.compile(r"\A[0-9a-f:.]{1,45}/[0-9]{1,3}\Z")
# The rendered smarthost: host, [host] or [host]:port, host:port (a name or an address).
SMARTHOST = re.compile(r"\A(?:\[(?P<bracketed>[0-9A-Za-z.:-]{1,253})\]|(?P<plain>[0-9A-Za-z.-]{1,253}))(?::(?P<port>[0-9]{1,5}))?\Z")

# IPv6 blocks that carry IPv4 addresses: judged by their IPv4 meaning (RFC 4291 2.5.5).
IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# The last IPv6 address (as an int) that can carry an IPv4 address: anything above carries none.
IPV4_CARRIERS_LAST = int(IPV4_MAPPED.broadcast_address)
_CARRIER_BLOCKS = tuple((int(block.network_address), int(block.broadcast_address)) for block in (IPV4_MAPPED, IPV4_COMPATIBLE))


class GrammarError(ValueError):
    """A value outside its grammar: ``kind`` names the grammar, ``where`` the field."""

    def __init__(self, kind, value, where=None, reason=None):
        self.kind = kind
        self.value = value
        self.where = where
        self.reason = reason or "not a valid %s" % kind
        # repr(): control characters and line breaks stay visible (and harmless) in the message.
        super(GrammarError, self).__init__("%s%r: %s" % ("%s = " % where if where else "", value, self.reason))


# ---- predicates and parsers ---------------------------------------------------------------------


def is_abs_path(value):
    return (
        isinstance(value, str)
        and len(value) <= PATH_MAX
        and ABS_PATH.fullmatch(value) is not None
        and all(segment not in (".", "..") for segment in value.split("/")[1:])
    )


def mixed_script_label(text):
    """``(label, alphabets)`` for the first label of ``text`` whose letters come from two of the
    look-alike alphabets, else None."""
    for label in text.split("."):
        if label.isascii():
            continue
        scripts = set()
        for char in label:
            if char.isalpha():
                script = unicodedata.name(char, "").split(" ", 1)[0]
                if script in CONFUSABLE_SCRIPTS:
                    scripts.add(script)
        if len(scripts) > 1:
            return label, sorted(scripts)
    return None


def idna_deviations(text):
    """Names of the characters in ``text`` that IDNA 2003 and 2008 encode differently."""
    return sorted(name for char, name in IDNA_DEVIATIONS.items() if char in text)


def unclear_unicode_name(text):
    """Why the Unicode domain ``text`` does not say plainly which domain it is, else None."""
    mixed = mixed_script_label(text)
    if mixed is not None:
        label, alphabets = mixed
        return "the label %s mixes the look-alike %s alphabets, so it names another domain than it appears to" % (
            ascii(label),
            " and ".join(name.capitalize() for name in alphabets),
        )
    deviations = idna_deviations(text)
    if deviations:
        return "it has a character IDNA 2003 and IDNA 2008 encode differently (%s), so which domain it names is unclear" % ", ".join(deviations)
    return None


def to_a_labels(text):
    """A domain name (Unicode or ASCII) -> its lower-case A-label form; GrammarError when it has none.

    Does not strip, does not drop a trailing dot: callers normalize first.
    """
    if not isinstance(text, str):
        raise GrammarError("domain name", text)
    if not text.isascii():
        unclear = unclear_unicode_name(text)
        if unclear:
            raise GrammarError("domain name", text, reason=unclear)
        try:
            text = text.encode("idna").decode("ascii")
        except (UnicodeError, ValueError):
            raise GrammarError("domain name", text, reason="not a valid internationalized domain name")
    text = text.lower()
    if not is_domain(text):
        raise GrammarError("domain name", text)
    return text


def is_domain(value, fqdn=False):
    """An A-label domain name: LDH labels, at most 253 characters, the last label not all digits."""
    if not isinstance(value, str) or not 0 < len(value) <= DOMAIN_MAX:
        return False
    labels = value.split(".")
    if not all(LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        return False
    return len(labels) >= 2 or not fqdn


def domain_name(value):
    """A domain name as a user writes it (any case, a trailing dot, Unicode) -> its A-label form;
    GrammarError when it has none."""
    return to_a_labels(value.strip().lower().rstrip(".") if isinstance(value, str) else value)


def host_name(value):
    """A server's own name as a prober takes it: an inventory-style name (a domain, an address, a
    word with '_'; lower case, no spaces) as it is, anything else as a domain name (A-labels)."""
    text = str(value).strip().lower().rstrip(".")
    return text if HOST_TOKEN.fullmatch(text) else to_a_labels(text)


def is_client_name(value):
    """A domain name, or '.domain' for every name below it."""
    return isinstance(value, str) and is_domain(value[1:] if value.startswith(".") else value)


def is_config_key(value):
    """A main.cf parameter name: lower-case letters, digits and '_'."""
    return isinstance(value, str) and CONFIG_KEY.fullmatch(value) is not None


def is_single_line(value):
    """A configuration value that cannot start a line of its own: no control characters at all."""
    return isinstance(value, (str, int, float)) and not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in str(value))


def is_name(value):
    return isinstance(value, str) and NAME.fullmatch(value) is not None


def is_login(value):
    """A SASL login: a local part, optionally @domain (A-labels)."""
    if not isinstance(value, str):
        return False
    local, at, domain = value.partition("@")
    if len(local) > LOCAL_PART_MAX or not LOCAL_PART.fullmatch(local):
        return False
    return not at or is_domain(domain.lower())


def is_email(value):
    """An e-mail address local@domain with a dot-atom local part and an A-label domain."""
    return isinstance(value, str) and "@" in value and is_login(value)


def parse_int(value, low, high):
    """An int from an int or a string of ASCII digits, within [low, high]; None otherwise (never raises)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not ASCII_DIGITS.fullmatch(text):
            return None
        value = int(text)
    if not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def parse_port(value):
    return parse_int(value, 1, 65535)


def parse_prefixlen(text, width):
    """A prefix length as written after '/': ASCII digits only, 0..width."""
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{1,3}", text.strip()):
        return None
    return parse_int(text, 0, width)


def is_ip_text(value):
    """Written like an IP address (ASCII hex digits, '.' and ':' only): checked before any parser sees it."""
    return isinstance(value, str) and IP_TEXT.fullmatch(value) is not None


def parse_ip(value):
    """An IP address as written -> ipaddress object, or None (ASCII only, no zone, no prefix)."""
    if not is_ip_text(value):
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_network(value):
    """A canonical network as the effective policy holds it: address/prefix, host bits clear."""
    if not isinstance(value, str) or not NETWORK_TEXT.fullmatch(value):
        return False
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return True


def is_listen_address(value):
    """'*' or one IP address in canonical form."""
    if value == "*":
        return True
    return parse_ip(value) is not None


def is_smarthost(value):
    """The effective smarthost: name, [name], [address], each optionally :port (1-65535)."""
    if not isinstance(value, str):
        return False
    match = SMARTHOST.fullmatch(value)
    if not match:
        return False
    if match.group("port") is not None and parse_port(match.group("port")) is None:
        return False
    host = match.group("bracketed") or match.group("plain")
    if match.group("bracketed") and parse_ip(host) is not None:
        return True
    if match.group("plain") and parse_ip(host) is not None:
        return parse_ip(host).version == 4
    return is_domain(host)


# ---- IPv4 meaning of IPv6 networks -------------------------------------------------------------


def ipv4_meaning(first, last):
    """For an IPv6 range [first, last] (ints), the IPv4 ranges it carries as mapped or compatible addresses.

    Returns a list of (first, last) IPv4 ints: empty when the range carries none.
    """
    ranges = []
    if first > IPV4_CARRIERS_LAST or last <= 1:
        return ranges  # nothing IPv4 in it, or only :: and ::1 (unspecified and loopback, IPv6 meanings)
    # A wider range keeps :: and ::1 as 0.0.0.0 and 0.0.0.1: harmless, and ::/96 stays all of IPv4.
    for low, high in _CARRIER_BLOCKS:
        start, end = max(first, low), min(last, high)
        if start <= end:
            ranges.append((start - low, end - low))
    return ranges


# ---- the second wall: the renderers' check of a whole effective policy ------------------------


def _need(ok, kind, value, where):
    if not ok:
        raise GrammarError(kind, value, where)


def _check_list(values, check, kind, where):
    if not isinstance(values, (list, tuple)):
        raise GrammarError("list of %s" % kind, values, where)
    for index, value in enumerate(values):
        _need(check(value), kind, value, "%s[%d]" % (where, index))


# A lookup table or milter reference (``hash:/etc/postfix/vmailbox``, ``proxy:mysql:/etc/x.cf``,
# ``inet:127.0.0.1:8891``, ``unix:/run/x.sock``): a type, then a name without blanks, commas, braces
# or ``$`` (both MTAs expand ``$``; a comma or blank would start a second table).
TABLE_REFERENCE = re.compile(r"[a-z0-9]{1,16}:[A-Za-z0-9._/:@=+\[\]-]{1,1024}")


def is_table_reference(value):
    return isinstance(value, str) and TABLE_REFERENCE.fullmatch(value) is not None


def is_recipient_pattern(value):
    """``local@domain`` or ``@domain`` (every name in the domain)."""
    if not isinstance(value, str) or "@" not in value:
        return False
    local, domain = value.rsplit("@", 1)
    return (not local or is_login(local)) and is_domain(domain)


def _check_hosted(effective):
    """The brownfield (issue 15) and sender-identity (issue 14) values the renderers write."""
    for field in ("virtual_mailbox_domains", "virtual_alias_domains", "blocked_domains"):
        _check_list(effective.get(field) or [], is_domain, "domain name", field)
    for field in ("virtual_mailbox_maps", "virtual_alias_maps", "relay_recipient_maps", "milters"):
        _check_list(effective.get(field) or [], is_table_reference, "table reference", field)
    _check_list(effective.get("relay_recipients") or [], is_recipient_pattern, "recipient", "relay_recipients")
    content_filter = effective.get("content_filter")
    if content_filter is not None:
        if not isinstance(content_filter, dict):
            raise GrammarError("content_filter (a mapping)", content_filter, "content_filter")
        _need(is_smarthost(content_filter.get("next_hop")), "next hop", content_filter.get("next_hop"), "content_filter.next_hop")
        _need(
            parse_ip(content_filter.get("reinject_address")) is not None,
            "IP address",
            content_filter.get("reinject_address"),
            "content_filter.reinject_address",
        )
        _need(parse_port(content_filter.get("reinject_port")) is not None, "port", content_filter.get("reinject_port"), "content_filter.reinject_port")
    logins = effective.get("sender_logins") or {}
    if not isinstance(logins, dict):
        raise GrammarError("sender_logins (a mapping)", logins, "sender_logins")
    for address, owners in logins.items():
        _need(is_email(address), "e-mail address", address, "sender_logins")
        _check_list(owners or [], is_login, "login", "sender_logins[%s]" % address)


def check_effective(effective):
    """Raise GrammarError unless every value a renderer writes from ``effective`` is inside its grammar.

    The policy model already guarantees this; the renderers call it again so that a hand-made or
    tampered effective policy (a fact set elsewhere, a caller of the filter) cannot inject anything.
    """
    if not isinstance(effective, dict):
        raise GrammarError("effective policy (a mapping)", type(effective).__name__)
    for field in ("profile",):
        if effective.get(field) is not None:
            _need(is_name(effective[field]), "name", effective[field], field)
    _need(is_domain(effective.get("hostname"), fqdn=True), "host name", effective.get("hostname"), "hostname")
    for field in ("local_domains", "relay_domains"):
        _check_list(effective.get(field) or [], is_domain, "domain name", field)
    _check_list(effective.get("client_names") or [], is_client_name, "client name", "client_names")
    for field in ("relay_networks", "never_relay_networks", "loopback_networks", "connect_allow", "connect_deny"):
        _check_list(effective.get(field) or [], is_network, "network", field)
    listeners = effective.get("listeners")
    if not isinstance(listeners, (list, tuple)):
        raise GrammarError("list of listeners", listeners, "listeners")
    for index, listener in enumerate(listeners):
        where = "listeners[%d]" % index
        if not isinstance(listener, dict):
            raise GrammarError("listener (a mapping)", listener, where)
        _need(is_name(listener.get("name")), "listener name", listener.get("name"), where + ".name")
        _need(is_listen_address(listener.get("address", "*")), "listen address", listener.get("address"), where + ".address")
        _need(parse_port(listener.get("port")) is not None and not isinstance(listener.get("port"), str), "port", listener.get("port"), where + ".port")
        for field in ("role", "tls"):
            if listener.get(field) is not None:
                _need(is_name(listener[field]), "name", listener[field], "%s.%s" % (where, field))
        for field in ("relay_networks", "connect_allow", "connect_deny"):
            _check_list(listener.get(field) or [], is_network, "network", "%s.%s" % (where, field))
    tls = effective.get("tls") or {}
    if not isinstance(tls, dict):
        raise GrammarError("tls (a mapping)", tls, "tls")
    for field in ("cert", "key"):
        if tls.get(field) is not None:
            _need(is_abs_path(tls[field]), "absolute path", tls[field], "tls.%s" % field)
    sasl = effective.get("sasl") or {}
    if not isinstance(sasl, dict):
        raise GrammarError("sasl (a mapping)", sasl, "sasl")
    if sasl.get("backend") is not None:
        _need(is_name(sasl["backend"]), "name", sasl["backend"], "sasl.backend")
    _check_list(sasl.get("users") or [], is_login, "login", "sasl.users")
    if effective.get("smarthost") is not None:
        _need(is_smarthost(effective["smarthost"]), "smarthost", effective["smarthost"], "smarthost")
    if effective.get("smarthost_tls_ca_file") is not None:
        _need(is_abs_path(effective["smarthost_tls_ca_file"]), "absolute path", effective["smarthost_tls_ca_file"], "smarthost_tls_ca_file")
    if effective.get("smarthost_auth") is not None:
        _need(isinstance(effective["smarthost_auth"], dict), "smarthost_auth (a mapping)", effective["smarthost_auth"], "smarthost_auth")
        _need(is_login(effective["smarthost_auth"].get("username")), "login", effective["smarthost_auth"].get("username"), "smarthost_auth.username")
    _check_hosted(effective)
    return effective
