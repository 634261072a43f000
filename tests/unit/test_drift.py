# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Semantic drift comparison (module_utils/drift.py): spelling is not drift, grants are."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.mailsec.relay.plugins.module_utils import (
    drift,
    policy,  # noqa: E402
)

netaddr = pytest.importorskip("netaddr")


def desired():
    return policy.build_policy(
        {
            "mailsec_relay_profile": "mx_submission",
            "mailsec_relay_hostname": "mx1.example.test",
            "mailsec_relay_local_domains": ["example.test"],
            "mailsec_relay_networks": ["198.51.100.48/28"],
            "mailsec_relay_never_networks": ["198.51.100.51/32"],
            "mailsec_relay_tls_selfsigned": True,
            "mailsec_relay_smarthost": "[198.51.100.100]:25",
        },
        "mx1",
    )


def actual_from(effective):
    """The readback a perfectly hardened host gives: the effective policy itself."""
    return copy.deepcopy(effective)


def fails(findings):
    return dict((f["check"], f) for f in findings if f["verdict"] == "FAIL")


def test_identical_policy_is_clean_and_every_finding_has_the_shape():
    findings = drift.compare(desired(), actual_from(desired()), "mx1")
    assert fails(findings) == {}
    for item in findings:
        assert set(item) == {"host", "check", "verdict", "expected", "actual", "detail"}
        assert item["host"] == "mx1" and item["verdict"] in ("PASS", "FAIL")


def test_order_and_spelling_of_networks_is_not_drift():
    actual = actual_from(desired())
    # Same addresses: split into halves, Postfix brackets for v6, listed in another order.
    actual["relay_networks"] = ["198.51.100.56/29", "198.51.100.48/29"]
    actual["loopback_networks"] = ["[::1]/128", "127.0.0.0/8"]
    actual["local_domains"] = ["EXAMPLE.TEST.", "mx1.example.test", "localhost"]
    actual["smarthost"] = "198.51.100.100:25"  # an address is never MX-looked-up: same as [..]:25
    assert fails(drift.compare(desired(), actual, "mx1")) == {}


def test_open_relay_is_named_from_what_to_what():
    actual = actual_from(desired())
    actual["relay_networks"] = ["0.0.0.0/0"]
    finding = fails(drift.compare(desired(), actual, "mx1"))["relay_networks"]
    assert finding["expected"] == ["198.51.100.48/28"] and finding["actual"] == ["0.0.0.0/0"]
    assert finding["detail"] == "OPEN RELAY; extra relay grant 0.0.0.0/0 except 198.51.100.48/28"


def test_fragmented_grant_is_described_as_span_except_holes():
    granted = drift.NetSet(["0.0.0.0/0"]) - drift.NetSet(["203.0.113.71/32"])
    assert len(granted.cidrs()) == 32
    assert granted.describe() == "0.0.0.0/0 except 203.0.113.71/32"
    assert drift.NetSet(["198.51.100.0/28"]).share(4) < 0.5 <= granted.share(4)


def test_missing_never_relay_entry():
    actual = actual_from(desired())
    actual["never_relay_networks"] = []
    finding = fails(drift.compare(desired(), actual, "mx1"))["never_relay_networks"]
    assert "missing never-relay entry" in finding["detail"] and "198.51.100.51/32" in finding["detail"]


def test_auth_on_port_25_is_flagged():
    actual = actual_from(desired())
    actual["listeners"][0]["auth"] = True
    finding = fails(drift.compare(desired(), actual, "mx1"))["listener *:25 auth"]
    assert finding["expected"] is False and finding["actual"] is True
    assert "AUTH offered on *:25" in finding["detail"]


def test_listeners_match_by_address_and_port():
    actual = actual_from(desired())
    actual["listeners"][1]["address"] = "198.51.100.10"  # 587 bound elsewhere: missing + unexpected
    got = fails(drift.compare(desired(), actual, "mx1"))
    assert got["listener *:587"]["detail"] == "listener *:587 is missing"
    assert "unexpected listener 198.51.100.10:587" in got["listener 198.51.100.10:587"]["detail"]


def test_tls_downgrade_is_drift():
    actual = actual_from(desired())
    actual["listeners"][1]["tls"] = "starttls"
    got = fails(drift.compare(desired(), actual, "mx1"))
    assert got["listener *:587 tls"]["detail"] == "tls from required to starttls"


def test_readback_grants_override_the_listener_model():
    actual = actual_from(desired())
    # The readback says who may really relay on 25: here the never-relay host is not carved out.
    actual["listeners"][0]["grants"] = ["127.0.0.0/8", "::1/128", "198.51.100.48/28"]
    got = fails(drift.compare(desired(), actual, "mx1"))
    assert got["listener *:25 relay"]["detail"] == "extra relay grant 198.51.100.51/32"


def test_no_mta_is_one_failing_finding():
    got = drift.compare(desired(), None, "mx1")
    assert [f["check"] for f in got] == ["mta"] and got[0]["verdict"] == "FAIL"


def test_spot_check_findings_and_summary_and_diff():
    checks = [
        {"name": "*:25 external 203.0.113.254 -> foreign", "expect": "deny", "verdict": "accept", "stage": "RCPT", "reply": "250 Accepted"},
        {"name": "*:587 external", "expect": "deny", "verdict": "deny", "stage": "MAIL", "reply": "530"},
    ]
    got = drift.spot_check_findings("mx1", checks)
    assert [f["verdict"] for f in got] == ["FAIL", "PASS"]
    summary = drift.summarize(got)
    assert summary == {"PASS": 1, "FAIL": 1, "drifted": True, "failed_checks": ["spot *:25 external 203.0.113.254 -> foreign"]}
    text = drift.diff(got)
    assert "deny" in text["before"] and "accept" in text["after"] and "587" not in text["after"]
    assert drift.lines(got) == ["spot *:25 external 203.0.113.254 -> foreign: deny -> accept (expected deny, the MTA answered accept at RCPT: 250 Accepted)"]


networks = st = None
try:
    from hypothesis import given, settings  # noqa: E402
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    v4 = st.builds(lambda a, p: netaddr.IPNetwork("%s/%d" % (netaddr.IPAddress(a), p)).cidr, st.integers(0, 2**32 - 1), st.integers(8, 32))
    nets = st.lists(v4, max_size=6)

    @settings(max_examples=150, deadline=None)
    @given(nets, nets)
    def test_netset_algebra_matches_netaddr_ipset(left, right):
        a = drift.NetSet([str(n) for n in left])
        b = drift.NetSet([str(n) for n in right])
        ia, ib = netaddr.IPSet(left), netaddr.IPSet(right)
        assert set(drift.NetSet((a - b).cidrs()).cidrs()) == set(str(c) for c in (ia - ib).iter_cidrs())
        assert set((a | b).cidrs()) == set(str(c) for c in (ia | ib).iter_cidrs())
        assert set((a & b).cidrs()) == set(str(c) for c in (ia & ib).iter_cidrs())
        assert (a == b) == (ia == ib)
