# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible's lazy and tagged containers and scalars -> plain dict, list, str, int, float, bool.

What a filter or an action plugin gets from Ansible are subclasses (tagged str, lazy templated
dicts and lists). Pure-Python code is slower on them (every string operation on a str subclass
misses CPython's exact-str fast paths) and they carry Ansible's metadata; a module gets plain
values from JSON. No Ansible imports.
"""

from __future__ import annotations

from collections.abc import Mapping


def plain(value):
    """A deep copy of ``value`` with plain containers and scalars (str() of a vaulted string decrypts it)."""
    if isinstance(value, str):
        return str(value)  # an exact str comes back as it is, a subclass as a plain copy
    if isinstance(value, Mapping):
        return dict((plain(k), plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value
