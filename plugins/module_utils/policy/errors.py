# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PolicyError (one problem: variable, message, fix) and PolicyErrors (all of them), with the
wording helpers every part of the policy model uses for its messages."""

from __future__ import annotations

import difflib


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
