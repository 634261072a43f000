# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Variable names: the policy prefix, the catalogue of every policy variable, and the checks that
no variable is misspelled, unknown or a near-miss of the prefix.

The catalogue is assembled from the concern modules: a new variable goes into VARIABLES of the
module that reads it (networks.py, listeners.py, smarthost.py, limits.py, ...), never here.
"""

from __future__ import annotations

import difflib
import re

from . import domains, filters, hosted, limits, listeners, networks, profiles, sasl, sender_rates, senders, smarthost, tls
from .errors import _did_you_mean
from .reading import Reader

PREFIX = "mailsec_relay_"
EFFECTIVE_FACT = "mailsec_relay_effective"
# Variables with the policy prefix that this collection itself sets: outputs, not policy input.
OUTPUT_VARIABLES = frozenset({EFFECTIVE_FACT, "mailsec_relay_readback"})

# Every policy variable once: name -> kind. Defaults are applied by the module of each concern.
VARIABLES = {}
for _concern in (profiles, domains, networks, sasl, listeners, tls, senders, limits, sender_rates, smarthost, filters, hosted):
    VARIABLES.update(_concern.VARIABLES)

_EXCEPT_VARIABLE = re.compile(r"except|exclu|all_but|but_not|allow_all|relay_all")
# Near-misses of the prefix (case, '-', a missing '_', a typo) are errors too, never silently ignored.
_SQUASHED_PREFIX = "mailsecrelay"


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


class NamesMixin(Reader):
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
