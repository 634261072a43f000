# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-client brakes (issue 14): connection count, connection rate and AUTH rate."""

from __future__ import annotations

import re

from .errors import _kind_of
from .reading import Reader

# Per-client brakes (issue 14): variable -> (effective key, default, ceiling); 0 switches one off.
# Rates count per minute. AUTH attempts are counted, failed or not (Postfix anvil semantics).
CLIENT_LIMITS = {
    "mailsec_relay_client_connection_count_limit": ("connection_count", 50, 10000),
    "mailsec_relay_client_connection_rate_limit": ("connection_rate", 0, 100000),
    "mailsec_relay_client_auth_rate_limit": ("auth_rate", 30, 10000),
}

VARIABLES = dict((variable, "int") for variable in CLIENT_LIMITS)


class LimitsMixin(Reader):
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
