# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The relay policy model: parse, normalize and validate the ``mailsec_relay_*`` variables.

This is the single source of truth for the policy (docs/policy-model.md): its variables, their
defaults per profile and the effective policy every role, renderer and verifier consumes.
Pure Python plus netaddr; no Ansible imports, so tests and tools use it directly.

Entry point: ``build_policy(variables, inventory_hostname)`` returns the effective policy or raises
``PolicyErrors`` holding every problem found (never only the first one).

One module per concern; each declares its variables (``VARIABLES``) and reads them in its mixin:

    errors.py          PolicyError / PolicyErrors and the wording of messages
    reading.py         typed reading of raw values (str, bool, list): the base of every mixin
    names.py           the prefix, the catalogue of all variables, misspelled and unknown names
    addresses.py       netaddr, public/loopback/IPv4-meaning facts about networks
    profiles.py        profiles, their default listeners and rules
    domains.py         host name, local/relay domains, relay by client name
    networks.py        relay, never-relay, connect and broad-network lists
    listeners.py       the listener list; listener_entry.py: one entry and its role's rules
    tls.py             certificate and key
    sasl.py            authenticated relay and SASL users
    senders.py         sender_login_match and sender aliases
    smarthost.py       outbound: smarthost, TLS towards it and its credentials
    limits.py          per-client connection and AUTH brakes
    sender_rates.py    per-login message and recipient limits of authenticated senders
    hosted.py          virtual mailbox/alias, blocked domains, relay recipient validation
    filters.py         postscreen, content filter, milters
    builder.py         PolicyBuilder (all mixins), build_policy, the effective policy's keys

A new variable: add it to VARIABLES of its concern (or a new concern module, listed in names.py
and mixed into builder.PolicyBuilder), read it in that module, and put its effective key into
builder.py (``build`` and ``EFFECTIVE_KEYS``), docs/policy-model.md and roles/policy's spec.
"""

from __future__ import annotations

from .addresses import (
    HAS_NETADDR,
    IPV4_NOT_GLOBALLY_REACHABLE,
    LOOPBACK_NETWORKS,
    MISSING_LIBRARY_MESSAGE,
    NARROWEST_BROAD_PREFIX,
    NETADDR_IMPORT_ERROR,
    ipv4_meaning,
    is_loopback_address,
    is_public,
    netaddr,
)
from .builder import EFFECTIVE_KEYS, PolicyBuilder, build_policy, relay_allowed
from .domains import default_hostname
from .errors import PolicyError, PolicyErrors
from .filters import CONTENT_FILTER_KEYS, PREGREET_ACTIONS
from .hosted import FILE_MAP_TYPES, MAP_TYPES
from .limits import CLIENT_LIMITS
from .listeners import LISTENER_KEYS, LISTENER_ROLES, TLS_MODES
from .names import EFFECTIVE_FACT, OUTPUT_VARIABLES, PREFIX, VARIABLES, is_near_miss, is_policy_name, policy_variables
from .profiles import PROFILES, profile_listeners
from .sasl import SASL_BACKENDS, SASL_USER_KEYS
from .sender_rates import SENDER_RATE_LIMITS
from .senders import SENDER_ALIAS_KEYS
from .smarthost import SMARTHOST_TLS_MODES, SYSTEM_CA_FILE
from .tls import SELFSIGNED_CERT, SELFSIGNED_KEY

if IPV4_NOT_GLOBALLY_REACHABLE is not None:  # the IANA registries, for tests that cross-check is_public
    from .addresses import (
        IPV4_NOT_GLOBALLY_REACHABLE_EXCEPTIONS,
        IPV6_NOT_GLOBALLY_REACHABLE,
        IPV6_NOT_GLOBALLY_REACHABLE_EXCEPTIONS,
    )

__all__ = [
    "CLIENT_LIMITS",
    "CONTENT_FILTER_KEYS",
    "EFFECTIVE_FACT",
    "EFFECTIVE_KEYS",
    "FILE_MAP_TYPES",
    "HAS_NETADDR",
    "IPV4_NOT_GLOBALLY_REACHABLE",
    "LISTENER_KEYS",
    "LISTENER_ROLES",
    "LOOPBACK_NETWORKS",
    "MAP_TYPES",
    "MISSING_LIBRARY_MESSAGE",
    "NARROWEST_BROAD_PREFIX",
    "NETADDR_IMPORT_ERROR",
    "OUTPUT_VARIABLES",
    "PREFIX",
    "PREGREET_ACTIONS",
    "PROFILES",
    "PolicyBuilder",
    "PolicyError",
    "PolicyErrors",
    "SASL_BACKENDS",
    "SASL_USER_KEYS",
    "SELFSIGNED_CERT",
    "SELFSIGNED_KEY",
    "SENDER_ALIAS_KEYS",
    "SENDER_RATE_LIMITS",
    "SMARTHOST_TLS_MODES",
    "SYSTEM_CA_FILE",
    "TLS_MODES",
    "VARIABLES",
    "build_policy",
    "default_hostname",
    "ipv4_meaning",
    "is_loopback_address",
    "is_near_miss",
    "is_policy_name",
    "is_public",
    "netaddr",
    "policy_variables",
    "profile_listeners",
    "relay_allowed",
]
if IPV4_NOT_GLOBALLY_REACHABLE is not None:
    __all__ += ["IPV4_NOT_GLOBALLY_REACHABLE_EXCEPTIONS", "IPV6_NOT_GLOBALLY_REACHABLE", "IPV6_NOT_GLOBALLY_REACHABLE_EXCEPTIONS"]
