# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The relay rule (module_utils/relay_rules.py), and that its four former homes agree on it."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.mailsec.relay.plugins.module_utils import drift, exim, policy, relay_rules, verify_plan

netaddr = pytest.importorskip("netaddr")

NEVER = ["198.51.100.51/32", "2001:db8:1::5/128"]
RELAY = ["198.51.100.48/28", "2001:db8:1::/64"]
LOOP = ["127.0.0.0/8", "::1/128"]

CLIENTS = ["198.51.100.49", "198.51.100.51", "198.51.100.99", "127.0.0.1", "::1", "2001:db8:1::7", "2001:db8:1::5", "2001:db8:2::1", "203.0.113.9"]


def effective(never, loopback, relay):
    return {
        "never_relay_networks": list(never),
        "loopback_networks": list(loopback),
        "relay_networks": list(relay),
        "local_domains": ["example.test"],
        "relay_domains": [],
        "connect_allow": [],
        "connect_deny": [],
        "auth_relay": True,
    }


def listener(role, relay):
    return {
        "name": role,
        "address": "*",
        "port": 25 if role == "mx" else 587,
        "role": role,
        "tls": "none",
        "auth": role == "submission",
        "relay_networks": list(relay),
        "connect_allow": [],
        "connect_deny": [],
    }


AXES = (([], NEVER, ["0.0.0.0/0"]), ([], LOOP), ([], RELAY, ["::/0"]), ("mx", "submission"))
GRID = [(effective(never, loopback, relay), listener(role, relay if role == "mx" else [])) for never, loopback, relay, role in itertools.product(*AXES)]


def reference(eff, lst, client):
    """The rule as docs/policy-model.md states it, written with netaddr (the pre-relay_rules code)."""
    address = netaddr.IPAddress(client)

    def inside(nets):
        return any(address in netaddr.IPNetwork(net) for net in nets)

    if inside(eff["never_relay_networks"]) or lst["role"] != "mx":
        return False
    return inside(list(lst["relay_networks"]) + list(eff["loopback_networks"]))


@pytest.mark.parametrize("eff,lst", GRID)
def test_four_call_sites_agree_with_the_rule(eff, lst):
    for client in CLIENTS:
        want = reference(eff, lst, client)
        answers = {
            "policy.relay_allowed": policy.relay_allowed(eff, lst, client),
            "exim.expected_verdict": exim.expected_verdict(eff, lst, client, "elsewhere.example.net") == "accept",
            "verify_plan.listener_expectation": verify_plan.listener_expectation(lst, eff, netaddr.IPAddress(client), [])[1],
            "drift.unauth_grants": drift.unauth_grants(eff, lst).contains(client),
            "relay_rules": relay_rules.may_relay_unauthenticated(eff, lst, client),
        }
        assert answers == dict.fromkeys(answers, want), (client, eff, lst)


def test_never_relay_overrides_every_grant():
    eff = effective(["198.51.100.51/32"], LOOP, ["0.0.0.0/0"])
    mx = listener("mx", ["0.0.0.0/0"])
    assert relay_rules.is_never_relay(eff, "198.51.100.51")
    assert not relay_rules.may_relay_unauthenticated(eff, mx, "198.51.100.51")
    assert relay_rules.may_relay_unauthenticated(eff, mx, "198.51.100.52")
    assert relay_rules.unauth_grants(eff, mx).describe() == "0.0.0.0/0 except 198.51.100.51/32; ::1/128"


def test_submission_never_relays_unauthenticated_and_unknown_clients_do_not_relay():
    eff = effective([], LOOP, ["0.0.0.0/0"])
    assert not relay_rules.may_relay_unauthenticated(eff, listener("submission", ["0.0.0.0/0"]), "127.0.0.1")
    assert relay_rules.unauth_grants(eff, listener("submission", ["0.0.0.0/0"])) == relay_rules.NetSet()
    assert not relay_rules.may_relay_unauthenticated(eff, listener("mx", ["0.0.0.0/0"]), None)
    assert not relay_rules.is_never_relay(effective(["0.0.0.0/0"], [], []), None)


def test_netset_reads_every_spelling_and_merges():
    nets = relay_rules.NetSet(["[2001:db8::]/48", "198.51.100.7/25", "198.51.100.128/25", "not-an-address"])
    assert nets.cidrs() == ["198.51.100.0/24", "2001:db8::/48"]
    assert nets.contains("[2001:db8::1]") and not nets.contains("203.0.113.1")
    assert drift.NetSet is relay_rules.NetSet  # one type, whichever module a caller imports it from
