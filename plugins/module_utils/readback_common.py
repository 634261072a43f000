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


def credentials_file(path, read_file, stat_file, key=None, key_separator=" "):
    """Presence, owner, group, mode and user name of a smarthost credentials file (Postfix: lines
    ``key user:password``, ``key`` the relayhost; Exim's passwd.client: ``host:user:password``). The
    password is read by the caller's process only: it never enters the result."""
    info = stat_file(path) if stat_file else None
    if not info:
        return {"path": path, "exists": False}
    username = None
    for line in (read_file(path) or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if key is not None:
            parts = line.split(None, 1) if key_separator == " " else [line[: len(key)], line[len(key) + len(key_separator) :]]
            if parts[0] != key or (key_separator != " " and not line.startswith(key + key_separator)):
                continue
            line = parts[1] if len(parts) > 1 else ""
        if ":" in line:
            username = line.strip().split(":", 1)[0]
        break
    return dict(info, path=path, exists=True, username=username)
