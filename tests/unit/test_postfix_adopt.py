# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Adopt mode of the Postfix applier (brownfield hosts, issue 15): what it keeps, what it owns.

The master.cf below is the shape of a host built from Postfix's own howtos: postscreen on 25
(POSTSCREEN_README), an advanced content filter re-injecting on 127.0.0.1:10025 (FILTER_README),
OpenDKIM as a milter and Dovecot LMTP for virtual mailboxes.
"""

from __future__ import annotations

import json
import os
import sys

try:
    from ansible_collections.mailsec.relay.plugins.module_utils import postfix as pf
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", ".cache", "collections"))
    from ansible_collections.mailsec.relay.plugins.module_utils import postfix as pf

BROWNFIELD_M = """\
smtp       inet  n       -       y       -       1       postscreen
smtpd      pass  -       -       y       -       -       smtpd -o content_filter=scan:[127.0.0.1]:10024 -o smtpd_relay_restrictions=permit
dnsblog    unix  -       -       y       -       0       dnsblog
tlsproxy   unix  -       -       y       -       0       tlsproxy
pickup     unix  n       -       y       60      1       pickup
cleanup    unix  n       -       y       -       0       cleanup
scan       unix  -       -       n       -       10      smtp -o smtp_send_xforward_command=yes
127.0.0.1:10025 inet n   -       n       -       -       smtpd -o content_filter= -o mynetworks=127.0.0.0/8
2525       inet  n       -       y       -       -       smtpd
"""
BROWNFIELD_P = """\
smtpd/pass/content_filter = scan:[127.0.0.1]:10024
smtpd/pass/smtpd_relay_restrictions = permit
scan/unix/smtp_send_xforward_command = yes
127.0.0.1:10025/inet/content_filter =
127.0.0.1:10025/inet/mynetworks = 127.0.0.0/8
"""
BROWNFIELD_MAIN = {
    "mynetworks": "127.0.0.0/8 203.0.113.0/24",
    "smtpd_milters": "inet:127.0.0.1:8891",
    "virtual_mailbox_domains": "example.test",
    "virtual_mailbox_maps": "hash:/etc/postfix/vmailbox",
    "virtual_transport": "lmtp:unix:private/dovecot-lmtp",
    "alias_maps": "hash:/etc/aliases",
}

SMTP = {
    "name": "smtp",
    "type": "inet",
    "private": "n",
    "unpriv": "-",
    "chroot": "y",
    "wakeup": "-",
    "maxproc": "-",
    "command": "smtpd",
    "state": "present",
    "keep_front": True,
    "overrides": {"syslog_name": "postfix/smtp", "smtpd_sasl_auth_enable": "no"},
}


def brownfield():
    return pf.parse_postconf_P(BROWNFIELD_P, pf.parse_postconf_M(BROWNFIELD_M))


def test_adopt_keeps_unowned_listeners_and_reports_them():
    changes = pf.compute_changes(
        BROWNFIELD_MAIN, brownfield(), {}, {"mynetworks": "127.0.0.0/8"}, [SMTP], [], purge_commands=["smtpd", "postscreen"], adopt=True, owned=None
    )
    assert changes.master_remove == []
    kept = "\n".join(changes.kept)
    assert "postscreen smtp inet in front of smtpd pass" in kept
    assert "smtpd 127.0.0.1:10025 inet (master.cf)" in kept
    assert "smtpd 2525 inet (master.cf)" in kept
    assert "smtp scan unix (master.cf)" in kept
    assert "smtpd_milters = inet:127.0.0.1:8891 (main.cf)" in kept
    assert "virtual_mailbox_maps = hash:/etc/postfix/vmailbox (main.cf)" in kept
    assert "pickup" not in kept  # stock services are not worth a line
    assert "mynetworks" not in kept  # the policy sets it: a change, not a kept element


def test_postscreen_front_stays_and_its_pass_service_gets_the_listener_settings():
    changes = pf.compute_changes({}, brownfield(), {}, {}, [SMTP], [], purge_commands=["smtpd", "postscreen"], adopt=True)
    assert "smtp/inet" not in changes.master  # the postscreen line is not rewritten
    label, line = changes.master_set[0]
    assert label == "smtpd/pass"
    assert line.startswith("smtpd pass - - y - - smtpd")
    # The content filter is the user's and stays; the permissive relay override goes.
    assert "-o content_filter=scan:[127.0.0.1]:10024" in line
    assert "smtpd_relay_restrictions" not in line
    assert "-o smtpd_sasl_auth_enable=no" in line and "-o syslog_name=postfix/smtp" in line
    assert "smtpd/pass: -o content_filter=scan:[127.0.0.1]:10024" in changes.kept


def test_without_adopt_overrides_stay_exclusive_and_purge_removes_all_unnamed():
    changes = pf.compute_changes({}, brownfield(), {}, {}, [SMTP], [], purge_commands=["smtpd", "postscreen"])
    assert sorted(changes.master_remove) == ["127.0.0.1:10025/inet", "2525/inet"]
    line = dict(changes.master_set)["smtpd/pass"]
    assert "content_filter" not in line


def test_adopt_removes_only_what_an_earlier_run_owns():
    changes = pf.compute_changes({}, brownfield(), {}, {}, [SMTP], [], purge_commands=["smtpd", "postscreen"], adopt=True, owned={"smtp/inet", "2525/inet"})
    assert changes.master_remove == ["2525/inet"]
    assert "smtpd 127.0.0.1:10025 inet (master.cf)" in changes.kept


def test_adopted_host_is_idempotent():
    """After the adopt run, the same desired state against the result changes nothing."""
    current = brownfield()
    first = pf.compute_changes({}, current, {}, {}, [SMTP], [], purge_commands=["smtpd", "postscreen"], adopt=True)
    label, line = first.master_set[0]
    after = pf.parse_postconf_M(
        BROWNFIELD_M.replace(
            "smtpd      pass  -       -       y       -       -       smtpd -o content_filter=scan:[127.0.0.1]:10024 -o smtpd_relay_restrictions=permit", line
        )
    )
    pf.parse_postconf_P(
        BROWNFIELD_P.replace("smtpd/pass/smtpd_relay_restrictions = permit\n", "")
        + "smtpd/pass/syslog_name = postfix/smtp\nsmtpd/pass/smtpd_sasl_auth_enable = no\n",
        after,
    )
    second = pf.compute_changes({}, after, {}, {}, [SMTP], [], purge_commands=["smtpd", "postscreen"], adopt=True, owned={"smtp/inet"})
    assert not second.changed, second.summary()


def test_kept_elements_are_in_the_diff_on_both_sides():
    changes = pf.compute_changes(BROWNFIELD_MAIN, brownfield(), {}, {}, [SMTP], [], adopt=True)
    diff = changes.diff()
    assert "kept: smtpd 127.0.0.1:10025 inet (master.cf)" in diff["before"]
    assert "kept: smtpd 127.0.0.1:10025 inet (master.cf)" in diff["after"]
    assert changes.summary()["kept"] == changes.kept


def test_ownership_record_round_trip_and_is_deterministic():
    text = pf.ownership_record([SMTP, dict(SMTP, name="submission"), {"name": "x", "type": "inet", "state": "absent"}])
    assert text == pf.ownership_record([dict(SMTP, name="submission"), SMTP])
    assert pf.parse_ownership(text) == {"smtp/inet", "submission/inet"}
    assert pf.parse_ownership(None) is None
    assert pf.parse_ownership("not json") is None
    assert json.loads(text)["comment"].startswith("mailsec.relay ownership record")


def fake_postconf(main, m_text, p_text):
    def run(cmd):
        if "-n" in cmd:
            return 0, "".join("%s = %s\n" % item for item in main.items()), ""
        if "-M" in cmd:
            return 0, m_text, ""
        if "-P" in cmd:
            return 0, p_text, ""
        return 1, "", "unexpected %s" % cmd

    return run


def test_plan_reads_and_rewrites_the_ownership_record(tmp_path):
    config = tmp_path / "postfix"
    (config / "mailsec").mkdir(parents=True)
    (config / "main.cf").write_text("")
    (config / "master.cf").write_text("")
    applier = pf.PostfixApplier(fake_postconf(BROWNFIELD_MAIN, BROWNFIELD_M, BROWNFIELD_P), config_dir=str(config))
    record = str(config / "mailsec" / "owned.json")
    files = []
    changes = applier.plan({}, [SMTP], files, ["smtpd", "postscreen"], adopt=True, ownership_file=record)
    assert changes.master_remove == []
    assert changes.kept[0].startswith("first run on this host")
    assert record in changes.files and files[-1]["path"] == record
    # A later run finds the record: 2525 is still not ours, so it stays.
    (config / "mailsec" / "owned.json").write_text(files[-1]["content"])
    files = []
    changes = applier.plan({}, [SMTP], files, ["smtpd", "postscreen"], adopt=True, ownership_file=record)
    assert changes.master_remove == [] and record not in changes.files
    assert not changes.kept[0].startswith("first run")


def test_postscreen_front_is_confirmed_with_its_pass_settings():
    main = {"smtpd_tls_security_level": "none", "inet_interfaces": "all"}
    applier = pf.PostfixApplier(fake_postconf(main, BROWNFIELD_M, BROWNFIELD_P + "smtpd/pass/smtpd_tls_security_level = may\n"), config_dir="/nonexistent")
    applier.read_state = lambda config_dir=None: (
        main,
        pf.parse_postconf_P(BROWNFIELD_P + "smtpd/pass/smtpd_tls_security_level = may\n", pf.parse_postconf_M(BROWNFIELD_M)),
    )
    found = dict((item[0], item) for item in applier.listeners())
    assert found["smtp"] == ("smtp", "127.0.0.1", 25, False, True)
    assert found["127.0.0.1:10025"][1:3] == ("127.0.0.1", 10025)


def test_empty_overrides_are_read_back_so_they_are_not_rewritten_every_run():
    services = pf.parse_postconf_P(BROWNFIELD_P, pf.parse_postconf_M(BROWNFIELD_M))
    assert services[("127.0.0.1:10025", "inet")]["overrides"]["content_filter"] == ""
    want = {
        "name": "127.0.0.1:10025",
        "type": "inet",
        "private": "n",
        "unpriv": "-",
        "chroot": "n",
        "wakeup": "-",
        "maxproc": "-",
        "command": "smtpd",
        "overrides": {"content_filter": "", "mynetworks": "127.0.0.0/8"},
    }
    changes = pf.compute_changes({}, services, {}, {}, [want], [])
    assert "127.0.0.1:10025/inet" not in changes.master
