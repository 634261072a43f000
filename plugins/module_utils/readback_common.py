# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the Postfix and Exim readbacks share: address and smarthost spellings normalized, and the
global fields of the effective policy derived from the listeners they read (``finish_policy``).

drift.py compares with the same normalization. Standard library only (runs inside mta_facts on
managed hosts), no Ansible imports.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.mailsec.relay.plugins.module_utils.relay_rules import LOOPBACK, NetSet

WILDCARD_ADDRESSES = ("*", "", "0.0.0.0", "::", "::0", "0:0:0:0:0:0:0:0")


def is_wildcard(address):
    return str(address if address is not None else "*").strip("[]") in WILDCARD_ADDRESSES


def normalize_address(address):
    if is_wildcard(address):
        return "*"
    try:
        return str(ipaddress.ip_address(str(address).strip("[]")))
    except ValueError:
        return str(address)


def normalize_smarthost(value):
    """``[host]:port`` / ``host:port`` / ``<; host:port`` -> (host, port|None, mx_lookup) for comparison."""
    if not value:
        return None
    text = str(value).strip()
    if text.startswith("<;"):
        text = text[2:].strip()
    text = text.split(";", 1)[0].split(",", 1)[0].strip()
    bracketed = text.startswith("[")
    host, port = text, None
    if bracketed and "]" in text:
        host, rest = text[1:].split("]", 1)
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _colon, tail = text.partition(":")
        port = int(tail) if tail.isdigit() else None
    host = host.strip().lower()
    try:
        host = str(ipaddress.ip_address(host))
        bracketed = True  # an address never has MX records
    except ValueError:
        pass
    return (host, port, not bracketed)


def smarthost_text(parsed):
    if parsed is None:
        return None
    host, port, mx = parsed
    text = host if mx else "[%s]" % host
    return text + (":%d" % port if port else "")


def finish_policy(policy):
    """Global fields derived from the listeners (shared by the Postfix and Exim readbacks)."""
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
