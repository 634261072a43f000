# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Postfix readback (module_utils/postfix_readback.py) on postconf output captured in the lab image.

Fixtures in tests/unit/fixtures/readback/postfix/ come from localhost/mailsec-postfix:bookworm:
``stock`` (Debian defaults), ``hardened`` (the Postfix renderer's output for sample_policy.json,
applied with postconf) and ``drifted`` (hardened, then 0.0.0.0/0 appended to mynetworks,
``postconf -P smtp/inet/smtpd_sasl_auth_enable=yes`` and the never-relay table emptied).
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.mailsec.relay.plugins.module_utils import drift, policy  # noqa: E402
from ansible_collections.mailsec.relay.plugins.module_utils import postfix_readback as pr

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "readback")
NEVER_TABLE = "/etc/postfix/mailsec/relay_never.cidr"


def raw(variant):
    data = {}
    for key in "nxMP":
        with open(os.path.join(HERE, "postfix", "%s_postconf_%s.txt" % (variant, key))) as handle:
            data[key] = handle.read()
    table = os.path.join(HERE, "postfix", "%s_relay_never.cidr" % variant)
    data["tables"] = {NEVER_TABLE: open(table).read() if os.path.exists(table) else None}
    return data


def desired():
    with open(os.path.join(HERE, "sample_policy.json")) as handle:
        return policy.build_policy(json.load(handle), "mx-drift")


def failed(findings):
    return dict((f["check"], f) for f in findings if f["verdict"] == "FAIL")


def by_port(readback):
    return dict((item["port"], item) for item in readback["policy"]["listeners"])


def test_commands_are_read_only_postconf_calls():
    commands = pr.commands("postconf")
    assert set(commands) == {"n", "x", "M", "P"}
    for argv in commands.values():
        assert argv[0] == "postconf"
        assert not set(argv) & {"-e", "-X", "-#"}  # the editing flags


def test_hardened_reads_back_as_the_desired_policy():
    readback = pr.interpret(raw("hardened"))
    assert readback["mta"] == "postfix" and readback["version"] == "3.7.11"
    got = readback["policy"]
    assert got["hostname"] == "mx-drift.example.test"
    assert got["local_domains"] == ["example.test"]
    assert got["relay_domains"] == ["backup.example.test"]
    assert got["relay_networks"] == ["203.0.113.64/28", "2001:db8:26::40/124"]
    assert got["never_relay_networks"] == ["203.0.113.71/32"]
    assert got["trust_loopback"] is True and got["auth_relay"] is True
    assert got["smarthost"] == "[203.0.113.120]:25"
    listeners = by_port(readback)
    assert sorted(listeners) == [25, 465, 587]
    assert (listeners[25]["tls"], listeners[25]["auth"], listeners[25]["role"]) == ("starttls", False, "mx")
    assert (listeners[587]["tls"], listeners[587]["auth"], listeners[587]["role"]) == ("required", True, "submission")
    assert (listeners[465]["tls"], listeners[465]["auth"]) == ("implicit", True)
    # The never-relay host inside the relay network is carved out of the effective grant.
    grants = drift.NetSet(listeners[25]["grants"])
    assert grants.contains("203.0.113.70") and not grants.contains("203.0.113.71")
    assert not drift.NetSet(listeners[587]["grants"])
    assert readback["notes"] == []


def test_hardened_has_no_drift():
    findings = drift.compare(desired(), pr.interpret(raw("hardened"))["policy"], "mx")
    assert failed(findings) == {}
    assert len(findings) > 20  # every setting was compared, not skipped


def test_drifted_names_each_change():
    readback = pr.interpret(raw("drifted"))
    fails = failed(drift.compare(desired(), readback["policy"], "mx"))
    assert "0.0.0.0/0" in fails["relay_networks"]["actual"]
    assert fails["relay_networks"]["detail"].startswith("OPEN RELAY")
    assert "AUTH offered on *:25" in fails["listener *:25 auth"]["detail"]
    assert fails["listener *:25 auth"]["actual"] is True
    assert "203.0.113.71/32" in fails["never_relay_networks"]["detail"]
    assert "listener *:25 relay" in fails
    assert "listener *:587 never_relay" in fails
    # Unchanged settings stay PASS: the comparison is per setting, not all-or-nothing.
    assert "hostname" not in fails and "listener *:587 auth" not in fails


def test_stock_debian_shows_loopback_mapped_and_missing_listeners():
    fails = failed(drift.compare(desired(), pr.interpret(raw("stock"))["policy"], "mx"))
    assert "::ffff:7f00:0/104" in fails["listener *:25 relay"]["detail"]
    assert fails["listener *:587"]["actual"] is None
    assert "localdomain" in fails["local_domains"]["detail"]


@pytest.mark.parametrize(
    "restrictions, client, relays",
    [
        ("permit_mynetworks, reject_unauth_destination", "198.51.100.5", True),
        ("permit_mynetworks, reject_unauth_destination", "203.0.113.9", False),
        ("permit, reject_unauth_destination", "203.0.113.9", True),  # permit first: open relay
        ("reject_unauth_destination, permit", "203.0.113.9", False),
        ("check_client_access cidr:/t/never.cidr, permit_mynetworks, reject_unauth_destination", "198.51.100.7", False),
        ("permit_mynetworks, check_client_access cidr:/t/never.cidr, reject_unauth_destination", "198.51.100.7", True),
        ("check_client_access cidr:/t/allow.cidr, reject_unauth_destination", "203.0.113.200", True),
        ("check_client_access cidr:/t/allow.cidr, reject_unauth_destination", "203.0.113.77", False),  # DUNNO stops the table
    ],
)
def test_restriction_order_decides(restrictions, client, relays):
    tables = {
        "/t/never.cidr": "# comment\n198.51.100.7/32 reject_unauth_destination\n",
        "/t/allow.cidr": "203.0.113.77 DUNNO\n203.0.113.0/24 OK\n",
    }
    grants, _never, _auth, _configured = pr.relay_semantics(restrictions, "", drift.NetSet(["198.51.100.0/24"]), tables, False, [])
    assert grants.contains(client) is relays


def test_authenticated_relay_needs_sasl_and_permit():
    args = (
        drift.NetSet(),
        {},
    )
    assert pr.relay_semantics("permit_sasl_authenticated, reject", "", args[0], args[1], True, [])[2] is True
    assert pr.relay_semantics("permit_sasl_authenticated, reject", "", args[0], args[1], False, [])[2] is False
    assert pr.relay_semantics("reject, permit_sasl_authenticated", "", args[0], args[1], True, [])[2] is False


def test_unreadable_table_is_a_note_not_a_silent_pass():
    notes = []
    pr.relay_semantics("check_client_access cidr:/missing.cidr, permit_mynetworks, reject", "", drift.NetSet(), {"/missing.cidr": None}, False, notes)
    assert any("could not be read" in note for note in notes)


def test_collect_runs_the_commands_and_reads_referenced_tables():
    data = raw("hardened")
    calls = []

    def run(argv):
        calls.append(argv)
        key = {"-n": "n", "-M": "M"}.get(argv[-1]) or ("P" if "-P" in argv else "x")
        return 0, data[key], ""

    collected = pr.collect(run, data["tables"].get)
    assert len(calls) == 4
    assert collected["tables"] == {NEVER_TABLE: data["tables"][NEVER_TABLE]}


def test_collect_fails_loudly_when_postconf_fails():
    with pytest.raises(pr.ReadbackError):
        pr.collect(lambda argv: (1, "", "postconf: fatal: open /etc/postfix/main.cf"), lambda path: None)
