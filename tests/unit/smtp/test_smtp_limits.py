# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""T24 (per-login sender rate limit) and T25 (AUTH attempts per client), issue 14, against fake
servers that enforce the limit, enforce none, or enforce it too late."""

from __future__ import annotations

import pytest
from conftest import PASSWORD

from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine

RATE_USER = {"username": "alice", "password": PASSWORD}


def _result(outcome, probe):
    rows = [r for r in outcome["results"] if r["probe"] == probe]
    assert len(rows) == 1, rows  # one listener runs it: the limits count per login / per client
    return rows[0]


def test_t24_passes_where_the_limit_refuses_message_limit_plus_one(scenario):
    outcome, host = scenario(submission=dict(message_limit=3), probes=["T24"], target={"sender_rate_limit": dict(RATE_USER, limit=3, ceiling=10)})
    row = _result(outcome, "T24")
    assert row["verdict"] == "PASS", row
    assert "message 4 of 4 refused after 3 accepted" in row["reason"] and row["reply"]["code"] == 451
    # limit + 1 tried, limit delivered: nothing beyond the bound was sent
    assert len(host.submission.transactions) == 3
    assert all(t["rcpts"][0].strip("<>").endswith("@canary.test") for t in host.submission.transactions)


def test_t24_fails_where_nothing_refuses(scenario):
    outcome, host = scenario(probes=["T24"], target={"sender_rate_limit": dict(RATE_USER, limit=3, ceiling=10)})
    row = _result(outcome, "T24")
    assert (row["verdict"], row["finding"]) == ("FAIL", "sender_rate_unlimited"), row
    assert len(host.submission.transactions) == 4  # bounded: limit + 1, no more


def test_t24_fails_where_the_server_refuses_too_late(scenario):
    outcome, host = scenario(submission=dict(message_limit=5), probes=["T24"], target={"sender_rate_limit": dict(RATE_USER, limit=3, ceiling=10)})
    assert _result(outcome, "T24")["verdict"] == "FAIL"
    assert len(host.submission.transactions) == 4


def test_t24_earlier_use_of_the_window_still_shows_the_limit(scenario):
    # 2 of 3 spent before the probe: refused at message 2 is still the limit at work
    outcome, host = scenario(submission=dict(message_limit=1), probes=["T24"], target={"sender_rate_limit": dict(RATE_USER, limit=3, ceiling=10)})
    row = _result(outcome, "T24")
    assert row["verdict"] == "PASS" and "message 2 of 4 refused after 1 accepted" in row["reason"]


@pytest.mark.parametrize(
    "spec, canary, reason",
    [
        (dict(RATE_USER, limit=30, ceiling=10), True, "above the ceiling"),
        (dict(RATE_USER, limit=3, ceiling=10), False, "no canary"),
        ({"limit": 3, "ceiling": 10}, True, "no dedicated login"),
    ],
)
def test_t24_sends_nothing_without_canary_login_or_below_the_ceiling(scenario, spec, canary, reason):
    outcome, host = scenario(probes=["T24"], canary=canary, target={"sender_rate_limit": spec})
    row = _result(outcome, "T24")
    assert row["verdict"] == "SKIP" and reason in row["reason"], row
    assert host.transactions == []


def test_t24_not_run_without_a_limit(scenario):
    outcome, unused = scenario(probes=["T24", "T25"])
    assert not [r for r in outcome["results"] if r["probe"] in ("T24", "T25")]


def test_t25_passes_where_auth_is_throttled_at_the_limit(scenario):
    outcome, host = scenario(submission=dict(auth_command_limit=7), probes=["T25"], target={"auth_attempt_limit": {"limit": 7}})
    row = _result(outcome, "T25")
    assert row["verdict"] == "PASS" and "AUTH attempt 8 of 8 throttled" in row["reason"], row
    assert host.submission.auth_commands == 8
    # one wrong password, never the real one; the rest cancelled exchanges
    assert [entry[1:] for entry in host.submission.auth_log] == [(False, host.submission.auth_log[0][2])]
    assert host.submission.auth_log[0][2] != PASSWORD
    # credentials only inside TLS
    assert all(over_tls for over_tls, line in host.submission.command_log if line.upper().startswith("AUTH"))


def test_t25_fails_without_a_throttle(scenario):
    outcome, host = scenario(probes=["T25"], target={"auth_attempt_limit": {"limit": 7}})
    row = _result(outcome, "T25")
    assert (row["verdict"], row["finding"]) == ("FAIL", "auth_guessing_unthrottled"), row
    assert host.submission.auth_commands == 8  # bounded: limit + 1


def test_t25_fails_where_the_throttle_comes_too_late(scenario):
    outcome, host = scenario(submission=dict(auth_command_limit=12), probes=["T25"], target={"auth_attempt_limit": {"limit": 7}})
    assert _result(outcome, "T25")["verdict"] == "FAIL"
    assert host.submission.auth_commands == 8


def test_t25_above_the_ceiling_sends_nothing(scenario):
    outcome, host = scenario(probes=["T25"], target={"auth_attempt_limit": {"limit": 500, "ceiling": 1000}})
    row = _result(outcome, "T25")
    assert row["verdict"] == "SKIP" and "above the ceiling 100" in row["reason"]
    assert host.submission.auth_commands == 0


@pytest.mark.parametrize("spec", [{"limit": "ten"}, {"limit": True}, {"limit": -1}, "3", {"limit": 3, "ceiling": 1.5}])
def test_bad_limit_specs_are_config_errors(spec):
    target = {"name": "mx1", "addresses": ["127.0.0.1"], "auth_attempt_limit": spec}
    with pytest.raises(engine.ConfigError, match="auth_attempt_limit"):
        engine.Target(target, 0)


def test_the_engine_knows_t24_and_t25():
    assert {"T24", "T25"} <= set(engine.ALL_PROBES)


def test_t25_a_dropped_connection_is_no_throttle(scenario):
    # a server that drops every connection at its 4th AUTH (an error limit, not a rate): no PASS
    outcome, host = scenario(submission=dict(auth_drop_per_connection=4), probes=["T25"], target={"auth_attempt_limit": {"limit": 7}})
    row = _result(outcome, "T25")
    assert (row["verdict"], row["finding"]) == ("FAIL", "auth_guessing_unthrottled"), row
    # ... and with a real rate brake behind the drops it still finds the throttle
    outcome, host = scenario(submission=dict(auth_drop_per_connection=4, auth_command_limit=7), probes=["T25"], target={"auth_attempt_limit": {"limit": 7}})
    assert _result(outcome, "T25")["verdict"] == "PASS"


@pytest.mark.parametrize("probe, key", [("T24", "sender_rate_limit"), ("T25", "auth_attempt_limit")])
def test_a_reason_from_the_caller_is_a_skip_that_says_why(scenario, probe, key):
    # roles/verify names why it does not run a limit probe (no policy limit, no dedicated login, ...)
    outcome, host = scenario(probes=[probe], target={key: {"limit": 3, "skip": "the policy sets no limit"}})
    row = _result(outcome, probe)
    assert (row["verdict"], row["reason"]) == ("SKIP", "the policy sets no limit"), row
    assert host.transactions == [] and host.submission.auth_commands == 0


@pytest.mark.parametrize("probe, key", [("T24", "sender_rate_limit"), ("T25", "auth_attempt_limit")])
def test_limit_zero_sends_nothing_and_says_so(scenario, probe, key):
    outcome, host = scenario(probes=[probe], target={key: dict(RATE_USER, limit=0)})
    row = _result(outcome, probe)
    assert row["verdict"] == "SKIP" and "no limit given" in row["reason"], row
    assert host.transactions == [] and host.submission.auth_commands == 0


def _587(binds, **more):
    """Only the fake's 587 listener, with or without sender_login_match (its port is known at start)."""
    return lambda spec: dict(more, listeners=[dict(spec["listeners"][1], sender_login_match=binds)])


@pytest.mark.parametrize(
    "refuse, verdict, finding",
    [("other-", "PASS", None), (None, "FAIL", "sender_login_mismatch")],
)
def test_t10_runs_with_all_where_the_listener_binds_the_sender(scenario, refuse, verdict, finding):
    outcome, host = scenario(submission=dict(refuse_sender=refuse), probes=["all"], target=_587(True))
    rows = [r for r in outcome["results"] if r["probe"] == "T10"]
    assert [(r["verdict"], r["finding"]) for r in rows] == [(verdict, finding)], rows


def test_t10_without_credentials_is_a_skip_that_says_why(scenario):
    outcome, unused = scenario(probes=["all"], target=_587(True, auth=None))
    rows = [r for r in outcome["results"] if r["probe"] == "T10"]
    assert [(r["verdict"], r["reason"]) for r in rows] == [("SKIP", "no test credentials given")]


def test_t10_not_run_for_a_selection_without_it(scenario):
    # sender_login_match turns T10 on with "all"; a list of other probes leaves it out
    outcome, unused = scenario(probes=["T09"], target=_587(True))
    assert [r for r in outcome["results"] if r["probe"] == "T10"] == []
    outcome, unused = scenario(probes=["all"], target=_587(False))
    assert [r for r in outcome["results"] if r["probe"] == "T10"] == []
