# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/filter/verify.py: policies of all hosts in one pass, verify-only hosts, the digest and gate."""

from __future__ import annotations

import pytest

from ansible_collections.mailsec.relay.plugins.filter import verify  # noqa: E402

HOSTVARS = {
    "mx1": {
        "ansible_host": "198.51.100.11",
        "mailsec_relay_profile": "mx",
        "mailsec_relay_local_domains": ["example.test"],
        "mailsec_relay_networks": ["198.51.100.48/28"],
        "mailsec_relay_hostname": "mx1.example.test",
        "mailsec_relay_readback": {"policy": {"listeners": [{"address": "*", "port": 2525, "tls": "none"}]}},
        "unrelated": "x",
    },
    "bad": {"ansible_host": "198.51.100.12", "mailsec_relay_profile": "mx_submision"},
    "ex1": {
        "verify_addresses": ["198.51.100.20"],
        "verify_listeners": [{"port": 25}, {"port": 587}],
        "verify_local_domains": ["example.com"],
        "verify_auth": {"username": "probe", "password": "pw"},
        "verify_extra_ports": [2525],
        "mailsec_relay_profile": "ignored in verify-only mode",
    },
}


def test_probe_targets_builds_every_policy_in_one_pass():
    plan = verify.probe_targets(["mx1", "bad", "ex1"], [{"name": "external", "source_address": "198.51.100.100"}], HOSTVARS)
    run = plan[0]
    targets = dict((target["name"], target) for target in run["targets"])
    assert sorted(targets) == ["ex1", "mx1"]
    assert [lst["port"] for lst in targets["mx1"]["listeners"]] == [25, 2525] and run["undeclared"] == [{"name": "mx1", "ports": [2525]}]
    assert targets["mx1"]["hostname"] == "mx1.example.test"
    assert [(lst["port"], lst["role"], lst["tls"]) for lst in targets["ex1"]["listeners"]] == [(25, "mx", "starttls"), (587, "submission", "required")]
    assert targets["ex1"]["auth"] == {"username": "probe", "password": "pw"} and targets["ex1"]["extra_ports"] == [2525]
    bad = [s for s in run["skipped"] if s["name"] == "bad"][0]
    assert bad["invalid"] is True and "mailsec_relay_profile" in bad["reason"]


def test_readback_listeners_can_be_turned_off():
    hostvars = {"mx1": dict(HOSTVARS["mx1"], verify_readback_listeners=False)}
    plan = verify.probe_targets(["mx1"], [{"name": "external", "source_address": "198.51.100.100"}], hostvars)
    assert [lst["port"] for lst in plan[0]["targets"][0]["listeners"]] == [25] and plan[0]["undeclared"] == []


def test_verify_only_errors_become_filter_errors():
    hostvars = {"ex1": dict(HOSTVARS["ex1"], verify_listeners=[{"port": 25, "tls": "maybe"}])}
    with pytest.raises(verify.AnsibleFilterError, match=r"ex1: verify_listeners\[0\]\.tls"):
        verify.probe_targets(["ex1"], None, hostvars)


def test_digest_summary_gate_and_errors_in_one_pass():
    plan = verify.probe_targets(["mx1", "bad"], [{"name": "external"}], HOSTVARS)
    runs = [
        {
            "item": {"vantage": {"name": "external"}},
            "summary": {"targets": 1, "results": 2, "FAIL": 1, "seconds": 0.1},
            "results": [
                {
                    "target": "mx1",
                    "address": "198.51.100.11",
                    "port": 25,
                    "probe": "T11",
                    "case": "P02",
                    "verdict": "FAIL",
                    "finding": "open_relay",
                    "severity": "critical",
                    "reason": "canary arrived",
                },
                {"target": "mx1", "address": "198.51.100.11", "port": 25, "probe": "passed", "verdict": "PASS", "count": 40},
            ],
        },
        {"item": {"item": {"vantage": {"name": "trusted"}}}, "failed": True, "msg": "source address not configured"},
    ]
    digest = verify.verify_digest(runs, ["mx1", "bad"], ["FAIL"], "fail", plan)
    assert digest["summary"]["mx1"]["counts"]["PASS"] == 40 and digest["brief"]["mx1"]["findings"] == {"open_relay": 1}
    assert digest["errors"] == ["vantage trusted: source address not configured"]
    assert digest["runs"] == ["external: 1 targets, 2 results in 0.1 s (FAIL 1)"]
    assert sorted(digest["gate"]) == ["bad", "mx1"] and "mailsec_relay_profile" in " ".join(digest["gate"]["bad"])
    assert "finding open_relay (critical)" in digest["gate"]["mx1"][1]
