# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exim renderer, -bh matrix derivation and the staged configuration cycle (module_utils/exim.py).

The effective policies are hand-written (docs/policy-model.md shape), so these tests do not
depend on the policy model's defaults. The cycle tests use a fake runner instead of Exim; the
real Exim is exercised by the Molecule scenarios exim_mx_submission and exim_relay_hub.
"""

from __future__ import annotations

import copy
import os

import pytest

from ansible_collections.mailsec.relay.plugins.module_utils import exim


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
    "hostname": "mx.example.test",
    "local_domains": ["example.test"],
    "relay_domains": [],
    "relay_networks": ["203.0.113.56/29"],
    "never_relay_networks": ["203.0.113.61/32"],
    "trust_loopback": True,
    "loopback_networks": ["127.0.0.0/8", "::1/128"],
    "connect_allow": [],
    "connect_deny": [],
    "auth_relay": True,
    "client_names": [],
    "listeners": [
        listener("smtp", 25, "mx", "starttls", relay=["203.0.113.56/29"]),
        listener("submission", 587, "submission", "required", auth=True),
        listener("submissions", 465, "submission", "implicit", auth=True),
    ],
    "tls": {"cert": "/etc/ssl/mailsec/relay.crt", "key": "/etc/ssl/mailsec/relay.key", "selfsigned": True},
    "sasl": {"backend": "dovecot", "users": ["alice@example.test"]},
    "smarthost": "[203.0.113.110]:25",
    "warnings": [],
}


def relay_hub():
    policy = copy.deepcopy(MX_SUBMISSION)
    policy.update(profile="relay_hub", auth_relay=False, listeners=[policy["listeners"][0]], sasl={"backend": "dovecot", "users": []})
    return policy


def by_name(checks):
    return {check["name"]: check for check in checks}


# -- rendering -------------------------------------------------------------------------------


def test_render_owns_only_our_files_and_never_exim4_conf():
    files = exim.render(MX_SUBMISSION)
    assert set(files) == set(exim.OWNED_FILES)
    assert exim.OVERRIDE_FILE not in files
    for path in files:
        assert path.startswith("/etc/exim4/")


def test_main_file_overrides_debian_relay_nets_without_implicit_loopback():
    main = exim.render_main(dict(MX_SUBMISSION, trust_loopback=False, loopback_networks=[]))
    # update-exim4.conf appends 127.0.0.1 : ::1 to dc_relay_nets; our macro replaces it entirely.
    assert "MAIN_RELAY_NETS = <; 203.0.113.56/29\n" in main
    assert "MAIN_ACL_CHECK_RCPT = acl_mailsec_rcpt" in main
    assert "daemon_smtp_ports = 25 : 587 : 465" in main
    assert "tls_on_connect_ports = 465" in main
    assert "hostlist mailsec_never_relay_hosts = <; 203.0.113.61/32" in main


def test_auth_is_advertised_only_on_submission_ports_inside_tls():
    main = exim.render_main(MX_SUBMISSION)
    line = [item for item in main.splitlines() if item.startswith("auth_advertise_hosts")][0]
    assert "{eq{$received_port}{587}}" in line and "{eq{$received_port}{465}}" in line
    assert "{25}" not in line
    assert "def:tls_in_cipher" in line
    for block in exim.render_auth(MX_SUBMISSION).split("\n\n"):
        if "driver = dovecot" in block:
            assert "server_advertise_condition = ${if def:tls_in_cipher}" in block


def test_tls_floor_is_tls_1_2_wherever_tls_is_on():
    # GnuTLS (Debian's Exim) completes TLS 1.0/1.1 by default: T21 found it on 587/465.
    lines = exim.render_main(MX_SUBMISSION).splitlines()
    floor = [line for line in lines if line.startswith("tls_require_ciphers")]
    assert floor == ["tls_require_ciphers = NORMAL:-VERS-TLS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"]


def test_no_auth_anywhere_without_submission_listeners():
    files = exim.render(relay_hub())
    assert files[exim.AUTH_FILE] == {"state": "absent"}
    assert "auth_advertise_hosts =\n" in files[exim.MAIN_FILE]["content"]


@pytest.mark.parametrize("effective", [MX_SUBMISSION, relay_hub()], ids=["mx_submission", "relay_hub"])
def test_smuggling_mitigation_for_exim_before_4_97_1(effective):
    """CVE-2023-51766: a predata ACL (Exim then sync-checks DATA), no CHUNKING, no PIPECONNECT."""
    main = exim.render_main(effective).splitlines()
    assert "acl_smtp_predata = acl_mailsec_predata" in main
    assert "chunking_advertise_hosts =" in main
    assert "pipelining_connect_advertise_hosts =" in main
    acl = exim.render_acl(effective)
    predata = acl[acl.index("acl_mailsec_predata:") :].split("\n\n", maxsplit=1)[0]
    # It must accept: its job is the synchronization check Exim runs after it, not a verdict.
    assert [line.strip() for line in predata.splitlines() if not line.strip().startswith("#")] == ["acl_mailsec_predata:", "accept"]


def test_acl_checks_never_relay_before_every_grant_and_ends_with_deny():
    acl = exim.render_acl(MX_SUBMISSION)
    rcpt = acl[acl.index("acl_mailsec_rcpt:") :]
    never = rcpt.index("hosts = +mailsec_never_relay_hosts")
    grants = [rcpt.index("authenticated = *\n          control"), rcpt.index("hosts = +mailsec_relay_smtp")]
    assert all(never < grant for grant in grants)
    assert rcpt.rstrip().splitlines()[-1].strip() == "deny    message = 550 5.7.1 Relay not permitted"


def test_relay_networks_are_granted_per_listener():
    policy = copy.deepcopy(MX_SUBMISSION)
    policy["listeners"].append(listener("internal", 25, "mx", "none", relay=["203.0.113.32/28"], address="203.0.113.21"))
    main = exim.render_main(policy)
    acl = exim.render_acl(policy)
    assert "hostlist mailsec_relay_internal = <; 203.0.113.32/28" in main
    # The wildcard listener yields to the specific one on the same port.
    assert "{!match_ip{$received_ip_address}{<; 203.0.113.21}}" in acl
    assert "{match_ip{$received_ip_address}{<; 203.0.113.21}}" in acl
    assert "0.0.0.0.25" in main and "203.0.113.21.25" in main


@pytest.mark.parametrize(
    "smarthost, route",
    [
        ("[203.0.113.110]:25", "<;203.0.113.110:25"),
        ("[203.0.113.110]", "<;203.0.113.110"),
        ("sink.example.test:2525", "<;sink.example.test:2525"),
        ("[2001:db8:26::110]:25", "<;[2001:db8:26::110]:25"),
    ],
)
def test_smarthost_route_has_no_blank(smarthost, route):
    # manualroute splits route_data at white space: '<; host' would make 'host' an option.
    assert exim._smarthost_route(smarthost) == route


def test_router_only_with_smarthost():
    assert exim.render(dict(MX_SUBMISSION, smarthost=None))[exim.ROUTER_FILE] == {"state": "absent"}
    assert "domains = ! +local_domains" in exim.render(MX_SUBMISSION)[exim.ROUTER_FILE]["content"]


def test_update_conf_uses_split_config_and_grants_nothing():
    text = exim.render_update_conf(MX_SUBMISSION)
    assert "dc_use_split_config='true'" in text
    assert "dc_relay_nets=''" in text and "dc_relay_domains=''" in text and "dc_smarthost=''" in text


def test_connect_lists_become_connect_acl():
    policy = copy.deepcopy(MX_SUBMISSION)
    policy["listeners"][0]["connect_deny"] = ["203.0.113.200/29"]
    acl = exim.render_acl(policy)
    connect = acl[acl.index("acl_mailsec_connect:") : acl.index("acl_mailsec_mail:")]
    assert "hosts = +mailsec_connect_deny_smtp" in connect


# -- the -bh matrix -----------------------------------------------------------------------------


def test_matrix_core_expectations_for_mx_submission():
    checks = by_name(exim.derive_checks(MX_SUBMISSION, "203.0.113.20"))
    expect = {name: check["expect"] for name, check in checks.items()}
    assert expect["smtp: external client 203.0.113.254 -> foreign"] == "deny"
    assert expect["smtp: relay_network client 203.0.113.57 -> foreign"] == "accept"
    # never-relay wins even inside a relay network (.61 is in .56/29) and even after AUTH.
    assert expect["smtp: never_relay client 203.0.113.61 -> foreign"] == "deny"
    assert expect["submission: never_relay client 203.0.113.61 -> foreign, authenticated"] == "deny"
    assert expect["smtp: external client 203.0.113.254 -> domain example.test"] == "accept"
    assert expect["submission: external client 203.0.113.254 -> foreign"] == "deny"
    assert expect["submission: relay_network client 203.0.113.57 -> foreign"] == "deny"
    assert expect["submission: external client 203.0.113.254 -> foreign, authenticated"] == "accept"
    # AUTH never relays on port 25.
    assert expect["smtp: external client 203.0.113.254 -> foreign, authenticated"] == "deny"
    assert checks["smtp: external client 203.0.113.254 -> foreign"]["interface"] == "203.0.113.20"


def test_matrix_without_auth_relay_denies_authenticated_relay():
    policy = copy.deepcopy(MX_SUBMISSION)
    for item in policy["listeners"][1:]:
        item["auth"] = False
    checks = by_name(exim.derive_checks(policy))
    assert checks["submission: external client 203.0.113.254 -> foreign, authenticated"]["expect"] == "deny"


def test_matrix_loopback_follows_trust_loopback():
    trusted = by_name(exim.derive_checks(MX_SUBMISSION))
    untrusted = by_name(exim.derive_checks(dict(MX_SUBMISSION, trust_loopback=False, loopback_networks=[])))
    name = "smtp: loopback client 127.0.0.1 -> foreign"
    assert (trusted[name]["expect"], untrusted[name]["expect"]) == ("accept", "deny")


def test_matrix_connect_allow_picks_allowed_outsiders_and_a_refused_client():
    policy = copy.deepcopy(MX_SUBMISSION)
    policy["listeners"][0]["connect_allow"] = ["198.51.100.0/24", "203.0.113.56/29"]
    checks = [check for check in exim.derive_checks(policy) if check["port"] == 25]
    external = [check for check in checks if "external client" in check["name"]]
    refused = [check for check in checks if "not_connect_allowed" in check["name"]]
    assert external and all(check["client"].startswith("198.51.100.") for check in external)
    assert refused and all(check["expect"] == "deny" for check in refused)


def test_route_check_only_with_smarthost():
    assert exim.derive_route_checks(dict(MX_SUBMISSION, smarthost=None)) == []
    (check,) = exim.derive_route_checks(MX_SUBMISSION)
    assert check["kind"] == "route" and check["router"] == "mailsec_smarthost"


# -- transcripts ------------------------------------------------------------------------------

TRANSCRIPT_DENY = """\
**** SMTP testing session as if from host 203.0.113.254
>>> host in hosts_connection_nolog? no (option unset)
220 mx.example.test ESMTP Exim 4.96
250-mx.example.test Hello check.example.com [203.0.113.254]
250-SIZE 52428800
250 HELP
250 OK
LOG: H=(check) [203.0.113.254] rejected RCPT <x@example.net>: 550 5.7.1 Relay not permitted
550 5.7.1 Relay not permitted
221 mx.example.test closing connection
"""


def test_bh_verdicts():
    assert exim.bh_verdict(TRANSCRIPT_DENY) == ("deny", "RCPT", "550 5.7.1 Relay not permitted")
    accept = TRANSCRIPT_DENY.replace("550 5.7.1 Relay not permitted\n221", "250 Accepted\n221")
    assert exim.bh_verdict(accept)[0] == "accept"
    mail = "220 x\n250 hi\n530 5.7.0 Authentication required\n503 sender first\n"
    assert exim.bh_verdict(mail) == ("deny", "MAIL", "530 5.7.0 Authentication required")
    temporary = "220 x\n250 hi\n250 OK\n451 Temporary local problem\n"
    assert exim.bh_verdict(temporary)[0] == "error"
    assert exim.bh_verdict("")[0] == "error"


def test_bh_command_simulates_auth():
    check = {"client": "203.0.113.61", "interface": "203.0.113.20", "port": 587, "recipient": "x@example.net", "authenticated": True}
    argv = exim.bh_command("exim4", "/tmp/c", check)
    assert argv[:6] == ["exim4", "-C", "/tmp/c", "-bh", "203.0.113.61", "-oMi"]
    assert argv[6] == "203.0.113.20.587"
    assert "-oMaa" in argv and exim.AUTHENTICATOR_PLAIN in argv


# -- the cycle (fake Exim) ---------------------------------------------------------------------


class FakeExim(object):
    """Stands in for update-exim4.conf and exim4; ``verdicts`` maps client -> RCPT reply."""

    def __init__(self, bv_rc=0, reply="550 5.7.1 Relay not permitted", update_rc=0):
        self.bv_rc, self.reply, self.update_rc = bv_rc, reply, update_rc
        self.calls = []

    def __call__(self, argv, data=None):
        self.calls.append(argv)
        if argv[0] == "update-exim4.conf":
            if "-o" not in argv and self.update_rc:
                self.update_rc -= 1  # fails that many live regenerations, then works
                return 1, "", "update failed"
            if "-o" in argv:
                with open(argv[argv.index("-o") + 1], "w") as out:
                    out.write("candidate\n")
            return 0, "", ""
        if "-bV" in argv:
            return self.bv_rc, "", "" if self.bv_rc == 0 else "error in main section"
        if "-bh" in argv:
            return 0, "220 x\n250 hi\n250 OK\n%s\n221 bye\n" % self.reply, ""
        return 1, "", "unexpected %r" % argv


@pytest.fixture
def root(tmp_path):
    etc = tmp_path / "exim4"
    (etc / "conf.d" / "main").mkdir(parents=True)
    (etc / "conf.d" / "main" / "01_debian").write_text("debian\n")
    return str(etc)


CHECK = {"client": "203.0.113.254", "interface": "203.0.113.20", "port": 25, "recipient": "x@example.net", "expect": "deny"}


def make(root, run, content="ours\n", checks=(CHECK,)):
    path = os.path.join(root, "conf.d/main/000_mailsec_relay")
    return path, exim.EximConfig(run, {path: {"content": content}}, checks, exim="exim4", root=root, pid_file=os.path.join(root, "nopid"))


def test_cycle_installs_after_checks_pass(root):
    run = FakeExim()
    path, config = make(root, run)
    changes, diffs = config.plan()
    assert changes == [path] and diffs[0]["after"] == "ours\n"
    results = config.validate()
    assert results[0]["verdict"] == "deny"
    assert not os.path.exists(path)  # validation never touches the live tree
    reloaded, _backups = config.install(changes)
    assert open(path).read() == "ours\n" and reloaded is False  # no daemon running here
    assert config.plan()[0] == []  # idempotent


def test_bv_failure_leaves_live_tree_untouched(root):
    path, config = make(root, FakeExim(bv_rc=1))
    with pytest.raises(exim.EximError, match="-bV rejected"):
        config.validate()
    assert not os.path.exists(path)


def test_matrix_mismatch_is_an_error(root):
    path, config = make(root, FakeExim(reply="250 Accepted"))
    with pytest.raises(exim.EximError) as info:
        config.validate()
    assert info.value.details["failed_checks"][0]["verdict"] == "accept"


def test_failed_regeneration_rolls_back(root):
    path = os.path.join(root, "conf.d/main/000_mailsec_relay")
    with open(path, "w") as out:
        out.write("previous\n")
    run = FakeExim(update_rc=1)
    _path, config = make(root, run)
    with pytest.raises(exim.EximError, match="restored") as info:
        config.install([path])
    assert open(path).read() == "previous\n"
    assert info.value.details["rolled_back"] is True
    # installed, regenerated (failed), restored, regenerated again
    assert [argv for argv in run.calls if argv[0] == "update-exim4.conf"] == [["update-exim4.conf"]] * 2


def test_refuses_exim4_conf_and_paths_outside(root):
    with pytest.raises(exim.EximError, match="replace"):
        exim.EximConfig(FakeExim(), {os.path.join(root, "exim4.conf"): {"content": "x"}}, root=root)
    with pytest.raises(exim.EximError, match="outside"):
        exim.EximConfig(FakeExim(), {"/etc/passwd": {"content": "x"}}, root=root)


def test_answers_counts_any_smtp_reply_and_reports_what_never_answered(tmp_path):
    # The connect and retry loop are mta_common's; Exim's own rule: any SMTP reply means the daemon
    # is back (its connect ACL may refuse the confirm address with 554).
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve():
        conn, dummy = server.accept()
        conn.sendall(b"554 5.7.1 Connection refused by policy\r\n")
        conn.recv(100)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    config = exim.EximConfig(None, {}, root=str(tmp_path), confirm=("127.0.0.1", server.getsockname()[1]), confirm_timeout=2)
    assert config.answers() == (True, "554 5.7.1 Connection refused by policy")
    thread.join(5)
    # Nothing listens there any more: refused until the deadline, with the last error.
    server.close()
    config.confirm_timeout = 0.3
    ok, detail = config.answers()
    assert ok is False and "refused" in detail.lower()
