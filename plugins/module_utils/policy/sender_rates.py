# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-login rate limits of authenticated senders (issue 14): messages and recipients per window."""

from __future__ import annotations

import re

from .errors import _kind_of
from .reading import Reader

# variable -> (effective key, ceiling); 0 switches a limit off.
SENDER_RATE_LIMITS = {
    "mailsec_relay_sender_rate_limit_messages": ("messages", 100000),
    "mailsec_relay_sender_rate_limit_recipients": ("recipients", 1000000),
}
# (variable, default, shortest, longest) in seconds
SENDER_RATE_WINDOW = ("mailsec_relay_sender_rate_limit_window", 3600, 60, 7 * 86400)
_DURATION = re.compile(r"([0-9]{1,7})([smhd]?)")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

VARIABLES = dict((variable, "int") for variable in SENDER_RATE_LIMITS)
VARIABLES[SENDER_RATE_WINDOW[0]] = "str"


class SenderRatesMixin(Reader):
    def sender_rate_limits(self, listeners):
        """Messages and recipients per authenticated login per window: {messages, recipients, window}."""
        limits = {}
        for variable, (key, ceiling) in SENDER_RATE_LIMITS.items():
            value = self.raw.get(variable)
            if isinstance(value, str) and re.fullmatch(r"[0-9]{1,7}", value.strip()):  # ASCII digits only
                value = int(value)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= ceiling):
                self.error(
                    variable,
                    "expected a whole number from 0 to %d, got %s" % (ceiling, repr(value) if isinstance(value, int) else _kind_of(value)),
                    "write a number such as 100 (0 switches this limit off)",
                )
                value = None
            limits[key] = value or 0
        limits["window"] = self.sender_rate_window()
        wanted = [name for name, (key, unused) in SENDER_RATE_LIMITS.items() if limits[key]]
        if wanted and not any(item.get("role") == "submission" and item.get("auth") for item in listeners):
            self.error(
                wanted[0],
                "rate limits apply to authenticated senders, but no listener offers AUTH",
                "choose profile mx_submission (or a submission listener with auth), or set the limit to 0",
            )
        return limits

    def sender_rate_window(self):
        """The window in seconds: an int, or digits with s, m, h or d."""
        variable, default, shortest, longest = SENDER_RATE_WINDOW
        value = self.raw.get(variable)
        if value is None:
            return default
        match = _DURATION.fullmatch(value.strip().lower()) if isinstance(value, str) else None
        if isinstance(value, int) and not isinstance(value, bool):
            window = value
        elif match:
            window = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
        else:
            window = None
        if window is None or not shortest <= window <= longest:
            self.error(
                variable,
                "expected a duration from %ds to %dd, got %s" % (shortest, longest // 86400, repr(value) if isinstance(value, (int, str)) else _kind_of(value)),
                "write seconds or a number with s, m, h or d, such as 1h",
            )
            return default
        return window
