# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Postfix renderer (policy -> settings), postconf output parsing and the diff (module_utils/postfix.py).

The effective policies are written by hand in the docs/policy-model.md shape, so these tests do not
depend on the policy model. The staged apply/reload/rollback cycle runs against a real Postfix in the
Molecule scenarios postfix_mx_submission and postfix_relay_hub (verify.yml, faults.yml).
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.mailsec.relay.plugins.module_utils import postfix as pf

NEVER = "check_client_access cidr:/etc/postfix/mailsec/relay_never.cidr"


def listener(name, port, role, tls, relay=(), auth=False, address="*", allow=(), deny=()):
    return {
        "name": name,
        "address": address,
        "port": port,
        "role": role,
        "tls": tls,
        "auth": auth,
        "relay_networks": list(relay),
        "connect_allow": list(allow),
        "connect_deny": list(deny),
    }


MX_SUBMISSION = {
    "profile": "mx_submission",
    "hostname": "mx1.example.test",
    "local_domains": ["example.test"],
    "relay_domains": [],
    "relay_networks": ["198.51.100.48/28", "2001:db8:25::/64"],
    "never_relay_networks": ["198.51.100.51/32", "2001:db8:25::51/128"],
    "trust_loopback": True,
    "loopback_networks": ["127.0.0.0/8", "::1/128"],
    "connect_allow": [],
    "connect_deny": [],
    "auth_relay": True,
    "client_names": [],
    "listeners": [
        listener("smtp", 25, "mx", "starttls", relay=["198.51.100.48/28", "2001:db8:25::/64"]),
        listener("submission", 587, "submission", "required", auth=True),
        listener("submissions", 465, "submission", "implicit", auth=True),
    ],
    "tls": {"cert": "/etc/ssl/mailsec/relay.crt", "key": "/etc/ssl/mailsec/relay.key", "selfsigned": True},
    "sasl": {"backend": "dovecot", "users": ["alice"]},
    "smarthost": "[198.51.100.100]:25",
    "warnings": [],
}

RELAY_HUB = {
    "profile": "relay_hub",
    "hostname": "hub.example.test",
    "local_domains": [],
    "relay_domains": ["partner.example.org"],
    "relay_networks": ["198.51.100.48/28"],
    "never_relay_networks": [],
    "trust_loopback": False,
    "loopback_networks": [],
    "connect_allow": [],
    "connect_deny": [],
    "auth_relay": False,
    "client_names": [],
    "listeners": [listener("smtp", 25, "mx", "none", relay=["198.51.100.48/28"])],
    "tls": {"cert": None, "key": None, "selfsigned": False},
    "sasl": {"backend": "dovecot", "users": []},
    "smarthost": None,
    "warnings": [],
}


def policy(base, **changes):
    result = copy.deepcopy(base)
    result.update(changes)
    return result


def services(rendered):
    return {s["name"]: s for s in rendered["master"]}


def files(rendered):
    return {f["path"]: f for f in rendered["files"]}


# ---------------------------------------------------------------------------------------------
# Renderer
# ---------------------------------------------------------------------------------------------


def test_mx_submission_main_is_explicit_and_deny_first():
    main = pf.render_postfix(MX_SUBMISSION)["main"]
    assert main["compatibility_level"] == "3.6"
    assert main["mynetworks"] == "127.0.0.0/8 [::1]/128 198.51.100.48/28 [2001:db8:25::]/64"
    assert main["mynetworks_style"] == "host"
    assert main["relay_domains"] == ""  # explicit, never Postfix's compat default
    assert main["mydestination"] == "$myhostname, localhost, example.test"
    assert main["smtpd_relay_restrictions"] == NEVER + ", permit_mynetworks, reject_unauth_destination"
    assert main["smtpd_sasl_auth_enable"] == "no"  # no AUTH on 25
    assert main["smtpd_sasl_type"] == "dovecot" and main["smtpd_sasl_path"] == "private/auth"
    assert main["relayhost"] == "[198.51.100.100]:25"
    assert main["smtpd_tls_cert_file"] == "/etc/ssl/mailsec/relay.crt"
    assert main["smtpd_helo_required"] == "yes" and main["disable_vrfy_command"] == "yes"
    assert main["smtpd_data_restrictions"] == "reject_unauth_pipelining"
    assert main["smtpd_forbid_bare_newline"] == "yes"
    assert main["smtpd_forbid_bare_newline_exclusions"] == ""
    assert "defer_unauth_destination" not in " ".join(str(v) for v in main.values())


def test_mx_submission_listeners():
    master = services(pf.render_postfix(MX_SUBMISSION))
    assert sorted(master) == ["smtp", "submission", "submissions"]
    smtp = master["smtp"]["overrides"]
    assert smtp["smtpd_sasl_auth_enable"] == "no"
    assert smtp["smtpd_tls_security_level"] == "may"
    assert "smtpd_relay_restrictions" not in smtp  # same networks as main: inherits mynetworks
    sub = master["submission"]["overrides"]
    assert sub["smtpd_tls_security_level"] == "encrypt"
    assert sub["smtpd_sasl_auth_enable"] == "yes"
    assert sub["smtpd_relay_restrictions"] == NEVER + ", permit_sasl_authenticated, reject"
    assert sub["smtpd_sender_restrictions"] == "permit_sasl_authenticated, $mailsec_submission_auth_required"
    assert sub["smtpd_delay_reject"] == "no"
    assert "smtpd_tls_wrappermode" not in sub
    subs = master["submissions"]["overrides"]
    assert subs["smtpd_tls_wrappermode"] == "yes"
    assert subs["smtpd_relay_restrictions"] == sub["smtpd_relay_restrictions"]
    for service in master.values():
        assert service["type"] == "inet" and service["private"] == "n" and service["command"] == "smtpd"


def test_submission_refuses_mail_without_auth_with_530():
    """RFC 6409 4.3: 530 5.7.0 from an access action in main.cf, not the 554 5.7.1 of a plain reject."""
    rendered = pf.render_postfix(MX_SUBMISSION)
    assert rendered["main"]["mailsec_submission_auth_required"] == "check_sender_access static:{530 5.7.0 Authentication required}"
    # Every override stays writable as a master.cf line (no braces there).
    for service in rendered["master"]:
        pf.format_master_entry(service)
    # A submission listener without AUTH refuses every MAIL the same way.
    no_auth = policy(MX_SUBMISSION, listeners=[listener("smtp", 25, "mx", "starttls"), listener("submission", 587, "submission", "required", auth=False)])
    sub = services(pf.render_postfix(no_auth))["submission"]["overrides"]
    assert sub["smtpd_sender_restrictions"] == "$mailsec_submission_auth_required"
    # Without submission listeners the parameter is removed, not left behind.
    assert pf.render_postfix(RELAY_HUB)["main"]["mailsec_submission_auth_required"] is None


def test_never_table_bare_ipv6_and_restriction_value():
    table = files(pf.render_postfix(MX_SUBMISSION))["/etc/postfix/mailsec/relay_never.cidr"]
    assert table["map_type"] == "cidr"
    body = [line for line in table["content"].splitlines() if not line.startswith("#")]
    assert body == ["198.51.100.51/32 reject_unauth_destination", "2001:db8:25::51/128 reject_unauth_destination"]


def test_never_table_exists_even_when_empty():
    rendered = pf.render_postfix(RELAY_HUB)
    assert rendered["main"]["smtpd_relay_restrictions"].startswith(NEVER + ",")
    assert "/etc/postfix/mailsec/relay_never.cidr" in files(rendered)


def test_tls_floor_and_no_anonymous_suites_where_tls_is_mandatory():
    main = pf.render_postfix(MX_SUBMISSION)["main"]
    assert main["smtpd_tls_protocols"] == main["smtpd_tls_mandatory_protocols"] == ">=TLSv1.2"
    assert main["smtpd_tls_mandatory_exclude_ciphers"] == "aNULL"
    assert pf.render_postfix(RELAY_HUB)["main"]["smtpd_tls_mandatory_exclude_ciphers"] is None


def test_relay_hub_without_loopback_and_without_tls():
    main = pf.render_postfix(RELAY_HUB)["main"]
    assert main["mynetworks"] == "198.51.100.48/28"
    assert main["relay_domains"] == "partner.example.org"
    assert main["relayhost"] == ""
    assert main["smtpd_tls_cert_file"] is None and main["smtpd_tls_key_file"] is None  # removed
    assert main["smtpd_tls_security_level"] == "none"
    assert "submission" not in services(pf.render_postfix(RELAY_HUB))


def test_per_listener_relay_networks_get_their_own_table():
    effective = policy(
        MX_SUBMISSION,
        listeners=[
            listener("smtp", 25, "mx", "starttls", relay=[]),
            listener("internal", 2525, "mx", "none", relay=["198.51.100.48/28"], address="198.51.100.10"),
        ],
    )
    rendered = pf.render_postfix(effective)
    master = services(rendered)
    # smtp relays only for loopback now: its own table, never first, no permit_mynetworks.
    smtp = master["smtp"]["overrides"]["smtpd_relay_restrictions"]
    assert smtp == NEVER + ", check_client_access cidr:/etc/postfix/mailsec/relay_smtp.cidr, reject_unauth_destination"
    table = files(rendered)["/etc/postfix/mailsec/relay_smtp.cidr"]["content"]
    assert "127.0.0.0/8 OK" in table and "::1/128 OK" in table and "198.51.100.48" not in table
    internal = master["198.51.100.10:2525"]["overrides"]
    assert internal["smtpd_tls_security_level"] == "none"
    internal_table = files(rendered)["/etc/postfix/mailsec/relay_internal.cidr"]["content"]
    assert "198.51.100.48/28 OK" in internal_table


def test_service_names():
    assert pf._listener_service_name(listener("a", 25, "mx", "none")) == "smtp"
    assert pf._listener_service_name(listener("a", 465, "mx", "none", address="2001:db8::1")) == "[2001:db8::1]:submissions"
    assert pf._listener_service_name(listener("a", 2525, "mx", "none", address="127.0.0.1")) == "127.0.0.1:2525"


def test_connect_control_deny_before_allow():
    effective = policy(RELAY_HUB, connect_allow=["198.51.100.0/24"], connect_deny=["198.51.100.66/32"])
    effective["listeners"][0].update(connect_allow=["198.51.100.0/24"], connect_deny=["198.51.100.66/32"])
    rendered = pf.render_postfix(effective)
    assert rendered["main"]["smtpd_client_restrictions"] == (
        "check_client_access cidr:/etc/postfix/mailsec/connect_deny.cidr, check_client_access cidr:/etc/postfix/mailsec/connect_allow.cidr, reject"
    )
    assert "smtpd_client_restrictions" not in services(rendered)["smtp"]["overrides"]
    assert "198.51.100.66/32 REJECT" in files(rendered)["/etc/postfix/mailsec/connect_deny.cidr"]["content"]


def test_listener_specific_connect_control():
    effective = policy(RELAY_HUB)
    effective["listeners"][0]["connect_deny"] = ["198.51.100.66/32"]
    rendered = pf.render_postfix(effective)
    assert rendered["main"]["smtpd_client_restrictions"] == ""
    assert services(rendered)["smtp"]["overrides"]["smtpd_client_restrictions"] == "check_client_access cidr:/etc/postfix/mailsec/connect_deny_smtp.cidr"


def test_client_names_only_when_present():
    assert "relay_clients" not in str(pf.render_postfix(RELAY_HUB))
    rendered = pf.render_postfix(policy(RELAY_HUB, client_names=["host.example.com", ".example.net"]))
    assert rendered["main"]["smtpd_relay_restrictions"] == (
        NEVER + ", permit_mynetworks, check_client_access hash:/etc/postfix/mailsec/relay_clients, reject_unauth_destination"
    )
    table = files(rendered)["/etc/postfix/mailsec/relay_clients"]
    assert table["map_type"] == "hash" and "host.example.com OK\n.example.net OK\n" in table["content"]
    # Exact names: "example.net" must not silently match every subdomain.
    assert "smtpd_access_maps" not in rendered["main"]["parent_domain_matches_subdomains"]
    assert "relay_domains" not in rendered["main"]["parent_domain_matches_subdomains"]


def test_tls_listener_without_material_is_refused():
    effective = policy(RELAY_HUB, listeners=[listener("smtp", 25, "mx", "starttls")])
    with pytest.raises(pf.PostfixError, match="no certificate"):
        pf.render_postfix(effective)


def test_loopback_only_listeners():
    effective = policy(RELAY_HUB, profile="null_client", listeners=[listener("smtp", 25, "mx", "none", address="127.0.0.1")])
    assert pf.render_postfix(effective)["main"]["inet_interfaces"] == "loopback-only"
    assert pf.render_postfix(RELAY_HUB)["main"]["inet_interfaces"] == "all"


@pytest.mark.parametrize(
    "version,expected",
    [
        ("3.7.8", False),
        ("3.7.9", True),
        ("3.7.11", True),
        ("3.8.3", False),
        ("3.8.4", True),
        ("3.6.13", True),
        ("3.5.22", False),
        ("3.9.0", True),
        ("3.10.1", True),
        ("", False),
        (None, False),
    ],
)
def test_bare_newline_version_gate(version, expected):
    assert pf.supports_forbid_bare_newline(version) is expected
    main = pf.render_postfix(RELAY_HUB, postfix_version=version or "0")["main"]
    assert ("smtpd_forbid_bare_newline" in main) is expected


# Debian 12 ships Postfix 3.7 (level 3.6), Debian 13 ships 3.10 (level 3.9 by default): pinning 3.6
# on 3.10 would bring back older defaults. An explicit level still wins.
@pytest.mark.parametrize(
    "version,expected",
    [
        ("3.7.11", "3.6"),
        ("3.8.6", "3.6"),
        ("3.9.0", "3.9"),
        ("3.10.13", "3.9"),
        ("4.0.1", "3.9"),
    ],
)
def test_compatibility_level_follows_the_postfix_version(version, expected):
    assert pf.render_postfix(RELAY_HUB, postfix_version=version)["main"]["compatibility_level"] == expected
    assert pf.render_postfix(RELAY_HUB, postfix_version=version, compatibility_level="3.6")["main"]["compatibility_level"] == "3.6"


def test_extra_main_merges_last():
    main = pf.render_postfix(RELAY_HUB, extra_main={"maillog_file": "/var/log/mail.log", "relayhost": "[x]"})["main"]
    assert main["maillog_file"] == "/var/log/mail.log" and main["relayhost"] == "[x]"


networks = st.lists(st.sampled_from(["198.51.100.0/28", "198.51.100.64/26", "2001:db8:25::/64", "203.0.113.7/32"]), unique=True, max_size=3)


@settings(max_examples=60, deadline=None)
@given(relay=networks, never=networks, auth=st.booleans(), per_listener=networks)
def test_no_rendered_policy_grants_before_the_never_table(relay, never, auth, per_listener):
    effective = policy(
        MX_SUBMISSION,
        relay_networks=relay,
        never_relay_networks=never,
        listeners=[
            listener("smtp", 25, "mx", "starttls", relay=relay),
            listener("internal", 2525, "mx", "none", relay=per_listener),
            listener("submission", 587, "submission", "required", auth=auth),
        ],
    )
    rendered = pf.render_postfix(effective)
    lists = [rendered["main"]["smtpd_relay_restrictions"]] + [
        s["overrides"]["smtpd_relay_restrictions"] for s in rendered["master"] if "smtpd_relay_restrictions" in s["overrides"]
    ]
    for value in lists:
        items = [item.strip() for item in value.split(",")]
        assert items[0] == NEVER  # deny before allow
        assert items[-1] in ("reject_unauth_destination", "reject")
        assert "permit" not in items and "defer_unauth_destination" not in items
    sub = services(rendered)["submission"]["overrides"]
    assert sub["smtpd_sasl_auth_enable"] == ("yes" if auth else "no")
    assert ("permit_sasl_authenticated" in sub["smtpd_relay_restrictions"]) is auth
    assert "permit_mynetworks" not in sub["smtpd_relay_restrictions"]  # networks never relay on submission


# ---------------------------------------------------------------------------------------------
# Parsing postconf output
# ---------------------------------------------------------------------------------------------

POSTCONF_M = """\
smtp       inet  n       -       y       -       -       smtpd
pickup     unix  n       -       y       60      1       pickup
relay      unix  -       -       y       -       -       smtp -o syslog_name=postfix/$service_name
submission inet  n       -       y       -       -       smtpd -o syslog_name=postfix/submission -o {smtpd_relay_restrictions=permit_sasl_authenticated, reject}
[2001:db8::1]:2525 inet n -     y       -       -       smtpd -v -o smtpd_tls_security_level=none
"""
POSTCONF_P = """\
relay/unix/syslog_name = postfix/$service_name
submission/inet/smtpd_relay_restrictions = permit_sasl_authenticated, reject
submission/inet/syslog_name = postfix/submission
[2001:db8::1]:2525/inet/smtpd_tls_security_level = none
"""


def current_master():
    return pf.parse_postconf_P(POSTCONF_P, pf.parse_postconf_M(POSTCONF_M))


def test_parse_master():
    master = current_master()
    assert master[("pickup", "unix")]["wakeup"] == "60"
    assert master[("submission", "inet")]["command"] == "smtpd"
    assert master[("submission", "inet")]["overrides"] == {"smtpd_relay_restrictions": "permit_sasl_authenticated, reject", "syslog_name": "postfix/submission"}
    assert master[("[2001:db8::1]:2525", "inet")]["command"] == "smtpd -v"
    assert master[("[2001:db8::1]:2525", "inet")]["overrides"] == {"smtpd_tls_security_level": "none"}


def test_parse_main_keeps_empty_values():
    assert pf.parse_postconf_n("relay_domains =\nmynetworks = 127.0.0.0/8 [::1]/128\n") == {"relay_domains": "", "mynetworks": "127.0.0.0/8 [::1]/128"}


def test_split_master_args_keeps_braces_together():
    assert pf.split_master_args("smtpd -o {a = b, c} -o x=y") == ["smtpd", "-o", "{a = b, c}", "-o", "x=y"]


def test_format_override_long_form_and_refusal():
    assert pf.format_override("a", "b,c") == "-o a=b,c"
    assert pf.format_override("a", "b, c") == "-o { a = b, c }"
    assert pf.format_override("a", "") == "-o { a =  }"
    with pytest.raises(pf.PostfixError, match="braces"):
        pf.format_override("a", "{evil}")


def test_formatted_entry_parses_back_to_the_same_service():
    service = services(pf.render_postfix(MX_SUBMISSION))["submission"]
    line = pf.format_master_entry(service)
    # postconf -M prints long-form -o as {name=value}; simulate its readback.
    parsed = pf.parse_postconf_M(line.replace("{ ", "{").replace(" }", "}").replace(" = ", "="))
    entry = parsed[("submission", "inet")]
    assert entry["command"] == "smtpd" and entry["chroot"] == "y"


def test_to_postconf_value():
    assert pf.to_postconf_value(True) == "yes"
    assert pf.to_postconf_value(["a", "b"]) == "a, b"
    assert pf.to_postconf_value(25) == "25"
    assert pf.to_postconf_value(None) is None


# ---------------------------------------------------------------------------------------------
# The diff
# ---------------------------------------------------------------------------------------------


def test_no_change_when_equal_modulo_whitespace():
    changes = pf.compute_changes({"mynetworks": "127.0.0.0/8  [::1]/128"}, {}, {}, {"mynetworks": "127.0.0.0/8 [::1]/128"}, [], [])
    assert not changes.changed


def test_main_set_and_remove():
    changes = pf.compute_changes({"a": "1", "gone": "x"}, {}, {}, {"a": "2", "gone": None, "never_there": None}, [], [])
    assert changes.main == {"a": ("1", "2"), "gone": ("x", None)}
    diff = changes.diff()
    assert "main.cf: a = 1" in diff["before"] and "main.cf: a = 2" in diff["after"]
    assert "main.cf: gone (absent)" in diff["after"]


def test_empty_value_differs_from_absent():
    changes = pf.compute_changes({}, {}, {}, {"relay_domains": ""}, [], [])
    assert changes.main == {"relay_domains": (None, "")}


def desired_submission(**overrides):
    base = {
        "name": "submission",
        "type": "inet",
        "private": "n",
        "unpriv": "-",
        "chroot": "y",
        "wakeup": "-",
        "maxproc": "-",
        "command": "smtpd",
        "state": "present",
        "overrides": {"syslog_name": "postfix/submission", "smtpd_relay_restrictions": "permit_sasl_authenticated, reject"},
    }
    base.update(overrides)
    return base


def test_master_unchanged_service_is_left_alone():
    changes = pf.compute_changes({}, current_master(), {}, {}, [desired_submission()], [])
    assert not changes.changed


def test_master_overrides_are_exclusive():
    want = desired_submission(overrides={"syslog_name": "postfix/submission"})
    changes = pf.compute_changes({}, current_master(), {}, {}, [want], [])
    assert list(changes.master) == ["submission/inet"]
    label, line = changes.master_set[0]
    assert "smtpd_relay_restrictions" not in line  # the stale override goes


def test_master_field_change_and_absent():
    changes = pf.compute_changes(
        {},
        current_master(),
        {},
        {},
        [
            desired_submission(chroot="n"),
            {"name": "pickup", "type": "unix", "state": "absent"},
            {"name": "nonexistent", "type": "inet", "state": "absent"},
        ],
        [],
    )
    assert set(changes.master) == {"submission/inet", "pickup/unix"}
    assert changes.master_remove == ["pickup/unix"]
    assert changes.master["pickup/unix"][1] is None


def test_purge_removes_only_undeclared_inet_services_of_the_listed_commands():
    changes = pf.compute_changes({}, current_master(), {}, {}, [desired_submission()], [], purge_commands=["smtpd"])
    assert sorted(changes.master_remove) == ["[2001:db8::1]:2525/inet", "smtp/inet"]
    assert "relay/unix" not in changes.master and "pickup/unix" not in changes.master


def test_files_content_mode_and_postmap():
    spec = [
        {"path": "/etc/postfix/mailsec/t", "content": "a OK\n", "mode": "0644", "map_type": "hash"},
        {"path": "/etc/postfix/mailsec/c.cidr", "content": "x\n", "mode": "0644", "map_type": "cidr"},
    ]
    current = {
        "/etc/postfix/mailsec/t": {"content": "a OK\n", "mode": 0o644, "db_fresh": False},
        "/etc/postfix/mailsec/c.cidr": {"content": "x\n", "mode": 0o600, "db_fresh": False},
    }
    changes = pf.compute_changes({}, {}, current, {}, [], spec)
    assert changes.files["/etc/postfix/mailsec/t"][2] == ["postmap"]
    assert changes.files["/etc/postfix/mailsec/c.cidr"][2] == ["mode"]
    current["/etc/postfix/mailsec/t"]["db_fresh"] = True
    current["/etc/postfix/mailsec/c.cidr"]["mode"] = 0o644
    assert not pf.compute_changes({}, {}, current, {}, [], spec).changed


def test_diff_can_hide_file_content():
    spec = [{"path": "/etc/postfix/sasl_passwd", "content": "[relay] user:hunter2\n", "mode": "0600"}]
    changes = pf.compute_changes({}, {}, {}, {}, [], spec)
    diff = changes.diff(hidden_paths=["/etc/postfix/sasl_passwd"])
    assert "hunter2" not in diff["before"] + diff["after"]


def test_rendered_policy_is_a_noop_against_its_own_readback():
    """What the renderer wants, read back the way postconf prints it, yields no change (idempotence)."""
    rendered = pf.render_postfix(MX_SUBMISSION)
    current_main = {k: v for k, v in rendered["main"].items() if v is not None}
    lines = [pf.format_master_entry(s).replace("{ ", "{").replace(" }", "}") for s in rendered["master"]]
    current = pf.parse_postconf_M("\n".join(lines))
    p_lines = ["%s/inet/%s = %s" % (s["name"], k, v) for s in rendered["master"] for k, v in s["overrides"].items()]
    pf.parse_postconf_P("\n".join(p_lines), current)
    current_files = {f["path"]: {"content": f["content"], "mode": 0o644, "db_fresh": True} for f in rendered["files"]}
    changes = pf.compute_changes(current_main, current, current_files, rendered["main"], rendered["master"], rendered["files"], purge_commands=["smtpd"])
    assert not changes.changed, changes.summary()


# ---------------------------------------------------------------------------------------------
# Helpers of the applier that run without Postfix
# ---------------------------------------------------------------------------------------------


def test_run_with_tty_captures_stderr():
    rc, out = pf.run_with_tty(["/bin/sh", "-c", "echo 'postfix: fatal: bad thing' >&2; exit 3"])
    assert rc == 3 and "fatal: bad thing" in out


def test_files_outside_config_dir_are_refused():
    applier = pf.PostfixApplier(run=None, config_dir="/etc/postfix")
    assert applier._rel("mailsec/x.cidr") == "mailsec/x.cidr"
    with pytest.raises(pf.PostfixError, match="outside"):
        applier._rel("/etc/passwd")
    with pytest.raises(pf.PostfixError, match="outside"):
        applier._rel("/etc/postfix/../shadow")


def test_smtp_greets_against_a_fake_server():
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def serve(reply):
        conn, dummy = server.accept()
        conn.sendall(reply)
        conn.recv(100)
        conn.close()

    thread = threading.Thread(target=serve, args=(b"220 fake ESMTP\r\n",))
    thread.start()
    assert pf.smtp_greets("127.0.0.1", port)
    thread.join()
    thread = threading.Thread(target=serve, args=(b"421 go away\r\n",))
    thread.start()
    with pytest.raises(pf.PostfixError, match="greeting"):
        pf.smtp_greets("127.0.0.1", port)
    thread.join()
    server.close()


def _one_session_server(reply, ehlo=None):
    """A listener on 127.0.0.1 for one session: greets with ``reply``, answers EHLO with ``ehlo``."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve():
        conn, dummy = server.accept()
        conn.sendall(reply)
        data = conn.recv(100)
        if ehlo and data.startswith(b"EHLO"):
            conn.sendall(ehlo)
            conn.recv(100)
        conn.close()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server.getsockname()[1], thread


def test_smtp_greets_requires_starttls_where_tls_is_configured():
    # The SMTP exchange is mta_common's; that a missing STARTTLS is a failure is Postfix's own check.
    port, thread = _one_session_server(b"220 fake ESMTP\r\n", ehlo=b"250-fake\r\n250 PIPELINING\r\n")
    with pytest.raises(pf.PostfixError, match="TLS is configured but STARTTLS is not offered"):
        pf.smtp_greets("127.0.0.1", port, starttls=True)
    thread.join(5)


def test_confirm_names_every_listener_that_never_greeted(monkeypatch):
    import socket

    port, thread = _one_session_server(b"220 fake ESMTP\r\n")
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    dead_port = dead.getsockname()[1]
    applier = pf.PostfixApplier(run=None, confirm_timeout=0.3)
    monkeypatch.setattr(
        applier,
        "listeners",
        lambda: [
            ("smtp", "127.0.0.1", port, False, False),
            ("submission", "127.0.0.1", dead_port, False, True),
        ],
    )
    with pytest.raises(pf.PostfixError, match=r"listener check failed: 127\.0\.0\.1:%d " % dead_port) as info:
        applier.confirm()
    assert "127.0.0.1:%d " % port not in str(info.value)  # the one that greeted is not blamed
    thread.join(5)
    dead.close()
