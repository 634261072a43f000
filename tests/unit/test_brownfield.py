# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Brownfield policy pieces (issue 15): postscreen and the hosted domain kinds, from the policy through
the Postfix renderer to the readback and drift."""

from __future__ import annotations

import os
import sys

import pytest

try:
    from ansible_collections.mailsec.relay.plugins.module_utils import policy
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", ".cache", "collections"))
    from ansible_collections.mailsec.relay.plugins.module_utils import policy

from ansible_collections.mailsec.relay.plugins.module_utils import drift  # noqa: E402
from ansible_collections.mailsec.relay.plugins.module_utils import postfix as pf  # noqa: E402
from ansible_collections.mailsec.relay.plugins.module_utils import postfix_readback as pr  # noqa: E402

BROWNFIELD = {
    "mailsec_relay_hostname": "mx.example.test",
    "mailsec_relay_local_domains": ["local.example.test"],
    "mailsec_relay_virtual_mailbox_domains": ["example.test"],
    "mailsec_relay_virtual_alias_domains": ["alias.example.test"],
    "mailsec_relay_relay_domains": ["partner.example.test", "open.example.test"],
    "mailsec_relay_relay_recipients": ["alice@partner.example.test", "@open.example.test"],
    "mailsec_relay_blocked_domains": ["Blocked.example.test."],
    "mailsec_relay_postscreen": True,
    "mailsec_relay_postscreen_pregreet": "drop",
}


def build(variables):
    return policy.build_policy(variables, "mx.example.test")


def errors(variables):
    with pytest.raises(policy.PolicyErrors) as info:
        build(variables)
    return dict((e.variable, e) for e in info.value.errors)


def test_hosted_kinds_in_the_effective_policy():
    effective = build(BROWNFIELD)
    assert effective["virtual_mailbox_domains"] == ["example.test"]
    assert effective["virtual_mailbox_maps"] == []  # the host's own maps stay
    assert effective["blocked_domains"] == ["blocked.example.test"]
    assert effective["relay_recipient_validation"] is True
    # postmaster of each relay domain is added (RFC 5321 4.5.1); a catch-all needs none.
    assert effective["relay_recipients"] == ["@open.example.test", "alice@partner.example.test", "postmaster@partner.example.test"]
    assert effective["postscreen"] is True and effective["postscreen_pregreet"] == "drop"


def test_defaults_keep_what_the_host_has():
    effective = build({})
    assert effective["postscreen"] is None
    assert effective["relay_recipient_validation"] is False and effective["blocked_domains"] == []


def test_a_domain_has_one_kind():
    found = errors(dict(BROWNFIELD, mailsec_relay_blocked_domains=["example.test"]))
    assert "also in mailsec_relay_virtual_mailbox_domains[0]" in found["mailsec_relay_blocked_domains[0]"].message


def test_bad_maps_recipients_and_pregreet_name_the_variable_and_fix():
    found = errors(
        dict(
            BROWNFIELD,
            mailsec_relay_virtual_mailbox_maps=["vmailbox", "hash:relative/path", "mysql:/etc/postfix/mysql-vmailbox.cf"],
            mailsec_relay_relay_recipients=["alice@partner.example.test", "bob@elsewhere.test", "nobody"],
            mailsec_relay_postscreen_pregreet="enforc",
        )
    )
    assert "type:name" in found["mailsec_relay_virtual_mailbox_maps[0]"].message
    assert "absolute path" in found["mailsec_relay_virtual_mailbox_maps[1]"].message
    assert "mailsec_relay_virtual_mailbox_maps[2]" not in found
    assert "add elsewhere.test to mailsec_relay_relay_domains" in found["mailsec_relay_relay_recipients[1]"].fix
    assert "not an address" in found["mailsec_relay_relay_recipients[2]"].message
    assert "did you mean enforce" in found["mailsec_relay_postscreen_pregreet"].message
    # open.example.test lost its catch-all: every mail for it would be refused.
    assert "all its mail would be refused" in found["mailsec_relay_relay_domains[1]"].message


def test_postscreen_needs_one_port_25_mx_listener():
    found = errors(
        {
            "mailsec_relay_postscreen": True,
            "mailsec_relay_listeners": [
                {"name": "smtp", "port": 25, "role": "mx", "address": "198.51.100.10"},
                {"name": "smtp2", "port": 25, "role": "mx", "address": "198.51.100.11"},
            ],
        }
    )
    assert "one port-25 listener" in found["mailsec_relay_postscreen"].message


def test_unknown_variable_typos_are_caught_for_the_new_names():
    found = errors({"mailsec_relay_blocked_domain": ["x.test"]})
    assert "did you mean mailsec_relay_blocked_domains" in found["mailsec_relay_blocked_domain"].message


def test_postfix_renders_postscreen_front_and_domain_kinds():
    rendered = pf.render_postfix(build(BROWNFIELD))
    main, master = rendered["main"], dict(((s["name"], s["type"]), s) for s in rendered["master"])
    assert master[("smtp", "inet")]["command"] == "postscreen" and master[("smtp", "inet")]["maxproc"] == "1"
    assert master[("smtpd", "pass")]["command"] == "smtpd"
    assert master[("smtpd", "pass")]["overrides"]["smtpd_sasl_auth_enable"] == "no"
    assert ("dnsblog", "unix") in master and ("tlsproxy", "unix") in master
    assert main["postscreen_greet_action"] == "drop"
    assert main["virtual_mailbox_domains"] == "example.test"
    assert "virtual_mailbox_maps" not in main  # the host's maps are not touched
    assert main["relay_recipient_maps"] == "hash:/etc/postfix/mailsec/relay_recipients"
    assert main["smtpd_relay_restrictions"].startswith("check_recipient_access hash:/etc/postfix/mailsec/blocked_domains, ")
    tables = dict((f["path"].rsplit("/", 1)[1], f["content"]) for f in rendered["files"])
    assert "blocked.example.test REJECT 5.7.1" in tables["blocked_domains"]
    assert "@open.example.test OK" in tables["relay_recipients"]


def test_postscreen_unset_marks_the_port_25_listener_keep_front():
    rendered = pf.render_postfix(build({"mailsec_relay_hostname": "mx.example.test"}))
    smtp = [s for s in rendered["master"] if s["name"] == "smtp"][0]
    assert smtp["keep_front"] is True and smtp["command"] == "smtpd"
    assert "postscreen_greet_action" not in rendered["main"]
    rendered = pf.render_postfix(build({"mailsec_relay_hostname": "mx.example.test", "mailsec_relay_postscreen": False}))
    assert "keep_front" not in [s for s in rendered["master"] if s["name"] == "smtp"][0]


def readback_of(rendered, tables_removed=()):
    """The rendered settings as postconf would print them, then interpreted."""
    main = dict((k, v) for k, v in rendered["main"].items() if v is not None)
    text_n = "".join("%s = %s\n" % item for item in sorted(main.items()))
    lines_m, lines_p = [], []
    for s in rendered["master"]:
        lines_m.append(pf.format_master_entry(dict(s, overrides={})))
        lines_p += ["%s/%s/%s = %s" % (s["name"], s["type"], k, v) for k, v in s["overrides"].items()]
    tables = dict((f["path"], f["content"]) for f in rendered["files"])
    for path in tables_removed:
        tables[path] = None
    raw = {"n": text_n, "x": text_n + "mail_version = 3.7.11\n", "M": "\n".join(lines_m), "P": "\n".join(lines_p), "tables": tables}
    return pr.interpret(raw)


def test_readback_and_drift_of_the_hosted_kinds():
    effective = build(BROWNFIELD)
    rendered = pf.render_postfix(effective)
    actual = readback_of(rendered)["policy"]
    assert actual["postscreen"] is True
    assert actual["blocked_domains"] == ["blocked.example.test"]
    assert actual["relay_recipient_validation"] is True
    assert actual["virtual_mailbox_domains"] == ["example.test"]
    findings = dict((f["check"], f) for f in drift.compare_hosted(effective, actual, "mx"))
    assert set(findings) == {"virtual_mailbox_domains", "virtual_alias_domains", "blocked_domains", "relay_recipient_validation", "postscreen"}
    assert all(f["verdict"] == "PASS" for f in findings.values()), findings


def test_drift_finds_a_removed_validation_map():
    effective = build(BROWNFIELD)
    rendered = pf.render_postfix(effective)
    table = "/etc/postfix/mailsec/relay_recipients"
    # The map file deleted...
    readback = readback_of(rendered, tables_removed=[table])
    assert any("recipient validation does not work" in note for note in readback["notes"])
    found = dict((f["check"], f) for f in drift.compare(effective, readback["policy"], "mx"))
    assert found["relay_recipient_validation"]["verdict"] == "FAIL"
    assert "backscatter" in found["relay_recipient_validation"]["detail"]
    # ...or unset in main.cf.
    rendered["main"]["relay_recipient_maps"] = None
    found = dict((f["check"], f) for f in drift.compare(effective, readback_of(rendered)["policy"], "mx"))
    assert found["relay_recipient_validation"]["verdict"] == "FAIL"


def test_drift_finds_a_removed_blocked_domain_and_postscreen():
    effective = build(BROWNFIELD)
    rendered = pf.render_postfix(effective)
    table = [f for f in rendered["files"] if f["path"].endswith("blocked_domains")][0]
    table["content"] = "# emptied by hand\n"
    master = [s for s in rendered["master"] if s["name"] != "smtp"]
    master.append({"name": "smtp", "type": "inet", "command": "smtpd", "overrides": {}})
    rendered["master"] = master
    found = dict((f["check"], f) for f in drift.compare(effective, readback_of(rendered)["policy"], "mx"))
    assert found["blocked_domains"]["verdict"] == "FAIL" and "missing blocked.example.test" in found["blocked_domains"]["detail"]
    assert found["postscreen"]["detail"] == "postscreen from True to False"


def test_unset_postscreen_and_kinds_are_never_drift():
    effective = build({"mailsec_relay_hostname": "mx.example.test"})
    rendered = pf.render_postfix(build(BROWNFIELD))
    findings = drift.compare_hosted(effective, readback_of(rendered)["policy"], "mx")
    assert [f["check"] for f in findings] == ["blocked_domains"]  # blocked: the policy blocks none, the host does


def test_exim_renders_the_hosted_kinds_and_checks_them_with_bh():
    from ansible_collections.mailsec.relay.plugins.module_utils import exim

    effective = build(dict(BROWNFIELD, mailsec_relay_postscreen=None))
    main = exim.render_main(effective)
    assert "MAIN_LOCAL_DOMAINS = @ : localhost : local.example.test : example.test : alias.example.test" in main
    assert "domainlist mailsec_blocked_domains = blocked.example.test" in main
    acl = exim.render_acl(effective)
    assert "  deny    domains = +mailsec_blocked_domains\n          message = 554 5.7.1" in acl
    assert "!recipients = <; *@open.example.test ; alice@partner.example.test ; postmaster@partner.example.test" in acl
    # The validation comes before the inbound accept, the blocked check before every grant.
    assert acl.index("!recipients") < acl.index("# inbound on mx listeners")
    assert acl.index("+mailsec_blocked_domains") < acl.index("+mailsec_never_relay_hosts")
    checks = dict((c["name"], c) for c in exim.derive_checks(effective))
    unknown = [c for name, c in checks.items() if "unknown in partner.example.test" in name]
    blocked = [c for name, c in checks.items() if "blocked blocked.example.test" in name]
    assert unknown and all(c["expect"] == "deny" for c in unknown)
    assert blocked and all(c["expect"] == "deny" for c in blocked)
    assert all(c["expect"] == "accept" for name, c in checks.items() if "external" in name and "domain partner" in name)


def test_exim_reads_file_recipient_maps_and_refuses_others():
    from ansible_collections.mailsec.relay.plugins.module_utils import exim

    effective = build(dict(BROWNFIELD, mailsec_relay_relay_recipients=[], mailsec_relay_relay_recipient_maps=["hash:/etc/postfix/relay_recipients"]))
    assert exim.relay_recipient_list(effective) == "<; lsearch*@;/etc/postfix/relay_recipients"
    effective["relay_recipient_maps"] = ["mysql:/etc/postfix/mysql-relay.cf"]
    with pytest.raises(exim.EximError, match="only file tables"):
        exim.relay_recipient_list(effective)


def test_verify_plan_expects_every_hosted_kind_and_the_refusals():
    from ansible_collections.mailsec.relay.plugins.module_utils import verify_plan

    effective = build(BROWNFIELD)
    target = verify_plan.build_target("mx", effective, "203.0.113.100", ["203.0.113.10"])
    assert target["local_domains"] == ["local.example.test", "example.test", "alias.example.test"]
    assert target["relay_domains"] == ["open.example.test", "partner.example.test"]
    # open.example.test accepts every name (@open.example.test): no unknown-recipient probe there.
    assert target["refused_recipients"] == [
        {"address": "mailsec-probe-unknown-recipient@partner.example.test", "kind": "unknown"},
        {"address": "postmaster@blocked.example.test", "kind": "blocked"},
    ]
    # Where the vantage cannot deliver inbound, nothing is expected either way.
    effective["listeners"][0]["connect_allow"] = ["198.51.100.0/24"]
    target = verify_plan.build_target("mx", effective, "203.0.113.100", ["203.0.113.10"])
    assert "refused_recipients" not in target and target["local_domains"] == []
    assert "refused_recipients" not in verify_plan.build_target("mx", build({}), "203.0.113.100", ["203.0.113.10"])


def test_content_filter_and_milters_rendered_with_a_loopback_reinjection_listener():
    effective = build(
        {
            "mailsec_relay_hostname": "mx.example.test",
            "mailsec_relay_content_filter": {"next_hop": "[127.0.0.1]:10024", "reinject_port": "10025"},
            "mailsec_relay_milters": ["inet:127.0.0.1:8891"],
        }
    )
    assert effective["content_filter"] == {"next_hop": "[127.0.0.1]:10024", "reinject_address": "127.0.0.1", "reinject_port": 10025}
    rendered = pf.render_postfix(effective)
    assert rendered["main"]["content_filter"] == "mailsec-filter:[127.0.0.1]:10024"
    assert rendered["main"]["smtpd_milters"] == "inet:127.0.0.1:8891"
    master = dict((s["name"], s) for s in rendered["master"])
    reinject = master["127.0.0.1:10025"]["overrides"]
    assert reinject["mynetworks"] == "127.0.0.0/8" and reinject["content_filter"] == ""
    assert reinject["smtpd_relay_restrictions"] == "permit_mynetworks, reject"
    assert "no_milters" in reinject["receive_override_options"]
    # Read back: a listener of its own, relaying for loopback only, which drift accepts.
    readback = readback_of(rendered)
    mine = [item for item in readback["policy"]["listeners"] if item["port"] == 10025][0]
    assert mine["address"] == "127.0.0.1" and mine["grants"] == ["127.0.0.0/8"]
    found = [f for f in drift.compare(effective, readback["policy"], "mx") if f["check"] == "listener 127.0.0.1:10025"]
    assert found[0]["verdict"] == "PASS" and "relays for loopback only" in found[0]["detail"]


def test_content_filter_and_milter_errors():
    found = errors(
        {
            "mailsec_relay_content_filter": {"next_hop": "127.0.0.1:10024", "reinject_address": "203.0.113.10", "reinject_prot": 1},
            "mailsec_relay_milters": ["opendkim"],
        }
    )
    assert "did you mean reinject_port" in found["mailsec_relay_content_filter.reinject_prot"].message
    assert "open relay" in found["mailsec_relay_content_filter.reinject_address"].message
    assert "[address]:port" in found["mailsec_relay_content_filter.next_hop"].message
    assert "inet:host:port" in found["mailsec_relay_milters[0]"].fix


def test_a_reinjection_listener_open_to_the_world_is_drift():
    effective = build({"mailsec_relay_hostname": "mx.example.test", "mailsec_relay_content_filter": {"next_hop": "[127.0.0.1]:10024"}})
    rendered = pf.render_postfix(effective)
    for service in rendered["master"]:
        if service["name"] == "127.0.0.1:10025":
            service["overrides"]["mynetworks"] = "0.0.0.0/0"
    found = [f for f in drift.compare(effective, readback_of(rendered)["policy"], "mx") if f["check"] == "listener 127.0.0.1:10025"]
    assert found[0]["verdict"] == "FAIL"
