# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-login sender rate limits (issue 14): policy, Postfix (postfwd) and Exim rendering, readback, drift."""

from __future__ import annotations

import pytest

from ansible_collections.mailsec.relay.plugins.module_utils import drift, exim, policy, postfix
from ansible_collections.mailsec.relay.plugins.module_utils import exim_readback as er
from ansible_collections.mailsec.relay.plugins.module_utils import postfix_readback as pr

pytest.importorskip("netaddr")
HOST = "mx1.example.test"
BASE = {"mailsec_relay_profile": "mx_submission", "mailsec_relay_tls_selfsigned": True}
LIMITED = {"mailsec_relay_sender_rate_limit_messages": 3, "mailsec_relay_sender_rate_limit_recipients": "5", "mailsec_relay_sender_rate_limit_window": "2h"}
RULES = "/etc/postfix/mailsec/sender_rate_limits.postfwd"


def build(**extra):
    return policy.build_policy(dict(BASE, **extra), HOST)


def errors_of(**extra):
    with pytest.raises(policy.PolicyErrors) as caught:
        build(**extra)
    return list(caught.value)


def test_defaults_are_off():
    assert build()["sender_rate_limits"] == {"messages": 0, "recipients": 0, "window": 3600}


@pytest.mark.parametrize("window, seconds", [("2h", 7200), ("90m", 5400), ("600", 600), (600, 600), ("1d", 86400), ("60s", 60), (" 7d ", 604800)])
def test_window_forms(window, seconds):
    assert build(mailsec_relay_sender_rate_limit_window=window)["sender_rate_limits"]["window"] == seconds


def test_values():
    assert build(**LIMITED)["sender_rate_limits"] == {"messages": 3, "recipients": 5, "window": 7200}


@pytest.mark.parametrize("variable", sorted(policy.SENDER_RATE_LIMITS))
@pytest.mark.parametrize("value", [-1, True, "ten", 1.5, [3], 10**7, "٣"])
def test_bad_limits_name_the_variable(variable, value):
    errors = errors_of(**{variable: value})
    assert [e.variable for e in errors] == [variable]
    assert "whole number" in errors[0].message and "0 switches this limit off" in errors[0].fix


@pytest.mark.parametrize("value", ["1w", "59s", "8d", "h", "", True, 1.5, [60], "1 h", -60])
def test_bad_windows_name_the_variable(value):
    errors = errors_of(mailsec_relay_sender_rate_limit_window=value)
    assert [e.variable for e in errors] == ["mailsec_relay_sender_rate_limit_window"]
    assert "duration" in errors[0].message and "1h" in errors[0].fix


def test_a_limit_without_auth_listener_is_refused():
    errors = policy.PolicyErrors
    with pytest.raises(errors) as caught:
        policy.build_policy({"mailsec_relay_profile": "mx", "mailsec_relay_sender_rate_limit_recipients": 10}, HOST)
    assert [e.variable for e in caught.value] == ["mailsec_relay_sender_rate_limit_recipients"]
    assert "no listener offers AUTH" in list(caught.value)[0].message


def test_postfix_asks_postfwd_at_data_on_auth_listeners_only():
    rendered = postfix.render_postfix(build(**LIMITED))
    main = rendered["main"]
    assert main["mailsec_sender_rate_check"] == (
        "check_policy_service { inet:127.0.0.1:10040, { default_action = 451 4.3.5 Sender rate limit service unavailable } }"
    )
    data = dict((m["name"], m["overrides"].get("smtpd_data_restrictions")) for m in rendered["master"])
    assert data == {
        "smtp": None,
        "submission": "reject_unauth_pipelining, $mailsec_sender_rate_check",
        "submissions": "reject_unauth_pipelining, $mailsec_sender_rate_check",
    }
    # the fail-safe reply has no comma: inside { } a comma would start another attribute
    assert "," not in postfix.SENDER_RATE_DEFAULT_ACTION
    rules = [f for f in rendered["files"] if f["path"] == RULES]
    assert len(rules) == 1 and rules[0]["map_type"] is None
    lines = rules[0]["content"].splitlines()
    assert lines[1] == (
        "id=mailsec_messages; protocol_state==DATA; sasl_username=~.; action=rate(sasl_username/3/7200/451 4.7.1 Message limit reached for this login)"
    )
    assert lines[2] == (
        "id=mailsec_recipients; protocol_state==DATA; sasl_username=~.; action=rcpt(sasl_username/5/7200/451 4.7.1 Recipient limit reached for this login)"
    )
    assert postfix.parse_sender_rate_rules(rules[0]["content"]) == {"messages": 3, "recipients": 5, "window": 7200}


def test_postfix_without_limits_writes_no_check_and_removes_the_parameter():
    rendered = postfix.render_postfix(build())
    assert rendered["main"]["mailsec_sender_rate_check"] is None
    assert not [f for f in rendered["files"] if f["path"] == RULES]
    assert all("smtpd_data_restrictions" not in m["overrides"] for m in rendered["master"])


def test_postfix_service_address_is_checked():
    with pytest.raises(postfix.PostfixError, match="sender_rate_service"):
        postfix.render_postfix(build(**LIMITED), sender_rate_service="inet:127.0.0.1:10040, permit")
    only_messages = postfix.render_postfix(build(mailsec_relay_sender_rate_limit_messages=4), sender_rate_service="inet:127.0.0.1:10041")
    assert "inet:127.0.0.1:10041," in only_messages["main"]["mailsec_sender_rate_check"]
    content = [f for f in only_messages["files"] if f["path"] == RULES][0]["content"]
    assert "mailsec_messages" in content and "mailsec_recipients" not in content


def test_exim_counts_per_authenticated_id_in_predata():
    effective = build(**LIMITED)
    acl = exim.render_acl(effective)
    predata = acl.split("acl_mailsec_predata:", 1)[1].split("\n\n", 1)[0]
    assert "  defer   authenticated = *\n          ratelimit = 3 / 7200s / per_mail / mailsec_msg:$authenticated_id\n" in predata
    assert "ratelimit = 5 / 7200s / per_rcpt / mailsec_rcpt:$authenticated_id" in predata
    assert predata.rstrip().endswith("accept")
    assert "ratelimit" not in exim.render_acl(build()).split("acl_mailsec_predata:", 1)[1].split("\n\n", 1)[0]


def _exim_config(effective):
    # what `exim -bP config` prints: leading blanks, the ACL conditions one per line
    return "begin acl\n" + "\n".join("    " + line.strip() if not line.endswith(":") else "  " + line for line in exim.render_acl(effective).splitlines())


def test_exim_readback_finds_the_limits_in_the_predata_acl_in_use():
    config = _exim_config(build(**LIMITED))
    assert er.sender_rate_limits(config, {"acl_smtp_predata": "acl_mailsec_predata"}) == {"messages": 3, "recipients": 5, "window": 7200}
    # another predata ACL in force: ours is not what Exim runs
    other = config + "\n  acl_other:\n    accept\n"
    assert er.sender_rate_limits(other, {"acl_smtp_predata": "acl_other"}) == {"messages": 0, "recipients": 0}
    assert er.sender_rate_limits(other, {"acl_smtp_predata": ""}) == {"messages": 0, "recipients": 0}
    assert er.sender_rate_limits(_exim_config(build()), {"acl_smtp_predata": "acl_mailsec_predata"}) == {"messages": 0, "recipients": 0}


def _listener(name, auth, check):
    return {"name": name, "role": "submission" if auth else "mx", "auth": auth, "sender_rate_check": check}


def _service(**overrides):
    service = {
        "startup": True,
        "conf": RULES,
        "listen": "127.0.0.1:10040",
        "running": True,
        "rules": postfix.sender_rate_rules({"messages": 3, "recipients": 5, "window": 7200}),
    }
    service.update(overrides)
    return service


def test_postfix_readback_of_the_service():
    wired = [_listener("smtp", False, None), _listener("submission", True, "127.0.0.1:10040"), _listener("submissions", True, "127.0.0.1:10040")]
    notes = []
    assert pr.sender_rate_limits(wired, _service(), notes) == {"messages": 3, "recipients": 5, "window": 7200} and notes == []
    assert pr.sender_rate_limits(wired, _service(running=False), [])["service"] == "stopped"
    assert pr.sender_rate_limits(wired, None, [])["service"] == "missing"
    assert pr.sender_rate_limits(wired, _service(listen="127.0.0.1:10099"), [])["service"] == "elsewhere"
    partial = [wired[0], wired[1], _listener("submissions", True, None)]
    assert pr.sender_rate_limits(partial, _service(), [])["service"] == "partial"
    assert pr.sender_rate_limits([_listener("submission", True, None)], _service(), []) == {"messages": 0, "recipients": 0}


def test_postfix_readback_reads_the_rules_postfwd_loads():
    files = {
        "/etc/default/postfwd": 'STARTUP=1\nCONF=%s\nINET=127.0.0.1\nPORT=10040\nRUNAS="postfw"\nARGS="--cache=0"\n' % RULES,
        RULES: "id=mailsec_messages; protocol_state==DATA; sasl_username=~.; action=rate(sasl_username/9/600/451 x)\n",
        "/run/postfwd.pid": "4242\n",
        "/proc/4242/cmdline": "/usr/sbin/postfwd2\x00--daemon\x00",
    }
    service = pr.read_sender_rate_service(files.get)
    assert service["listen"] == "127.0.0.1:10040" and service["running"] and service["conf"] == RULES
    assert postfix.parse_sender_rate_rules(service["rules"]) == {"messages": 9, "recipients": 0, "window": 600}
    assert pr.read_sender_rate_service({}.get) is None
    assert (
        pr.sender_rate_check(
            {"smtpd_data_restrictions": "reject_unauth_pipelining, check_policy_service { inet:127.0.0.1:10040, { default_action = 451 4.3.5 x } }"}
        )
        == "127.0.0.1:10040"
    )
    assert pr.sender_rate_check({"smtpd_data_restrictions": "reject_unauth_pipelining"}) is None


def test_drift_names_each_change():
    desired = build(**LIMITED)
    same = drift.compare_sender_rate_limits(desired, {"sender_rate_limits": {"messages": 3, "recipients": 5, "window": 7200}}, HOST)
    assert [f["verdict"] for f in same] == ["PASS", "PASS", "PASS"]
    off = drift.compare_sender_rate_limits(desired, {"sender_rate_limits": {"messages": 0, "recipients": 0}}, HOST)
    assert [(f["check"], f["detail"]) for f in off if f["verdict"] == "FAIL"] == [
        ("sender_rate_limits messages", "messages per login from 3 to 0: a stolen login sends without limit"),
        ("sender_rate_limits recipients", "recipients per login from 5 to 0: a stolen login sends without limit"),
    ]
    stopped = drift.compare_sender_rate_limits(desired, {"sender_rate_limits": {"messages": 3, "recipients": 5, "window": 7200, "service": "stopped"}}, HOST)
    assert [f["check"] for f in stopped if f["verdict"] == "FAIL"] == ["sender_rate_limits service"]
    longer = drift.compare_sender_rate_limits(desired, {"sender_rate_limits": {"messages": 3, "recipients": 5, "window": 86400}}, HOST)
    assert [f["detail"] for f in longer if f["verdict"] == "FAIL"] == ["window from 7200s to 86400s"]
    assert drift.compare_sender_rate_limits(desired, {}, HOST) == []


def test_exim_readback_of_the_auth_and_connection_brakes():
    effective = build(mailsec_relay_client_auth_rate_limit=12, mailsec_relay_client_connection_rate_limit=40)
    config = _exim_config(effective)
    options = {"acl_smtp_auth": "acl_mailsec_auth", "acl_smtp_connect": "acl_mailsec_connect"}
    assert er.brake_limits(config, options) == {"auth_rate": 12, "connection_rate": 40}
    # brakes removed behind Ansible's back: the AUTH ACL unset, the connect ACL without its ratelimit
    assert er.brake_limits(_exim_config(build(mailsec_relay_client_auth_rate_limit=12)), {"acl_smtp_connect": "acl_mailsec_connect"}) == {
        "auth_rate": 0,
        "connection_rate": 0,
    }
    # another connect ACL: its connection rate is unknown, so it is not reported
    assert er.brake_limits(config, {"acl_smtp_auth": "acl_mailsec_auth", "acl_smtp_connect": "acl_check_connect"}) == {"auth_rate": 12}
    findings = drift.compare_client_limits(effective, {"client_limits": {"auth_rate": 0, "connection_rate": 40}}, HOST)
    assert [f["detail"] for f in findings if f["verdict"] == "FAIL"] == ["client limit auth_rate from 12 to 0 (off)"]


def test_exim_readback_reads_nothing_from_a_config_without_the_acl_text():
    assert er.brake_limits("begin acl\n", {"acl_smtp_auth": "acl_mailsec_auth", "acl_smtp_connect": "acl_mailsec_connect"}) == {}
    assert er.sender_rate_limits("begin acl\n", {"acl_smtp_predata": "acl_mailsec_predata"}) is None
