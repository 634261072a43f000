# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed reading of raw variables: the base every part of the policy builder stands on.

``Reader`` holds the raw variables and collects errors and warnings; each concern module
(networks.py, listeners.py, ...) adds its methods to it as a mixin.
"""

from __future__ import annotations

from .errors import PolicyError, _kind_of

_TRUE_STRINGS = frozenset(("true", "yes", "on", "1", "y", "t"))
_FALSE_STRINGS = frozenset(("false", "no", "off", "0", "n", "f"))


class Reader(object):
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


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else []
