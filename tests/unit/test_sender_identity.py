# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sender identity (issue 14): policy, Postfix and Exim rendering, readback, drift and verify plan."""

from __future__ import annotations

import copy
import json
import os
import sys

import pytest

try:
    from ansible_collections.mailsec.relay.plugins.module_utils import policy
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", ".cache", "collections"))
    from ansible_collections.mailsec.relay.plugins.module_utils import policy

from ansible_collections.mailsec.relay.plugins.module_utils import drift, exim, postfix, verify_plan  # noqa: E402
from ansible_collections.mailsec.relay.plugins.module_utils import exim_readback as er  # noqa: E402
from ansible_collections.mailsec.relay.plugins.module_utils import postfix_readback as pr  # noqa: E402

pytest.importorskip("netaddr")
HOST = "mx1.example.test"
HERE = os.path.join(os.path.dirname(__file__), "fixtures", "readback")


def variables(**extra):
    base = {
        "mailsec_relay_profile": "mx_submission",
        "mailsec_relay_tls_selfsigned": True,
        "mailsec_relay_local_domains": ["example.test"],
        "mailsec_relay_sasl_users": [{"name": "alice", "password": "s3cret-pw"}, {"name": "bob@example.test", "password": "s3cret-pw2"}],
        "mailsec_relay_sender_login_match": True,
    }
    base.update(extra)
    return base


def errors_of(values):
    with pytest.raises(policy.PolicyErrors) as caught:
        policy.build_policy(values, HOST)
    return dict((e.variable, e) for e in caught.value)


# ---- policy -----------------------------------------------------------------------------------


def test_default_is_off_and_owners_are_still_computed():
    effective = policy.build_policy(variables(mailsec_relay_sender_login_match=None), HOST)
    assert [item["sender_login_match"] for item in effective["listeners"]] == [False, False, False]
    assert effective["sender_logins"]["alice@example.test"] == ["alice"]


def test_owners_from_logins_and_aliases():
    effective = policy.build_policy(
        variables(
            mailsec_relay_sender_aliases=[
                {"login": "alice", "addresses": ["Postmaster@EXAMPLE.test.", "sales@example.test"]},
                {"login": "bob@example.test", "addresses": ["sales@example.test"]},
            ]
        ),
        HOST,
    )
    assert effective["sender_logins"] == {
        "alice@example.test": ["alice"],
        "alice@mx1.example.test": ["alice"],
        "bob@example.test": ["bob@example.test"],
        "postmaster@example.test": ["alice"],
        "sales@example.test": ["alice", "bob@example.test"],
    }
    assert dict((item["name"], item["sender_login_match"]) for item in effective["listeners"]) == {"smtp": False, "submission": True, "submissions": True}


def test_listener_key_overrides_the_global_default():
    listeners = [
        {"name": "smtp", "port": 25, "role": "mx"},
        {"name": "submission", "port": 587, "role": "submission", "sender_login_match": "no"},
        {"name": "submissions", "port": 465, "role": "submission"},
    ]
    effective = policy.build_policy(variables(mailsec_relay_listeners=listeners), HOST)
    assert [item["sender_login_match"] for item in effective["listeners"]] == [False, False, True]


@pytest.mark.parametrize(
    "extra, variable, words",
    [
        (
            {
                "mailsec_relay_listeners": [
                    {"name": "smtp", "port": 25, "role": "mx", "sender_login_match": True},
                    {"name": "submission", "port": 587, "role": "submission"},
                ]
            },
            "mailsec_relay_listeners[0].sender_login_match",
            "mx listeners never offer AUTH",
        ),
        (
            {
                "mailsec_relay_listeners": [{"name": "submission", "port": 587, "role": "submission", "auth": False, "sender_login_match": True}],
                "mailsec_relay_auth_relay": False,
            },
            "mailsec_relay_listeners[0].sender_login_match",
            "has no AUTH",
        ),
        (
            {"mailsec_relay_listeners": [{"name": "submission", "port": 587, "role": "submission", "sender_login_match": "maybe"}]},
            "mailsec_relay_listeners[0].sender_login_match",
            "expected a boolean",
        ),
        ({"mailsec_relay_sender_login_match": "sometimes"}, "mailsec_relay_sender_login_match", "expected a boolean"),
        ({"mailsec_relay_sasl_users": []}, "mailsec_relay_sender_login_match", "no login owns any address"),
        ({"mailsec_relay_sender_aliases": "alice"}, "mailsec_relay_sender_aliases", "expected a list"),
        ({"mailsec_relay_sender_aliases": ["alice"]}, "mailsec_relay_sender_aliases[0]", "expected a mapping"),
        ({"mailsec_relay_sender_aliases": [{"login": "al ice", "addresses": ["a@example.test"]}]}, "mailsec_relay_sender_aliases[0].login", "invalid login"),
        (
            {"mailsec_relay_sender_aliases": [{"login": "alice", "adresses": ["a@example.test"]}]},
            "mailsec_relay_sender_aliases[0].adresses",
            "did you mean addresses",
        ),
        ({"mailsec_relay_sender_aliases": [{"login": "alice", "addresses": []}]}, "mailsec_relay_sender_aliases[0].addresses", "no addresses"),
        (
            {"mailsec_relay_sender_aliases": [{"login": "alice", "addresses": ["example.test"]}]},
            "mailsec_relay_sender_aliases[0].addresses[0]",
            "not an address",
        ),
        (
            {"mailsec_relay_sender_aliases": [{"login": "alice", "addresses": ["a${run{x}}@example.test"]}]},
            "mailsec_relay_sender_aliases[0].addresses[0]",
            "cannot hold",
        ),
        (
            {"mailsec_relay_sender_aliases": [{"login": "alice", "addresses": ["a@exa mple.test"]}]},
            "mailsec_relay_sender_aliases[0].addresses[0]",
            "not a valid domain",
        ),
    ],
)
def test_bad_values_name_the_variable(extra, variable, words):
    errors = errors_of(variables(**extra))
    assert variable in errors, sorted(errors)
    assert words in str(errors[variable])
    assert "Fix:" in str(errors[variable])


def test_passwords_never_reach_the_owner_map():
    effective = policy.build_policy(variables(), HOST)
    assert "s3cret" not in json.dumps(effective)


# ---- Postfix ------------------------------------------------------------------------------------


def test_postfix_renders_the_login_map_and_the_check_on_enforcing_listeners_only():
    listeners = [
        {"name": "smtp", "port": 25, "role": "mx"},
        {"name": "submission", "port": 587, "role": "submission"},
        {"name": "submissions", "port": 465, "role": "submission", "sender_login_match": False},
    ]
    rendered = postfix.render_postfix(policy.build_policy(variables(mailsec_relay_listeners=listeners), HOST))
    assert rendered["main"]["smtpd_sender_login_maps"] == "hash:/etc/postfix/mailsec/sender_logins"
    table = [f for f in rendered["files"] if f["path"] == "/etc/postfix/mailsec/sender_logins"]
    assert len(table) == 1 and table[0]["map_type"] == "hash"
    assert "alice@example.test alice\n" in table[0]["content"]
    assert "bob@example.test bob@example.test\n" in table[0]["content"]
    restrictions = dict((m["name"], m["overrides"].get("smtpd_sender_restrictions")) for m in rendered["master"])
    assert restrictions["submission"].split(", ")[:2] == ["reject_authenticated_sender_login_mismatch", "permit_sasl_authenticated"]
    # Without AUTH MAIL is still refused with 530, hosted sender or not.
    assert restrictions["submission"].endswith("$" + postfix.AUTH_REQUIRED_PARAM)
    assert "login_mismatch" not in restrictions["submissions"]
    assert restrictions["smtp"] is None


def test_postfix_without_sender_identity_has_no_login_map():
    rendered = postfix.render_postfix(policy.build_policy(variables(mailsec_relay_sender_login_match=False), HOST))
    assert rendered["main"]["smtpd_sender_login_maps"] is None
    assert not [f for f in rendered["files"] if "sender_logins" in f["path"]]
    assert all("login_mismatch" not in (m["overrides"].get("smtpd_sender_restrictions") or "") for m in rendered["master"])


def test_postfix_readback_sees_the_check_only_with_a_map():
    assert pr.sender_login_match({"smtpd_sender_login_maps": "hash:/x", "smtpd_sender_restrictions": "reject_sender_login_mismatch"})
    assert pr.sender_login_match(
        {"smtpd_sender_login_maps": "hash:/x", "smtpd_sender_restrictions": "reject_authenticated_sender_login_mismatch, permit_sasl_authenticated"}
    )
    assert not pr.sender_login_match({"smtpd_sender_login_maps": "", "smtpd_sender_restrictions": "reject_sender_login_mismatch"})
    assert not pr.sender_login_match({"smtpd_sender_login_maps": "hash:/x", "smtpd_sender_restrictions": "permit_sasl_authenticated"})


def _postfix_raw(variant):
    data = {}
    for key in "nxMP":
        with open(os.path.join(HERE, "postfix", "%s_postconf_%s.txt" % (variant, key))) as handle:
            data[key] = handle.read()
    data["tables"] = {}
    return data


def test_postfix_readback_per_listener_from_captured_output():
    raw = _postfix_raw("hardened")
    plain = dict((item["port"], item["sender_login_match"]) for item in pr.interpret(raw)["policy"]["listeners"])
    assert set(plain.values()) == {False}
    raw["x"] += "smtpd_sender_login_maps = hash:/etc/postfix/mailsec/sender_logins\n"
    raw["P"] += "submission/inet/smtpd_sender_restrictions = reject_authenticated_sender_login_mismatch, permit_sasl_authenticated\n"
    enforced = dict((item["port"], item["sender_login_match"]) for item in pr.interpret(raw)["policy"]["listeners"])
    assert enforced[587] is True and enforced[25] is False and enforced[465] is False


# ---- Exim ----------------------------------------------------------------------------------------


def test_exim_acl_denies_unowned_senders_after_auth_on_enforcing_listeners():
    effective = policy.build_policy(variables(), HOST)
    acl = exim.render_acl(effective)
    mail_acl = acl.split("acl_mailsec_mail:", 1)[1].split("acl_mailsec_predata:", 1)[0]
    assert "!condition = ${if inlisti{$authenticated_id $sender_address}{<; alice alice@example.test ; " in mail_acl
    assert "bob@example.test bob@example.test" in mail_acl
    assert "message = 553 5.7.1 Sender address not owned by the authenticated login" in mail_acl
    block = mail_acl.split("# sender identity", 1)[1]
    assert "{eq{$received_port}{587}}{eq{$received_port}{465}}" in block and "{25}" not in block
    # The unauthenticated 530 comes first: no sender at all without AUTH on submission.
    assert mail_acl.index("530 5.7.0 Authentication required") < mail_acl.index("# sender identity")


def test_exim_acl_unchanged_without_sender_identity():
    effective = policy.build_policy(variables(mailsec_relay_sender_login_match=False), HOST)
    assert "authenticated_id" not in exim.render_acl(effective)


def test_exim_bh_matrix_sends_as_an_owned_address_and_checks_a_foreign_one():
    effective = policy.build_policy(variables(), HOST)
    checks = exim.derive_checks(effective)
    authenticated = [c for c in checks if c.get("authenticated") and c["port"] in (587, 465)]
    owned = [c for c in authenticated if c["expect"] == "accept"]
    assert owned and all((c["user"], c["sender"]) == ("alice", "alice@example.test") for c in owned)
    refused = [c for c in authenticated if c["sender"].startswith("mailsec-not-owned@")]
    assert sorted(c["port"] for c in refused) == [465, 587] and all(c["expect"] == "deny" for c in refused)
    plain = exim.derive_checks(policy.build_policy(variables(mailsec_relay_sender_login_match=False), HOST))
    assert not [c for c in plain if c.get("sender", "").startswith("mailsec-not-owned@")]


def _exim_raw_with_identity(desired, mail_reply):
    with open(os.path.join(HERE, "exim", "hardened.json")) as handle:
        raw = json.load(handle)
    for check in er.sender_identity_checks(desired):
        output = "220 x ESMTP\n250-x Hello\n250 HELP\n%s\n" % mail_reply
        if mail_reply.startswith("250"):
            output += "250 Accepted\n"
        raw["bh"].append({"check": check, "output": output})
    return raw


def test_exim_readback_reads_sender_identity_from_bh_sessions():
    with open(os.path.join(HERE, "sample_policy_exim.json")) as handle:
        values = json.load(handle)
    values["mailsec_relay_sender_login_match"] = True
    desired = policy.build_policy(values, "exim-drift")
    checks = er.sender_identity_checks(desired)
    assert checks and all(c["authenticated"] and c["expect"] == "deny" for c in checks)

    enforced = er.interpret(_exim_raw_with_identity(desired, "553 5.7.1 Sender address not owned"), desired)
    ports = dict((item["port"], item) for item in enforced["policy"]["listeners"])
    assert ports[587]["sender_login_match"] is True and "sender_login_match" not in ports[25]
    assert not [f for f in drift.compare(desired, enforced["policy"], "exim") if f["verdict"] == "FAIL" and "sender" in f["check"]]

    opened = er.interpret(_exim_raw_with_identity(desired, "250 OK"), desired)
    fails = [f for f in drift.compare(desired, opened["policy"], "exim") + drift.spot_check_findings("exim", opened["spot_checks"]) if f["verdict"] == "FAIL"]
    assert any(f["check"].endswith("sender_login_match") and "stolen login" in f["detail"] for f in fails)
    assert any(f["check"].startswith("spot ") and "another sender" in f["check"] for f in fails)


# ---- drift and verify plan ---------------------------------------------------------------------


def test_drift_flags_a_lost_sender_check_and_ignores_readbacks_without_the_key():
    desired = policy.build_policy(variables(), HOST)
    actual = copy.deepcopy(desired)
    assert not [f for f in drift.compare(desired, actual, HOST) if f["verdict"] == "FAIL"]
    actual["listeners"][1]["sender_login_match"] = False
    fails = [f for f in drift.compare(desired, actual, HOST) if f["verdict"] == "FAIL"]
    assert [f["check"] for f in fails] == ["listener *:587 sender_login_match"]
    for item in actual["listeners"]:
        item.pop("sender_login_match")
    assert not [f for f in drift.compare(desired, actual, HOST) if f["verdict"] == "FAIL"]


def test_verify_plan_turns_t10_on_where_the_policy_enforces_it():
    users = [{"name": "alice", "password": "pw"}]
    target = verify_plan.build_target("mx1", policy.build_policy(variables(), HOST), "198.51.100.100", ["198.51.100.10"], users)
    ports = dict((item["port"], item) for item in target["listeners"])
    assert ports[587]["sender_login_match"] is True and ports[465]["sender_login_match"] is True
    assert "sender_login_match" not in ports[25]
    plain = verify_plan.build_target(
        "mx1", policy.build_policy(variables(mailsec_relay_sender_login_match=False), HOST), "198.51.100.100", ["198.51.100.10"], users
    )
    assert all("sender_login_match" not in item for item in plain["listeners"])


def test_owner_logins_are_lower_case_as_dovecot_reports_them():
    effective = policy.build_policy(
        variables(
            mailsec_relay_sasl_users=[{"name": "Alice", "password": "pw"}],
            mailsec_relay_sender_aliases=[{"login": "Carol@Example.test", "addresses": ["c@example.test"]}],
        ),
        HOST,
    )
    assert effective["sender_logins"] == {
        "alice@example.test": ["alice"],
        "alice@mx1.example.test": ["alice"],
        "c@example.test": ["carol@example.test"],
        "carol@example.test": ["carol@example.test"],
    }
