# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole policy: every concern's mixin in one builder, and the effective policy it returns.

``build_policy`` is the entry point; ``PolicyBuilder.build`` calls the concerns in a fixed order
(so errors are reported in the order of the variables' dependencies) and assembles the result.
"""

from __future__ import annotations

from ansible_collections.mailsec.relay.plugins.module_utils import relay_rules

from .addresses import HAS_NETADDR, LOOPBACK_NETWORKS, MISSING_LIBRARY_MESSAGE
from .errors import PolicyError, PolicyErrors, _kind_of
from .filters import FiltersMixin
from .hosted import HostedMixin
from .limits import LimitsMixin
from .listeners import ListenersMixin
from .names import NamesMixin, policy_variables
from .profiles import ProfilesMixin
from .sasl import SaslMixin
from .sender_rates import SenderRatesMixin
from .senders import SendersMixin
from .smarthost import SmarthostMixin
from .tls import TlsMixin

# Keys of the effective policy in the order consumers have always seen them; a new key is appended.
EFFECTIVE_KEYS = (
    "profile",
    "hostname",
    "local_domains",
    "relay_domains",
    "relay_networks",
    "never_relay_networks",
    "trust_loopback",
    "loopback_networks",
    "connect_allow",
    "connect_deny",
    "auth_relay",
    "client_names",
    "listeners",
    "tls",
    "sasl",
    "smarthost",
    "sender_logins",
    "client_limits",
    "smarthost_tls",
    "smarthost_tls_ca_file",
    "smarthost_auth",
    "postscreen",
    "postscreen_pregreet",
    "virtual_mailbox_domains",
    "virtual_mailbox_maps",
    "virtual_alias_domains",
    "virtual_alias_maps",
    "relay_recipient_validation",
    "relay_recipients",
    "relay_recipient_maps",
    "blocked_domains",
    "content_filter",
    "milters",
    "warnings",
    "sender_rate_limits",
)


class PolicyBuilder(
    NamesMixin, ProfilesMixin, ListenersMixin, TlsMixin, SaslMixin, SendersMixin, SmarthostMixin, LimitsMixin, SenderRatesMixin, HostedMixin, FiltersMixin
):
    """Collects errors while turning raw variables into the effective policy."""

    def build(self):
        self.check_variable_names()
        profile = self.profile()
        hostname = self.hostname()
        local_domains, relay_domains = self.local_and_relay_domains()
        networks = self.network_lists()
        auth_relay = self.auth_relay(profile)
        client_names = self.client_names()
        tls = self.tls()
        has_tls = tls["selfsigned"] or bool(tls["cert"] and tls["key"])

        self.sender_login_match_default = self.get_bool("mailsec_relay_sender_login_match", False)
        listeners, listener_sources = self.listeners(profile, has_tls, auth_relay, networks["broad_allowed"])
        relay_sources = networks["relay_sources"]
        for sources in listener_sources:
            relay_sources.extend(sources)
        self.check_never_swallows(networks["never_parsed"], relay_sources)
        self.profile_rules(profile, listeners, auth_relay)

        sasl = self.sasl(auth_relay)
        smarthost = self.smarthost()
        later = {
            "sasl": sasl,
            "smarthost": smarthost,
            "sender_logins": self.sender_logins(sasl["users"], sorted(local_domains), hostname, listeners),
            "client_limits": self.client_limits(),
            "smarthost_tls": self.smarthost_tls(smarthost),
            "sender_rate_limits": self.sender_rate_limits(listeners),
            **self.hosted_domains(local_domains, relay_domains, profile),
            "postscreen": self.postscreen(listeners),
            "content_filter": self.content_filter(),
            "milters": self.milters(),
        }
        later["smarthost_tls_ca_file"] = self.smarthost_tls_ca_file(later["smarthost_tls"])
        later["smarthost_auth"] = self.smarthost_auth(smarthost, later["smarthost_tls"])
        if self.errors:
            raise PolicyErrors(self.errors)

        policy = {
            "profile": profile,
            "hostname": hostname,
            "local_domains": sorted(local_domains),
            "relay_domains": sorted(relay_domains),
            "relay_networks": [str(net) for net in networks["relay_networks"]],
            "never_relay_networks": [str(net) for net in networks["never_networks"]],
            "trust_loopback": networks["trust_loopback"],
            "loopback_networks": list(LOOPBACK_NETWORKS) if networks["trust_loopback"] else [],
            "connect_allow": networks["connect_allow"],
            "connect_deny": networks["connect_deny"],
            "auth_relay": auth_relay,
            "client_names": sorted(client_names),
            "listeners": listeners,
            "tls": tls,
            "postscreen_pregreet": self.get_str("mailsec_relay_postscreen_pregreet", "enforce"),
            "warnings": list(self.warnings),
            **later,
        }
        ordered = {key: policy.pop(key) for key in EFFECTIVE_KEYS if key in policy}
        ordered.update(policy)  # keys not (yet) in EFFECTIVE_KEYS keep their order, after the known ones
        return ordered


def build_policy(variables, inventory_hostname="localhost"):
    """Parse, normalize and validate the policy variables; return the effective policy.

    ``variables`` may hold any variables: only ``mailsec_relay_*`` ones are read (unknown ones
    with that prefix are errors). Raises ``PolicyErrors`` with every problem found.
    """
    if not HAS_NETADDR:
        raise ImportError(MISSING_LIBRARY_MESSAGE)
    if not isinstance(variables, dict):
        raise PolicyErrors([PolicyError("variables", "expected a mapping of mailsec_relay_* variables, got %s" % _kind_of(variables), "pass a dict")])
    builder = PolicyBuilder(policy_variables(variables), inventory_hostname)
    policy = builder.build()
    # Listeners without an override carry the global lists, so consumers never re-derive them.
    for listener in policy["listeners"]:
        if listener["relay_networks"] is None:
            listener["relay_networks"] = list(policy["relay_networks"])
        if listener["connect_allow"] is None:
            listener["connect_allow"] = list(policy["connect_allow"])
        if listener["connect_deny"] is None:
            listener["connect_deny"] = list(policy["connect_deny"])
    return policy


def relay_allowed(policy, listener, client_ip):
    """Whether an unauthenticated client at ``client_ip`` may relay on ``listener`` (verifier helper).

    Mirrors the model: never-relay wins; submission listeners relay only after AUTH; mx listeners
    relay for their relay networks and, when trusted, loopback.
    """
    return relay_rules.may_relay_unauthenticated(policy, listener, client_ip)
