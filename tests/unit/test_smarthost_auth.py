# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Authenticated smarthost (issue 14, outbound): policy, rendering, readback and drift.

The password must never reach the effective policy, an error message, a rendered file or a readback.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.mailsec.relay.plugins.module_utils import drift, exim, policy, postfix, readback_common
from ansible_collections.mailsec.relay.plugins.module_utils import exim_readback as er
from ansible_collections.mailsec.relay.plugins.module_utils import postfix_readback as pr

pytest.importorskip("netaddr")
PASSWORD = "Sm4rt-host^pw;x:y"
NULL_CLIENT = {
    "mailsec_relay_profile": "null_client",
    "mailsec_relay_hostname": "app1.example.test",
    "mailsec_relay_smarthost": "[smarthost.example.test]:587",
    "mailsec_relay_smarthost_tls": "verify",
    "mailsec_relay_smarthost_username": "app1@example.test",
    "mailsec_relay_smarthost_password": PASSWORD,
}


def build(**extra):
    values = dict(NULL_CLIENT, **extra)
    return policy.build_policy({k: v for k, v in values.items() if v is not None}, "app1.example.test")


def errors_of(**extra):
    with pytest.raises(policy.PolicyErrors) as caught:
        build(**extra)
    return list(caught.value)


def test_effective_policy_has_the_user_but_never_the_password():
    effective = build()
    assert effective["smarthost_auth"] == {"username": "app1@example.test"}
    assert effective["smarthost_tls"] == "verify"
    assert effective["smarthost_tls_ca_file"] == policy.SYSTEM_CA_FILE
    assert PASSWORD not in json.dumps(effective)


def test_relay_hub_gets_credentials_too():
    effective = build(mailsec_relay_profile="relay_hub", mailsec_relay_networks=["198.51.100.32/28"], mailsec_relay_smarthost_tls="encrypt")
    assert effective["smarthost_auth"] == {"username": "app1@example.test"} and effective["smarthost_tls_ca_file"] is None


@pytest.mark.parametrize(
    "values, variable, words",
    [
        ({"mailsec_relay_smarthost_password": None}, "mailsec_relay_smarthost_password", "without a password"),
        ({"mailsec_relay_smarthost_username": None}, "mailsec_relay_smarthost_password", "without a user name"),
        ({"mailsec_relay_smarthost_username": "bad user"}, "mailsec_relay_smarthost_username", "not a valid SASL user name"),
        ({"mailsec_relay_smarthost_password": "has blank"}, "mailsec_relay_smarthost_password", "printable ASCII"),
        ({"mailsec_relay_smarthost_password": "line\nbreak"}, "mailsec_relay_smarthost_password", "printable ASCII"),
        ({"mailsec_relay_smarthost_password": "x" * 257}, "mailsec_relay_smarthost_password", "printable ASCII"),
        ({"mailsec_relay_smarthost_password": 12345}, "mailsec_relay_smarthost_password", "printable ASCII"),
        ({"mailsec_relay_smarthost_tls": "none"}, "mailsec_relay_smarthost_tls", "without required TLS"),
        ({"mailsec_relay_smarthost_tls": None}, "mailsec_relay_smarthost_tls", "without required TLS"),
        ({"mailsec_relay_smarthost": None, "mailsec_relay_smarthost_tls": None}, "mailsec_relay_smarthost_username", "no smarthost"),
        ({"mailsec_relay_smarthost_tls_ca_file": "relative/ca.pem"}, "mailsec_relay_smarthost_tls_ca_file", "not an absolute path"),
        (
            {"mailsec_relay_smarthost_tls": "encrypt", "mailsec_relay_smarthost_tls_ca_file": "/etc/ca.pem"},
            "mailsec_relay_smarthost_tls_ca_file",
            "not verified",
        ),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(values, variable, words):
    errors = errors_of(**values)
    named = [e for e in errors if e.variable == variable]
    assert named and words in named[0].message, [str(e) for e in errors]
    # No message ever carries the password (or the rejected one).
    for error in errors:
        for secret in (PASSWORD, "has blank", "line\nbreak"):
            assert secret not in str(error)


def test_postfix_renders_auth_and_verification_but_no_secret():
    rendered = postfix.render_postfix(build())
    main = rendered["main"]
    assert main["relayhost"] == "[smarthost.example.test]:587"
    assert main["smtp_tls_security_level"] == "secure" and main["smtp_tls_CAfile"] == policy.SYSTEM_CA_FILE
    assert main["smtp_sasl_auth_enable"] == "yes"
    assert main["smtp_sasl_password_maps"] == "hash:/etc/postfix/sasl/mailsec_smarthost_passwd"
    assert main["smtp_sasl_security_options"] == "noanonymous" and main["smtp_sasl_tls_security_options"] == "noanonymous"
    assert main["smtp_sasl_auth_soft_bounce"] == "yes"  # a refused login defers: fail closed
    assert PASSWORD not in json.dumps(rendered)


def test_postfix_encrypt_without_auth_writes_no_sasl_settings():
    main = postfix.render_postfix(build(mailsec_relay_smarthost_username=None, mailsec_relay_smarthost_password=None, mailsec_relay_smarthost_tls="encrypt"))[
        "main"
    ]
    assert main["smtp_tls_security_level"] == "encrypt"
    assert not [name for name in main if name.startswith("smtp_sasl_")] and "smtp_tls_CAfile" not in main


def test_exim_renders_transport_authenticator_and_router_but_no_secret():
    files = exim.render(build())
    assert PASSWORD not in json.dumps(files)
    router = files[exim.ROUTER_FILE]["content"]
    assert "transport = mailsec_smarthost_smtp" in router and "route_data = <;smarthost.example.test:587 byname\n" in router
    transport = files[exim.TRANSPORT_FILE]["content"]
    for line in (
        "hosts_require_tls = *",
        "hosts_require_auth = *",
        "tls_verify_hosts = *",
        "tls_verify_certificates = %s" % policy.SYSTEM_CA_FILE,
        "tls_verify_cert_hostnames = *",
    ):
        assert "\n  %s\n" % line in transport
    # The login is Debian's "plain" client authenticator, fed from passwd.client by the role: nothing rendered carries it.
    assert not [path for path in files if path.startswith("/etc/exim4/conf.d/auth/") and "smarthost" in path]
    assert exim.settings(build())["smarthost_passwd_key"] == "smarthost.example.test"


def test_exim_without_auth_or_verify_keeps_debians_transport():
    files = exim.render(build(mailsec_relay_smarthost_username=None, mailsec_relay_smarthost_password=None, mailsec_relay_smarthost_tls="encrypt"))
    assert files[exim.TRANSPORT_FILE] == {"state": "absent"}
    assert "transport = remote_smtp" in files[exim.ROUTER_FILE]["content"]


@pytest.mark.parametrize(
    "smarthost, host",
    [("[smarthost.example.test]:587", "smarthost.example.test"), ("[2001:db8::25]:25", "2001:db8::25"), ("relay.example.test", "relay.example.test")],
)
def test_exim_smarthost_host(smarthost, host):
    assert exim.smarthost_host(smarthost) == host
    # passwd.client keys end at the first ':' unless quoted (lsearch).
    assert exim.smarthost_passwd_key(smarthost) == ('"%s"' % host if ":" in host else host)


def test_grammar_refuses_a_forged_username():
    effective = build()
    effective["smarthost_auth"] = {"username": "x\n  driver = plaintext"}
    with pytest.raises(exim.EximError):
        exim.render(effective)
    with pytest.raises(postfix.PostfixError):
        postfix.render_postfix(effective)


def fake_files(content, mode="0600", owner="root", group="root"):
    return (lambda path: content), (lambda path: {"owner": owner, "group": group, "mode": mode})


def postfix_raw(main_text, credentials=None):
    return {"x": main_text, "n": "", "M": "", "P": "", "tables": {}, "smarthost_credentials": credentials}


def test_credentials_file_reads_the_user_never_the_password():
    read, stat = fake_files("[smarthost.example.test]:587 app1@example.test:%s\n" % PASSWORD)
    info = readback_common.credentials_file("/etc/postfix/sasl/mailsec_smarthost_passwd", read, stat, key="[smarthost.example.test]:587")
    assert info["username"] == "app1@example.test" and info["mode"] == "0600" and PASSWORD not in json.dumps(info)
    assert readback_common.credentials_file("/x", read, lambda path: None) == {"path": "/x", "exists": False}


MAIN = (
    "myhostname = app1.example.test\nrelayhost = [smarthost.example.test]:587\nsmtp_tls_security_level = secure\n"
    "smtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt\nsmtp_sasl_auth_enable = yes\n"
    "smtp_sasl_password_maps = hash:/etc/postfix/sasl/mailsec_smarthost_passwd\n"
)


def test_postfix_readback_and_drift():
    desired = build()
    read, stat = fake_files("[smarthost.example.test]:587 app1@example.test:%s\n" % PASSWORD)
    credentials = readback_common.credentials_file("/etc/postfix/sasl/mailsec_smarthost_passwd", read, stat, key="[smarthost.example.test]:587")
    actual = pr.interpret(postfix_raw(MAIN, credentials))["policy"]
    assert actual["smarthost_tls"] == "verify" and actual["smarthost_auth"]["username"] == "app1@example.test"
    verdicts = {f["check"]: f["verdict"] for f in drift.compare(desired, actual, "app1")}
    assert verdicts["smarthost_tls"] == verdicts["smarthost_auth"] == verdicts["smarthost credentials file"] == verdicts["smarthost_tls_ca_file"] == "PASS"
    other_ca = pr.interpret(postfix_raw(MAIN.replace("ca-certificates.crt", "other.pem"), credentials))["policy"]
    assert {f["check"]: f["verdict"] for f in drift.compare(desired, other_ca, "app1")}["smarthost_tls_ca_file"] == "FAIL"

    # AUTH switched off on the host, and a world-readable credentials file: both are drift.
    off = pr.interpret(postfix_raw(MAIN.replace("smtp_sasl_auth_enable = yes", "smtp_sasl_auth_enable = no"), credentials))["policy"]
    found = {f["check"]: f for f in drift.compare(desired, off, "app1")}
    assert found["smarthost_auth"]["verdict"] == "FAIL" and "to off" in found["smarthost_auth"]["detail"]
    read, stat = fake_files("[smarthost.example.test]:587 app1@example.test:%s\n" % PASSWORD, mode="0644")
    loose = dict(actual, smarthost_auth={"username": "app1@example.test", "file": readback_common.credentials_file("/p", read, stat)})
    found = {f["check"]: f for f in drift.compare(desired, loose, "app1")}
    assert found["smarthost credentials file"]["verdict"] == "FAIL" and "other users may read it" in found["smarthost credentials file"]["detail"]
    # Encrypt only on the host where the policy wants verification.
    weaker = pr.interpret(postfix_raw(MAIN.replace("= secure", "= encrypt"), credentials))["policy"]
    assert {f["check"]: f["verdict"] for f in drift.compare(desired, weaker, "app1")}["smarthost_tls"] == "FAIL"


def test_no_finding_when_neither_side_authenticates():
    desired = build(mailsec_relay_smarthost_username=None, mailsec_relay_smarthost_password=None, mailsec_relay_smarthost_tls="encrypt")
    actual = pr.interpret(postfix_raw(MAIN.replace("smtp_sasl_auth_enable = yes", "smtp_sasl_auth_enable = no")))["policy"]
    assert actual["smarthost_auth"] is None
    assert "smarthost_auth" not in [f["check"] for f in drift.compare(desired, actual, "app1")]


TRANSPORTS = """
remote_smtp transport:
driver = smtp
hosts_require_tls =

mailsec_smarthost_smtp transport:
driver = smtp
hosts_require_auth = *
hosts_require_tls = *
tls_verify_certificates = /etc/ssl/certs/ca-certificates.crt
tls_verify_hosts = *
"""


def test_exim_smarthost_settings_readback():
    text = "# Debian's comment\nother.example.test:someone:x\nsmarthost.example.test:app1@example.test:%s\n" % PASSWORD
    read, stat = fake_files(text, mode="0640", group="Debian-exim")
    credentials = readback_common.credentials_file(exim.SMARTHOST_PASSWD_FILE, read, stat, key="smarthost.example.test", key_separator=":")
    assert credentials["username"] == "app1@example.test"
    quoted = readback_common.credentials_file("/p", lambda path: '"2001:db8::25":u@example.test:pw\n', stat, key='"2001:db8::25"', key_separator=":")
    assert quoted["username"] == "u@example.test"
    router = {"transport": "mailsec_smarthost_smtp"}
    authenticators = {exim.SMARTHOST_AUTHENTICATOR: {"driver": "plaintext"}}
    got = er.smarthost_settings(router, er.parse_blocks(TRANSPORTS, "transport"), authenticators, credentials)
    assert got["smarthost_tls"] == "verify" and got["smarthost_auth"]["username"] == "app1@example.test"
    assert PASSWORD not in json.dumps(got)
    verdicts = {f["check"]: f["verdict"] for f in drift.compare_smarthost_auth(build(), got, "app1")}
    assert verdicts == {"smarthost_auth": "PASS", "smarthost credentials file": "PASS"}
    # Debian's transport without hosts_require_tls: no TLS, no AUTH.
    plain = er.smarthost_settings({"transport": "remote_smtp"}, er.parse_blocks(TRANSPORTS, "transport"), authenticators, credentials)
    assert plain == {"smarthost_tls": "none", "smarthost_auth": None}


@pytest.mark.parametrize(
    "route_data, hosts",
    [("<;smarthost.example.test:587 byname", "<;smarthost.example.test:587"), ("<; [203.0.113.120]:25", "<; [203.0.113.120]:25"), ("", None)],
)
def test_exim_readback_drops_lookup_options(route_data, hosts):
    assert er._route_hosts(route_data) == hosts
    if hosts:
        assert drift.smarthost_text(drift.normalize_smarthost(er._route_hosts(route_data))) in ("smarthost.example.test:587", "[203.0.113.120]:25")


def test_exim_readback_takes_the_policy_form_of_the_same_smarthost():
    # manualroute has no brackets: '<;smarthost.example.test:587 byname' is the policy's '[smarthost.example.test]:587'.
    with open(os.path.join(os.path.dirname(__file__), "fixtures", "readback", "exim", "hardened.json")) as handle:
        raw = json.load(handle)
    raw["config"] = raw["config"].replace("route_data = <; 203.0.113.120:25", "route_data = <;smarthost.example.test:587 byname")
    assert er.interpret(raw, {"smarthost": "[smarthost.example.test]:587", "listeners": []})["policy"]["smarthost"] == "[smarthost.example.test]:587"
    assert er.interpret(raw, {"smarthost": "[other.example.test]:587", "listeners": []})["policy"]["smarthost"] == "smarthost.example.test:587"
