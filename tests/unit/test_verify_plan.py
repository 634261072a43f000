# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Expected verdicts derived from the effective policy (module_utils/verify_plan.py)."""

from __future__ import annotations

import copy
import os

import pytest

from ansible_collections.mailsec.relay.plugins.module_utils import verify_plan


def listener(name, port, role, tls, relay_networks=(), address="*", **extra):
    entry = {
        "name": name,
        "address": address,
        "port": port,
        "role": role,
        "tls": tls,
        "auth": role == "submission",
        "relay_networks": list(relay_networks),
        "connect_allow": [],
        "connect_deny": [],
    }
    entry.update(extra)
    return entry


def mx_submission(**overrides):
    """The effective policy of docs/policy-model.md (mx1 of the demo lab)."""
    effective = {
        "profile": "mx_submission",
        "hostname": "mx1.example.test",
        "local_domains": ["example.test"],
        "relay_domains": [],
        "relay_networks": ["198.51.100.48/28"],
        "never_relay_networks": ["198.51.100.51/32"],
        "trust_loopback": True,
        "loopback_networks": ["127.0.0.0/8", "::1/128"],
        "connect_allow": [],
        "connect_deny": [],
        "auth_relay": True,
        "client_names": [],
        "listeners": [
            listener("smtp", 25, "mx", "starttls", ["198.51.100.48/28"]),
            listener("submission", 587, "submission", "required"),
            listener("submissions", 465, "submission", "implicit"),
        ],
        "sasl": {"backend": "dovecot", "users": ["alice@example.test"]},
        "smarthost": "[198.51.100.100]:25",
        "warnings": [],
    }
    effective.update(overrides)
    return effective


USERS = [{"name": "alice@example.test", "password": "lab-only-not-a-secret"}]
ADDRS = ["198.51.100.11", "2001:db8:25::11"]


def by_port(target):
    return dict((entry["port"], entry) for entry in target["listeners"])


# --- relay expectations -------------------------------------------------------------------------


def test_external_vantage_may_not_relay_anywhere_but_may_relay_with_auth_on_submission():
    target = verify_plan.build_target("mx1", mx_submission(), "198.51.100.100", ADDRS, USERS)
    ports = by_port(target)
    assert ports[25] == {"port": 25, "role": "mx", "tls": "starttls", "relay": "refused"}
    assert ports[587] == {"port": 587, "role": "submission", "tls": "required", "relay": "refused", "auth_relay": True}
    assert ports[465]["tls"] == "implicit" and ports[465]["auth_relay"] is True
    assert target["local_domains"] == ["example.test"]
    assert target["hostname"] == "mx1.example.test"
    # An IPv4 vantage cannot bind to an IPv6 address: only the v4 address is probed from it.
    assert target["addresses"] == ["198.51.100.11"]


def test_trusted_vantage_relays_on_port_25_only():
    ports = by_port(verify_plan.build_target("mx1", mx_submission(), "198.51.100.50", ADDRS, USERS))
    assert ports[25]["relay"] == "allowed"
    # Relay networks never unlock submission listeners: only AUTH does.
    assert ports[587]["relay"] == "refused" and ports[465]["relay"] == "refused"


def test_never_relay_overrides_relay_network_and_auth():
    # .51 is inside 198.51.100.48/28 AND inside never_relay: the never list wins, AUTH included.
    ports = by_port(verify_plan.build_target("mx1", mx_submission(), "198.51.100.51", ADDRS, USERS))
    assert ports[25]["relay"] == "refused"
    assert ports[587]["auth_relay"] is False
    assert ports[465]["auth_relay"] is False


def test_never_relay_overrides_loopback_trust():
    effective = mx_submission(never_relay_networks=["127.0.0.2/32"])
    ports = by_port(verify_plan.build_target("mx1", effective, "127.0.0.2", ["127.0.0.1"]))
    assert ports[25]["relay"] == "refused"
    ports = by_port(verify_plan.build_target("mx1", effective, "127.0.0.1", ["127.0.0.1"]))
    assert ports[25]["relay"] == "allowed"


def test_loopback_relays_only_when_trusted():
    ports = by_port(verify_plan.build_target("mx1", mx_submission(), "127.0.0.1", ["127.0.0.1"]))
    assert ports[25]["relay"] == "allowed"
    assert ports[587]["relay"] == "refused"
    untrusted = mx_submission(trust_loopback=False, loopback_networks=[])
    ports = by_port(verify_plan.build_target("mx1", untrusted, "127.0.0.1", ["127.0.0.1"]))
    assert ports[25]["relay"] == "refused"


def test_per_listener_relay_networks():
    effective = mx_submission(
        relay_networks=[],
        listeners=[
            listener("smtp", 25, "mx", "starttls", []),
            listener("internal", 2525, "mx", "none", ["198.51.100.48/28"]),
        ],
    )
    ports = by_port(verify_plan.build_target("hub", effective, "198.51.100.50", ADDRS))
    assert ports[25]["relay"] == "refused"
    assert ports[2525]["relay"] == "allowed"
    assert ports[2525]["tls"] == "none"
    assert "auth_relay" not in ports[2525]


def test_ipv6_vantage():
    effective = mx_submission(
        relay_networks=["198.51.100.48/28", "2001:db8:25::50/127"],
        never_relay_networks=["198.51.100.51/32", "2001:db8:25::51/128"],
        listeners=[listener("smtp", 25, "mx", "starttls", ["198.51.100.48/28", "2001:db8:25::50/127"])],
    )
    trusted = verify_plan.build_target("mx1", effective, "2001:db8:25::50", ADDRS)
    assert trusted["addresses"] == ["2001:db8:25::11"]
    assert by_port(trusted)[25]["relay"] == "allowed"
    never = verify_plan.build_target("mx1", effective, "2001:db8:25::51", ADDRS)
    assert by_port(never)[25]["relay"] == "refused"
    outside = verify_plan.build_target("mx1", effective, "2001:db8:25::100", ADDRS)
    assert by_port(outside)[25]["relay"] == "refused"
    # An IPv4-mapped or same-numbered v4 address must not match a v6 network, and vice versa.
    v4 = verify_plan.build_target("mx1", effective, "198.51.100.100", ADDRS)
    assert by_port(v4)[25]["relay"] == "refused"


def test_vantage_family_without_matching_address_skips_target():
    assert verify_plan.build_target("mx1", mx_submission(), "2001:db8:25::100", ["198.51.100.11"]) is None
    plan = verify_plan.build_plan(
        [{"name": "mx1", "effective": mx_submission(), "addresses": ["198.51.100.11"]}],
        [{"name": "v6", "source_address": "2001:db8:25::100"}],
    )
    assert plan[0]["targets"] == []
    assert plan[0]["skipped"][0]["name"] == "mx1"


def test_hostname_addresses_are_kept_for_any_family():
    target = verify_plan.build_target("mx1", mx_submission(), "2001:db8:25::100", ["mx1.example.test"])
    assert target["addresses"] == ["mx1.example.test"]


def test_unknown_vantage_address_is_treated_as_untrusted():
    ports = by_port(verify_plan.build_target("mx1", mx_submission(), None, ADDRS, USERS))
    assert ports[25]["relay"] == "refused"
    assert ports[587]["auth_relay"] is True
    # No family filter without a source address.
    assert verify_plan.build_target("mx1", mx_submission(), None, ADDRS)["addresses"] == ADDRS


def test_auth_relay_disabled_by_policy():
    ports = by_port(verify_plan.build_target("mx1", mx_submission(auth_relay=False), "198.51.100.100", ADDRS))
    assert ports[587]["auth_relay"] is False


def test_relay_hub_profile():
    hub = mx_submission(
        profile="relay_hub",
        auth_relay=False,
        listeners=[listener("smtp", 25, "mx", "starttls", ["198.51.100.48/28"])],
    )
    assert by_port(verify_plan.build_target("hub1", hub, "198.51.100.50", ADDRS))[25]["relay"] == "allowed"
    assert by_port(verify_plan.build_target("hub1", hub, "198.51.100.51", ADDRS))[25]["relay"] == "refused"
    assert by_port(verify_plan.build_target("hub1", hub, "198.51.100.100", ADDRS))[25]["relay"] == "refused"


def test_null_client_offers_nothing_but_refusals_from_outside():
    null = mx_submission(
        profile="null_client",
        local_domains=["example.test"],
        auth_relay=False,
        listeners=[listener("smtp", 25, "mx", "none", ["198.51.100.48/28"], address="127.0.0.1")],
    )
    for vantage in ("198.51.100.100", "198.51.100.50", "198.51.100.51", None):
        target = verify_plan.build_target("null1", null, vantage, ["198.51.100.20"])
        assert [entry["relay"] for entry in target["listeners"]] == ["refused"]
        # closed from there is what the policy says (probed only when open): no listener_unreachable
        assert [entry.get("reachable") for entry in target["listeners"]] == [False]
        assert target["local_domains"] == [] and target["relay_domains"] == []
    # From the host itself (prober on the host, probing its loopback) local delivery and relay work.
    local = verify_plan.build_target("null1", null, "127.0.0.1", ["127.0.0.1"])
    assert local["listeners"][0]["relay"] == "allowed" and "reachable" not in local["listeners"][0]
    assert local["local_domains"] == ["example.test"]


def test_listener_bound_to_one_address():
    effective = mx_submission(
        listeners=[
            listener("smtp", 25, "mx", "starttls", ["198.51.100.48/28"], address="198.51.100.11"),
            listener("other", 26, "mx", "starttls", ["198.51.100.48/28"], address="198.51.100.99"),
        ]
    )
    ports = by_port(verify_plan.build_target("mx1", effective, "198.51.100.50", ["198.51.100.11"]))
    assert ports[25]["relay"] == "allowed"
    assert ports[26]["relay"] == "refused"  # not bound where we probe: nothing there may relay


def test_connect_allow_and_deny():
    effective = mx_submission(connect_deny=["198.51.100.52/32"])
    for entry in effective["listeners"]:
        entry["connect_deny"] = None  # hand-written listener: the global list applies
    target = verify_plan.build_target("mx1", effective, "198.51.100.52", ADDRS, USERS)
    ports = by_port(target)
    # .52 is in the relay network but refused at connect: no relay, no AUTH relay, no inbound.
    assert ports[25]["relay"] == "refused"
    assert ports[587]["auth_relay"] is False
    assert target["local_domains"] == []
    # Per-listener connect_allow replaces the global list (as resolved by the policy model).
    effective = mx_submission(
        connect_allow=["198.51.100.0/24"],
        listeners=[
            listener("smtp", 25, "mx", "starttls", ["198.51.100.48/28"], connect_allow=["198.51.100.0/24"]),
            listener("submission", 587, "submission", "required", connect_allow=["198.51.100.50/32"]),
        ],
    )
    ports = by_port(verify_plan.build_target("mx1", effective, "198.51.100.100", ADDRS, USERS))
    assert ports[25]["relay"] == "refused" and ports[587]["auth_relay"] is False
    ports = by_port(verify_plan.build_target("mx1", effective, "198.51.100.50", ADDRS, USERS))
    assert ports[25]["relay"] == "allowed" and ports[587]["auth_relay"] is True
    # An unknown vantage is not on anybody's allow list.
    ports = by_port(verify_plan.build_target("mx1", effective, None, ADDRS, USERS))
    assert ports[587]["auth_relay"] is False


def test_auth_comes_from_first_sasl_user_and_is_redacted():
    users = USERS + [{"name": "bob@example.test", "password": "other"}]
    target = verify_plan.build_target("mx1", mx_submission(), "198.51.100.100", ADDRS, users)
    assert target["auth"] == {"username": "alice@example.test", "password": "lab-only-not-a-secret"}
    plan = verify_plan.build_plan(
        [{"name": "mx1", "effective": mx_submission(), "addresses": ADDRS, "sasl_users": users}],
        [{"name": "external", "source_address": "198.51.100.100"}],
    )
    redacted = verify_plan.redact_plan(plan)
    assert "lab-only-not-a-secret" not in repr(redacted)
    assert redacted[0]["targets"][0]["auth"]["username"] == "alice@example.test"
    # Redaction does not touch the plan that goes to relay_probe.
    assert plan[0]["targets"][0]["auth"]["password"] == "lab-only-not-a-secret"


def test_test_mailbox_only_where_inbound_mail_is_accepted():
    target = verify_plan.build_target("mx1", mx_submission(), "198.51.100.100", ADDRS, None, "postmaster@example.test")
    assert target["test_mailbox"] == "postmaster@example.test"
    assert "test_mailbox" not in verify_plan.build_target("mx1", mx_submission(), "198.51.100.100", ADDRS)
    denied = mx_submission(connect_deny=["198.51.100.100/32"])
    for entry in denied["listeners"]:
        entry["connect_deny"] = ["198.51.100.100/32"]
    assert "test_mailbox" not in verify_plan.build_target("mx1", denied, "198.51.100.100", ADDRS, None, "postmaster@example.test")


def test_no_auth_without_users_or_password():
    assert "auth" not in verify_plan.build_target("mx1", mx_submission(), None, ADDRS, [])
    assert "auth" not in verify_plan.build_target("mx1", mx_submission(), None, ADDRS, [{"name": "alice"}])


def test_effective_policy_is_not_modified():
    effective = mx_submission()
    before = copy.deepcopy(effective)
    verify_plan.build_target("mx1", effective, "198.51.100.50", ADDRS, USERS)
    assert effective == before


# --- plan validation ----------------------------------------------------------------------------


def test_plan_has_one_run_per_vantage():
    hosts = [
        {"name": "mx1", "effective": mx_submission(), "addresses": ADDRS, "sasl_users": USERS},
        {"name": "mx2", "effective": mx_submission(hostname="mx2.example.test"), "addresses": ["198.51.100.12"]},
    ]
    vantages = [
        {"name": "external", "source_address": "198.51.100.100"},
        {"name": "trusted", "source_address": "198.51.100.50"},
        {"name": "never", "source_address": "198.51.100.51"},
    ]
    plan = verify_plan.build_plan(hosts, vantages)
    assert [run["vantage"]["name"] for run in plan] == ["external", "trusted", "never"]
    assert [t["name"] for t in plan[1]["targets"]] == ["mx1", "mx2"]
    assert [by_port(t)[25]["relay"] for run in plan for t in run["targets"]] == [
        "refused",
        "refused",
        "allowed",
        "allowed",
        "refused",
        "refused",
    ]


@pytest.mark.parametrize(
    "vantages, message",
    [
        ([{"source_address": "198.51.100.1"}], "needs a name"),
        ([{"name": "a"}, {"name": "a"}], "duplicate"),
        ([{"name": "a", "source_address": "not-an-ip"}], "not an IP"),
    ],
)
def test_bad_vantages(vantages, message):
    with pytest.raises(verify_plan.VerifyPlanError, match=message):
        verify_plan.build_plan([], vantages)


def test_missing_policy_or_address_is_an_error():
    with pytest.raises(verify_plan.VerifyPlanError, match="mailsec.relay.policy"):
        verify_plan.build_target("mx1", None, None, ADDRS)
    with pytest.raises(verify_plan.VerifyPlanError, match="verify_addresses"):
        verify_plan.build_target("mx1", mx_submission(), None, [])


def test_default_vantage_is_untrusted():
    plan = verify_plan.build_plan([{"name": "mx1", "effective": mx_submission(), "addresses": ADDRS}], None)
    assert plan[0]["vantage"] == {"name": "default", "source_address": []}


def test_dual_stack_vantage_gives_one_target_per_family_with_its_own_expectation():
    effective = mx_submission(
        relay_networks=["198.51.100.48/28"],
        listeners=[listener("smtp", 25, "mx", "starttls", ["198.51.100.48/28"])],
    )
    hosts = [
        {"name": "mx1", "effective": effective, "addresses": ADDRS},
        {"name": "v4only", "effective": effective, "addresses": ["198.51.100.12"]},
        {"name": "byname", "effective": effective, "addresses": ["mx3.example.test", "2001:db8:25::13"]},
    ]
    # v4 source trusted, v6 source not: the two families of one host expect different verdicts.
    plan = verify_plan.build_plan(hosts, [{"name": "both", "source_address": ["198.51.100.50", "2001:db8:25::50"]}])
    run = plan[0]
    assert run["vantage"]["source_address"] == ["198.51.100.50", "2001:db8:25::50"]
    seen = [(t["name"], t["addresses"], by_port(t)[25]["relay"]) for t in run["targets"]]
    assert seen == [
        ("mx1", ["198.51.100.11"], "allowed"),
        ("mx1", ["2001:db8:25::11"], "refused"),
        ("v4only", ["198.51.100.12"], "allowed"),
        ("byname", ["mx3.example.test"], "allowed"),
        ("byname", ["2001:db8:25::13"], "refused"),
    ]
    assert run["skipped"] == []
    # A single string is one source address.
    plan = verify_plan.build_plan(hosts[:1], [{"name": "one", "source_address": "2001:db8:25::50"}])
    assert plan[0]["vantage"]["source_address"] == ["2001:db8:25::50"]
    with pytest.raises(verify_plan.VerifyPlanError, match="one address per IP family"):
        verify_plan.build_plan(hosts, [{"name": "x", "source_address": ["198.51.100.50", "198.51.100.51"]}])


# --- summaries -----------------------------------------------------------------------------------


def result(target, probe, verdict, port=25, case=None, code=250, stage="RCPT", **extra):
    entry = {
        "target": target,
        "address": "198.51.100.13",
        "port": port,
        "probe": probe,
        "case": case,
        "title": "t",
        "verdict": verdict,
        "expected": "refused",
        "reply": {"code": code, "enhanced": "2.1.5", "text": "Ok", "stage": stage},
    }
    entry.update(extra)
    return entry


def test_summary_counts_and_worst_finding():
    runs = [
        {
            "vantage": "external",
            "results": [
                result("legacy1", "T01", "FAIL", code=None, stage="EHLO"),
                result("legacy1", "T11", "FAIL", port=587, case="P02"),
                result("legacy1", "T11", "FAIL", case="P05"),
                result("legacy1", "T11", "FAIL", case="P02"),
                result("legacy1", "T13", "PASS"),
                result("mx1", "T11", "PASS", case="P02", code=554),
                result("mx1", "T12", "WARN", case="P14"),
                result("ghost", "T11", "FAIL"),  # not a play host: ignored
            ],
        },
        {"vantage": "trusted", "results": [result("mx1", "T11", "PASS", case="P02")]},
    ]
    summary = verify_plan.summarize(runs, ["legacy1", "mx1", "exim1"])
    assert summary["legacy1"]["counts"]["FAIL"] == 4
    assert summary["legacy1"]["counts"]["PASS"] == 1
    # A plain relay (T11/P02) on port 25 is the headline, before other forms and other ports.
    assert summary["legacy1"]["worst"] == "T11/P02 RCPT 250 on :25 from external"
    assert summary["mx1"]["counts"]["PASS"] == 2
    assert summary["mx1"]["worst"] == "T12/P14 RCPT 250 on :25 from external"
    assert summary["exim1"]["counts"]["PASS"] == 0 and summary["exim1"]["worst"] is None
    assert "ghost" not in summary
    assert {r["vantage"] for r in summary["mx1"]["results"]} == {"external", "trusted"}
    brief = verify_plan.brief(summary)
    assert brief["mx1"] == {"status": "WARN", "counts": {"PASS": 2, "WARN": 1}, "findings": {"unclassified": 1}, "worst": summary["mx1"]["worst"]}


def test_failure_message_names_probe_listener_and_reply():
    runs = [{"vantage": "external", "results": [result("legacy1", "T11", "FAIL", case="P02", title="plain relay")]}]
    lines = verify_plan.failure_message("legacy1", verify_plan.summarize(runs, ["legacy1"])["legacy1"])
    assert lines[0] == "legacy1: 1 FAIL verdict(s) from live SMTP probes"
    assert "FAIL T11/P02 (plain relay) vantage external -> 198.51.100.13 port 25: RCPT reply 250 2.1.5 Ok" in lines[1]
    # Stricter runs may fail a host on INCONCLUSIVE too; FAILs come first.
    runs[0]["results"].append(result("legacy1", "T09", "INCONCLUSIVE", port=587, code=454, stage="AUTH"))
    summary = verify_plan.summarize(runs, ["legacy1"])["legacy1"]
    assert len(verify_plan.failure_message("legacy1", summary)) == 2
    lines = verify_plan.failure_message("legacy1", summary, verdicts=("FAIL", "INCONCLUSIVE"))
    assert lines[0].startswith("legacy1: 2 FAIL/INCONCLUSIVE") and lines[2].startswith("INCONCLUSIVE T09")
    many = [{"vantage": "v", "results": [result("h", "T11", "FAIL", case="P%02d" % i) for i in range(15)]}]
    lines = verify_plan.failure_message("h", verify_plan.summarize(many, ["h"])["h"], limit=10)
    assert len(lines) == 12 and lines[-1].startswith("... and 5 more")


def test_dead_listener_leads_and_says_why():
    dead = result("mx1", "T00", "FAIL", port=587, title="listener reachable", reason="connection refused")
    dead["reply"] = {"code": None, "enhanced": None, "text": None, "stage": "CONNECT"}
    runs = [{"vantage": "external", "results": [result("mx1", "T11", "FAIL", case="P02"), dead]}]
    lines = verify_plan.failure_message("mx1", verify_plan.summarize(runs, ["mx1"])["mx1"])
    assert lines[1].startswith("FAIL T00 (listener reachable)")
    assert "CONNECT reply no reply (connection refused)" in lines[1]


def test_comparison_table():
    before = verify_plan.summarize(
        [{"vantage": "external", "results": [result("legacy1", "T11", "FAIL", case="P02"), result("mx1", "T11", "PASS")]}],
        ["legacy1", "mx1"],
    )
    after = verify_plan.summarize([{"vantage": "external", "results": [result("legacy1", "T11", "PASS", case="P02", code=554)]}], ["legacy1"])
    table = verify_plan.comparison_table(before, after, {"legacy1": "Postfix", "mx1": "Postfix"}).splitlines()
    assert table[0].split("|")[0].strip() == "host"
    legacy = [line for line in table if line.startswith(" legacy1")][0]
    cells = [cell.strip() for cell in legacy.split("|")]
    assert cells == ["legacy1", "Postfix", "0/1/0/0", "T11/P02 RCPT 250 on :25 from external", "1/0/0/0", "-"]
    assert table[-1].startswith("P/F/W/I = PASS/FAIL/WARN/INCONCLUSIVE")
    mx1 = [cell.strip() for cell in [line for line in table if line.startswith(" mx1")][0].split("|")]
    assert mx1[4] == "-"  # not verified after: shown as missing, not as clean


def test_run_lines():
    lines = verify_plan.run_lines(
        [
            {"vantage": "external", "summary": {"targets": 4, "results": 10, "PASS": 9, "FAIL": 1, "WARN": 0, "seconds": 2.5}},
            {"vantage": "v6", "summary": {}},
        ]
    )
    assert lines == ["external: 4 targets, 10 results in 2.5 s (PASS 9, FAIL 1)", "v6: ? targets, ? results in ? s (no results)"]


def test_finding_text_without_reply():
    assert verify_plan.finding_text({"probe": "T07", "port": 465, "reply": None}) == "T07 no reply on :465"


# --- the demo fleet's policy, through the real policy model ------------------------------------

LAB_INVENTORY = os.path.join(os.path.dirname(__file__), "..", "lab", "inventory")


def lab_host_policy(host):
    import yaml

    with open(os.path.join(LAB_INVENTORY, "group_vars", "mta.yml")) as fh:
        variables = yaml.safe_load(fh)
    with open(os.path.join(LAB_INVENTORY, "host_vars", host + ".yml")) as fh:
        variables.update(yaml.safe_load(fh))
    with open(os.path.join(LAB_INVENTORY, "hosts.yml")) as fh:
        inventory = yaml.safe_load(fh)
    groups = inventory["all"]["children"]["mta"]["children"]
    variables.update(groups["exim" if host.startswith("exim") else "postfix"]["hosts"][host])
    if variables.get("mailsec_relay_sasl_users") == "{{ lab_sasl_users }}":
        variables["mailsec_relay_sasl_users"] = variables["lab_sasl_users"]
    return variables


@pytest.mark.parametrize("host", ["mx1", "hub1", "legacy1", "exim1"])
def test_lab_fleet_policy_gives_the_demo_relay_matrix(host):
    from ansible_collections.mailsec.relay.plugins.module_utils import policy

    variables = lab_host_policy(host)
    effective = policy.build_policy(variables, host)
    hosts = [
        {
            "name": host,
            "effective": effective,
            "addresses": variables["verify_addresses"],
            "sasl_users": variables.get("mailsec_relay_sasl_users"),
        }
    ]
    plan = dict((run["vantage"]["name"], run) for run in verify_plan.build_plan(hosts, variables["verify_vantages"]))
    relay_on_25 = dict((name, by_port(run["targets"][0])[25]["relay"]) for name, run in plan.items())
    assert relay_on_25 == {"external": "refused", "trusted": "allowed", "never": "refused", "external6": "refused"}
    assert plan["external6"]["targets"][0]["addresses"] == [variables["verify_addresses"][1]]
    submission = by_port(plan["external"]["targets"][0]).get(587)
    if variables["mailsec_relay_profile"] == "mx_submission":
        assert submission["auth_relay"] is True
        assert by_port(plan["never"]["targets"][0])[587]["auth_relay"] is False
        assert plan["external"]["targets"][0]["auth"]["username"] == "alice@example.test"
    else:
        assert submission is None


# -- verify-only mode, extra ports, undeclared listeners, findings and the gate -----------------------

EXCHANGE = {
    "hostname": "ex1.example.test",
    "local_domains": ["example.test"],
    "trusted_networks": ["198.51.100.48/28"],
    "listeners": [
        {"port": 25, "role": "mx", "tls": "starttls", "relay_networks": []},  # Default Frontend
        {"port": 587, "role": "submission", "tls": "required"},  # Client Frontend
        {"port": 2525, "role": "mx", "tls": "none"},  # anonymous relay connector
    ],
}


def test_verify_only_policy_gives_targets_without_hardening_variables():
    hosts = [
        {
            "name": "ex1",
            "addresses": ["198.51.100.20"],
            "verify": EXCHANGE,
            "auth": {"username": "probe@example.test", "password": "secret"},
            "extra_ports": [26, 25, 2525],
        }
    ]
    plan = verify_plan.build_plan(hosts, [{"name": "external", "source_address": "198.51.100.100"}, {"name": "trusted", "source_address": "198.51.100.50"}])
    external, trusted = plan[0]["targets"][0], plan[1]["targets"][0]
    assert external["hostname"] == "ex1.example.test" and external["local_domains"] == ["example.test"]
    expected = [(25, "starttls", "refused"), (587, "required", "refused"), (2525, "none", "refused")]
    assert [(lst["port"], lst["tls"], lst["relay"]) for lst in external["listeners"]] == expected
    # Port 25 lists no relay networks of its own (the default connector); 2525 inherits the trusted networks.
    assert [lst["relay"] for lst in trusted["listeners"]] == ["refused", "refused", "allowed"]
    assert external["listeners"][1]["auth_relay"] is True
    assert external["auth"] == {"username": "probe@example.test", "password": "secret"}
    assert external["extra_ports"] == [26]  # declared ports are not extra
    assert "password" not in str(verify_plan.redact_plan(plan)).replace("'password': '********'", "")


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"listeners": []}, "verify_listeners: expected a non-empty list"),
        ({"listeners": [{"port": 25, "role": "relay"}]}, "verify_listeners[0].role"),
        ({"listeners": [{"port": 25, "tls": "yes"}]}, "verify_listeners[0].tls"),
        ({"listeners": [{"port": 70000}]}, "verify_listeners[0].port"),
        ({"listeners": [{"port": 25}, {"port": 25}]}, "listed twice"),
        ({"listeners": [{"port": 587, "relay_networks": ["198.51.100.0/28"]}]}, "relays only after AUTH"),
        ({"listeners": [{"port": 25, "tsl": "none"}]}, "unknown key(s) tsl"),
        ({"listeners": [{"port": 25}], "trusted_networks": ["not-a-net"]}, "verify_trusted_networks"),
        ({"listeners": [{"port": 25, "auth": "yes"}]}, "verify_listeners[0].auth"),
        # hostile or unclear names never reach a probe's envelope, SNI or report
        ({"listeners": [{"port": 25}], "local_domains": ["example.test>\r\nRSET"]}, "verify_local_domains[0]"),
        ({"listeners": [{"port": 25}], "relay_domains": ["ok.test", "ex\u0430mple.test"]}, "verify_relay_domains[1]"),
        ({"listeners": [{"port": 25}], "local_domains": ["stra\u00dfe.test"]}, "IDNA 2003 and IDNA 2008"),
        ({"listeners": [{"port": 25}], "hostname": "mx.example.test\nX"}, "verify_hostname"),
        ({"listeners": [{"port": 25, "address": "0.0.0.0 -o x"}]}, "verify_listeners[0].address"),
        ({"listeners": [{"port": 25, "name": "front\nend"}]}, "verify_listeners[0].name"),
    ],
)
def test_verify_only_errors_name_the_variable(spec, message):
    with pytest.raises(verify_plan.VerifyPlanError) as error:
        verify_plan.verify_only_policy("ex1", spec)
    assert message in str(error.value) and str(error.value).startswith("ex1: ")


def test_verify_only_inventory_name_that_is_no_host_name_asks_for_verify_hostname():
    with pytest.raises(verify_plan.VerifyPlanError, match="set verify_hostname"):
        verify_plan.verify_only_policy("mail server 1", {"listeners": [{"port": 25}]})
    assert verify_plan.verify_only_policy("mail server 1", {"listeners": [{"port": 25}], "hostname": "mx.example.test"})["hostname"] == "mx.example.test"


def test_verify_only_names_are_sent_as_a_labels():
    policy = verify_plan.verify_only_policy(
        "198.51.100.25",  # an inventory keyed by address: the default host name is taken as it is
        {"listeners": [{"port": 25, "name": "Default Frontend EX01"}], "local_domains": ["M\u00fcnchen.Test."], "relay_domains": "Example.TEST"},
    )
    assert policy["local_domains"] == ["xn--mnchen-3ya.test"]
    assert policy["relay_domains"] == ["example.test"]
    assert policy["hostname"] == "198.51.100.25"
    assert policy["listeners"][0]["name"] == "Default Frontend EX01"
    named = verify_plan.verify_only_policy("ex1", {"listeners": [{"port": 25}], "hostname": "MX.Example.test."})
    assert named["hostname"] == "mx.example.test"


def test_verify_only_defaults_by_port():
    policy = verify_plan.verify_only_policy("h", {"listeners": [{"port": 25}, {"port": 465}, {"port": 587}]})
    assert [(lst["role"], lst["tls"], lst["auth"]) for lst in policy["listeners"]] == [
        ("mx", "starttls", False),
        ("submission", "implicit", True),
        ("submission", "required", True),
    ]


def test_extra_ports_validated():
    with pytest.raises(verify_plan.VerifyPlanError, match="verify_extra_ports"):
        verify_plan.build_target("mx1", mx_submission(), "198.51.100.100", ["198.51.100.11"], extra_ports=["x"])
    assert "extra_ports" not in verify_plan.build_target("mx1", mx_submission(), "198.51.100.100", ["198.51.100.11"], extra_ports=[25])


READBACK = {
    "mta": "postfix",
    "policy": {
        "listeners": [
            {"name": "smtp", "address": "*", "port": 25, "role": "mx", "tls": "starttls"},
            {"name": "2525", "address": "*", "port": 2525, "role": "mx", "tls": "none"},
            {"name": "10025", "address": "127.0.0.1", "port": 10025, "role": "mx", "tls": "none"},
            {"name": "26", "address": "198.51.100.11", "port": 26, "role": "submission", "tls": "weird"},
        ]
    },
}


def test_undeclared_readback_listeners_are_probed_with_mx_semantics():
    plan = verify_plan.build_plan(
        [{"name": "mx1", "effective": mx_submission(), "addresses": ["198.51.100.11"], "readback": READBACK}],
        [{"name": "external", "source_address": "198.51.100.100"}, {"name": "trusted", "source_address": "198.51.100.50"}],
    )
    external = plan[0]["targets"][0]["listeners"]
    assert [(lst["port"], lst["role"], lst["tls"], lst["relay"]) for lst in external[3:]] == [(2525, "mx", "none", "refused"), (26, "mx", "none", "refused")]
    assert plan[0]["undeclared"] == [{"name": "mx1", "ports": [2525, 26]}]
    # A trusted vantage may relay on MX semantics: nothing to assert there; loopback-bound 10025 never.
    assert [lst["port"] for lst in plan[1]["targets"][0]["listeners"]] == [25, 587, 465] and plan[1]["undeclared"] == []
    # No readback (or no listeners in it): nothing added.
    assert len(verify_plan.build_target("mx1", mx_submission(), "198.51.100.100", ["198.51.100.11"], readback={"policy": None})["listeners"]) == 3


def test_findings_status_and_gate():
    runs = [
        {
            "vantage": "external",
            "results": [
                result("mx1", "T11", "FAIL", case="P02", finding="open_relay", severity="critical", reason="canary arrived"),
                result("mx1", "T01", "FAIL", finding="starttls_missing"),
                result("mx2", "T22", "FAIL", finding="unverified", reason="T11 INCONCLUSIVE"),
                result("mx3", "T22", "WARN", finding="unverified", reason="T11 INCONCLUSIVE"),
                result("mx4", "T13", "INCONCLUSIVE"),
                {"target": "mx4", "address": "198.51.100.14", "port": 25, "probe": "passed", "verdict": "PASS", "count": 30},
            ],
        }
    ]
    summary = verify_plan.summarize(runs, ["mx1", "mx2", "mx3", "mx4"])
    assert summary["mx1"]["status"] == "FAIL" and summary["mx1"]["findings"] == {"open_relay": 1, "starttls_missing": 1}
    assert summary["mx1"]["worst"].endswith("(open_relay)")  # by severity, not by probe order
    assert summary["mx2"]["status"] == "UNVERIFIED" and summary["mx3"]["status"] == "UNVERIFIED"
    assert summary["mx4"]["status"] == "INCONCLUSIVE" and summary["mx4"]["counts"]["PASS"] == 30
    assert summary["mx4"]["findings"] == {"inconclusive": 1}
    failing = verify_plan.gate(summary, ["FAIL"], "fail")
    # Unverified fails by default whatever verdict the engine gave it (mx3: WARN).
    assert sorted(failing) == ["mx1", "mx2", "mx3"]
    assert "UNVERIFIED" in failing["mx3"][0] and "finding unverified (high)" in failing["mx3"][1]
    assert "finding open_relay (critical)" in failing["mx1"][1] and "canary arrived" in failing["mx1"][1]
    assert sorted(verify_plan.gate(summary, ["FAIL"], "warn")) == ["mx1", "mx2"]  # mx2: the engine's own FAIL
    assert verify_plan.gate(summary, [], "warn") == {}


# --- issue 14: T24/T25 from the policy's limits, once per host ----------------------------------

RATE_USERS = USERS + [{"name": "ratecheck@example.test", "password": "rate-only-secret"}]
LIMITED = dict(
    sender_rate_limits={"messages": 40, "recipients": 0, "window": 3600}, client_limits={"connection_count": 50, "connection_rate": 0, "auth_rate": 30}
)
VANTAGES = [
    {"name": "trusted", "source_address": "198.51.100.50"},
    {"name": "external", "source_address": "198.51.100.100"},
    {"name": "never", "source_address": "198.51.100.51"},
]


def _limit_plan(effective, vantages=None, limits=None, **host):
    entry = dict({"name": "mx1", "effective": effective, "addresses": ["198.51.100.11"], "sasl_users": RATE_USERS}, **host)
    plan = verify_plan.build_plan([entry], vantages or VANTAGES, limits)
    return dict((run["vantage"]["name"], run["targets"][0]) for run in plan), plan


def test_limit_probes_run_once_per_host_where_they_can():
    targets, plan = _limit_plan(mx_submission(**LIMITED), rate_probe_login="ratecheck@example.test")
    # T24: the first vantage that may relay after AUTH (trusted), with the dedicated login
    assert targets["trusted"]["sender_rate_limit"] == {"limit": 40, "ceiling": 100, "username": "ratecheck@example.test", "password": "rate-only-secret"}
    # T25: the first one outside the relay networks (the brake exempts them)
    assert "auth_attempt_limit" not in targets["trusted"]
    assert targets["external"]["auth_attempt_limit"] == {"limit": 30, "ceiling": 100}
    assert "sender_rate_limit" not in targets["external"] and "auth_attempt_limit" not in targets["never"]
    # the password never in what is shown
    assert "rate-only-secret" not in repr(verify_plan.redact_plan(plan))
    assert plan[0]["targets"][0]["sender_rate_limit"]["password"] == "rate-only-secret"


def test_limit_probes_say_why_they_do_not_run():
    # no dedicated login: T24 is a SKIP that names the variable
    targets, unused = _limit_plan(mx_submission(**LIMITED))
    assert "verify_rate_probe_login" in targets["trusted"]["sender_rate_limit"]["skip"]
    assert "password" not in targets["trusted"]["sender_rate_limit"]
    # no limits in the policy
    off = dict(
        sender_rate_limits={"messages": 0, "recipients": 0, "window": 3600}, client_limits={"connection_count": 50, "connection_rate": 0, "auth_rate": 0}
    )
    targets, unused = _limit_plan(mx_submission(**off), rate_probe_login="ratecheck@example.test")
    assert "no per-login sender rate limit" in targets["trusted"]["sender_rate_limit"]["skip"]
    assert "no AUTH rate limit" in targets["external"]["auth_attempt_limit"]["skip"]
    # only vantages inside the relay networks: T25 cannot show the brake
    targets, unused = _limit_plan(mx_submission(**LIMITED), vantages=VANTAGES[:1])
    assert "relay networks" in targets["trusted"]["auth_attempt_limit"]["skip"]
    # a policy without the issue-14 keys (verify-only, older): nothing added
    targets, unused = _limit_plan(mx_submission())
    assert not set(targets["trusted"]) & {"sender_rate_limit", "auth_attempt_limit"}


def test_t24_limit_is_the_lower_of_messages_and_recipients():
    both = {**LIMITED, "sender_rate_limits": {"messages": 80, "recipients": 20, "window": 3600}}
    targets, unused = _limit_plan(mx_submission(**both), rate_probe_login="ratecheck@example.test")
    assert targets["trusted"]["sender_rate_limit"]["limit"] == 20
    recipients_only = {**LIMITED, "sender_rate_limits": {"messages": 0, "recipients": 25, "window": 3600}}
    targets, unused = _limit_plan(mx_submission(**recipients_only), rate_probe_login="ratecheck@example.test")
    assert targets["trusted"]["sender_rate_limit"]["limit"] == 25


def test_limit_ceilings_are_passed_and_validated():
    targets, unused = _limit_plan(
        mx_submission(**LIMITED), limits={"sender_rate_ceiling": 20, "auth_rate_ceiling": 0}, rate_probe_login="ratecheck@example.test"
    )
    assert targets["trusted"]["sender_rate_limit"]["ceiling"] == 20  # the engine SKIPs limit 40 > 20, saying so
    assert targets["external"]["auth_attempt_limit"]["ceiling"] == 0
    for bad in (-1, "ten", True, 1.5):
        with pytest.raises(verify_plan.VerifyPlanError, match="verify_sender_rate_ceiling"):
            _limit_plan(mx_submission(**LIMITED), limits={"sender_rate_ceiling": bad})


@pytest.mark.parametrize(
    "login, message",
    [
        ("nobody@example.test", "is not a login of mailsec_relay_sasl_users"),
        ("alice@example.test", "is the login T09/T10 use"),
        (["ratecheck@example.test"], "expected a login name"),
    ],
)
def test_rate_probe_login_must_be_a_dedicated_sasl_user(login, message):
    with pytest.raises(verify_plan.VerifyPlanError, match="verify_rate_probe_login") as caught:
        _limit_plan(mx_submission(**LIMITED), rate_probe_login=login)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


def test_t10_expected_where_the_policy_binds_the_sender():
    effective = mx_submission()
    effective["listeners"][1]["sender_login_match"] = True
    ports = by_port(verify_plan.build_target("mx1", effective, "198.51.100.100", ADDRS, USERS))
    assert ports[587]["sender_login_match"] is True and "sender_login_match" not in ports[465]
