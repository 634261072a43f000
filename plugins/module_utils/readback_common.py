# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the Postfix and Exim readbacks share: address and smarthost spellings normalized (the
global relay fields they derive from their listeners are relay_rules.finish_policy's).

drift.py compares with the same normalization. Standard library only (runs inside mta_facts on
managed hosts), no Ansible imports.
"""

from __future__ import annotations

import ipaddress

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
