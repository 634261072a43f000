# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verdicts that rest on evidence (issue 11): canary confirmation of every relay form, T08 judged by
what the server allows after a failed AUTH, findings on every result, trick forms through every own
name, user forms (extra_forms) and extra ports."""

from __future__ import annotations

import asyncio
import socket

import pytest
from conftest import PASSWORD, check_findings, verdicts

from ansible_collections.mailsec.relay.plugins.module_utils import findings
from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine, probes
from ansible_collections.mailsec.relay.plugins.module_utils.smtp.reply import Reply
from smtp_fakes import fakesmtp


def results(outcome, port=None, probe=None):
    return [r for r in outcome["results"] if (port is None or r["port"] == port) and (probe is None or r["probe"] == probe)]


# -- the finding mapping ------------------------------------------------------------------------
def test_every_probe_outcome_maps_to_a_known_finding():
    for probe in probes.ALL_PROBES:
        keys = [("INCONCLUSIVE", None)] + findings.outcome_keys(probe)
        assert "FAIL" in findings.PROBE_FINDINGS[probe], probe  # the fallback of every FAIL/WARN
        for verdict, tag in keys:
            for role in ("mx", "submission", "extra"):
                found = findings.finding_for(probe, verdict, tag, role)
                assert found and found[0] in findings.CATALOG and found[1] in findings.SEVERITIES, (probe, verdict, tag)
        assert findings.finding_for(probe, "PASS") is None and findings.finding_for(probe, "SKIP") is None


def test_finding_table_covers_every_probe_and_tag_the_code_uses():
    import inspect
    import re

    source = inspect.getsource(probes) + inspect.getsource(engine)
    # tags set on outcomes, and the fourth element of canary confirmations: (verdict, text, seen, tag)
    tags = set(re.findall(r'tag="([a-z_]+)"', source)) | set(re.findall(r'(?:None|\)),\s*"([a-z_]+)",?\s*\)', source))
    assert tags >= {"confirmed", "dropped", "trick_dropped", "unconfirmed", "trick_unconfirmed", "no_starttls", "greeting_refused"}
    known = set(key for table in findings.PROBE_FINDINGS.values() for key in table)
    assert tags <= known, tags - known
    assert set(probes.ALL_PROBES) <= set(findings.PROBE_FINDINGS)
    for table in findings.PROBE_FINDINGS.values():
        for entry in table.values():
            entry = entry if isinstance(entry, tuple) else (entry,)
            assert entry[0] in findings.CATALOG
            assert len(entry) == 1 or entry[1] in findings.SEVERITIES
    # the role changes weight and meaning, not the catalogue
    assert findings.finding_for("T01", "FAIL", None, "extra") == ("cleartext_auth", "high")
    assert findings.finding_for("T01", "FAIL", "no_starttls", "submission") == ("starttls_missing", "high")
    assert findings.finding_for("T03", "FAIL", "no_starttls", "submission") == ("starttls_missing", "high")
    assert findings.finding_for("T11", "FAIL", "greeting_refused") == ("relay_refused_for_trusted", "medium")
    # INCONCLUSIVE is never promoted by a tag
    assert findings.finding_for("T06", "INCONCLUSIVE", "no_starttls") == ("inconclusive", "info")
    with pytest.raises(KeyError):
        findings.finding_for("T99", "FAIL")


# -- canary confirmation of every relay form ----------------------------------------------------
def test_open_relay_confirmed_for_every_form_sender_tricks_included(scenario):
    outcome, host = scenario(mx=dict(relay="accept"))
    relay = results(outcome, host.mx.port)
    forms = [r for r in relay if r["probe"] in ("T11", "T12", "T15")]
    senders = {"P01", "P03", "P04a", "P05", "P06a", "P06b", "P07", "P08", "P09"}
    assert senders <= {r["case"] for r in forms}
    assert all(
        r["verdict"] == "FAIL" and r["finding"] == "open_relay" and r["severity"] == "critical" and "reached the canary" in r["reason"] for r in forms
    ), [(r["case"], r["verdict"], r["reason"]) for r in forms if r["finding"] != "open_relay"]
    t20 = next(r for r in relay if r["probe"] == "T20")
    assert t20["verdict"] == "FAIL" and t20["finding"] == "open_relay"
    # every form's message went to the canary domain, never to example.net
    rcpts = [rcpt for t in host.mx.transactions for rcpt in t["rcpts"]]
    assert rcpts and not any("example.net" in rcpt for rcpt in rcpts)


def test_without_canary_rcpt_acceptance_is_an_unconfirmed_open_relay(scenario):
    outcome, host = scenario(mx=dict(relay="accept"), canary=False)
    assert host.transactions == []
    mx = results(outcome, host.mx.port)
    plain = [r for r in mx if r["probe"] in ("T11", "T15") and not r["case"].startswith(("P1", "P2"))]
    assert plain and all(r["verdict"] == "FAIL" and r["finding"] == "open_relay_unconfirmed" and "unconfirmed" in r["reason"] for r in plain)
    tricks = [r for r in mx if r["probe"] == "T11" and r["case"].startswith(("P1", "P2"))]
    assert tricks and all(r["verdict"] == "WARN" and r["finding"] == "trick_form_accepted" for r in tricks)


def test_relay_refused_at_data_is_a_refusal(scenario, tls_context):
    """A server that accepts a foreign RCPT but refuses the message (Postfix smtpd_data_restrictions)
    has refused the relay."""

    class RefuseAtData(fakesmtp._Session):
        async def cmd_DATA(self, line):
            if any("canary.test" in rcpt for rcpt in self.rcpts):
                await self.send(554, "5.7.1 Relay access denied at DATA")
                return
            await fakesmtp._Session.cmd_DATA(self, line)

    original = fakesmtp._Session
    fakesmtp._Session = RefuseAtData
    try:
        outcome, host = scenario(mx=dict(relay="accept"), probes=["T11", "T12", "T15"])
    finally:
        fakesmtp._Session = original
    mx = [r for r in results(outcome, host.mx.port) if r["probe"] != "T00"]
    assert mx and all(r["verdict"] == "PASS" and r["reply"]["stage"] == "DATA" for r in mx), [
        (r["case"], r["verdict"], r["reason"]) for r in mx if r["verdict"] != "PASS"
    ]


# -- T08: what the server allows after a wrong password ------------------------------------------
def test_t08_stock_postfix_submission_refusing_at_rcpt_passes(scenario):
    """Postfix SASL_README: smtpd_relay_restrictions = permit_sasl_authenticated, reject. After a wrong
    password MAIL gets 250 and RCPT 554 5.7.1: the relay is refused, a PASS."""
    stock = dict(unauth_mail=None)
    outcome, host = scenario(submission=stock, submissions=stock, probes=["T06", "T08"])
    t08 = results(outcome, probe="T08")
    assert [r["verdict"] for r in t08] == ["PASS", "PASS"], [r["reason"] for r in t08]
    assert all(r["reply"]["stage"] == "RCPT" and r["reply"]["code"] == 554 and "refused at RCPT" in r["reason"] for r in t08)
    assert all(r["verdict"] == "PASS" for r in results(outcome, probe="T06"))
    # MAIL refused with 530 after the wrong password (this collection's own renderer) passes too
    outcome, unused_host = scenario(probes=["T08"])
    assert all(r["verdict"] == "PASS" and r["reply"]["stage"] == "MAIL" for r in results(outcome, probe="T08"))


@pytest.mark.parametrize(
    "canary, deliver, verdict, finding",
    [
        (True, True, "FAIL", "relay_after_failed_auth"),
        (False, True, "FAIL", "relay_after_failed_auth"),
        (True, False, "WARN", "accept_then_drop"),
    ],
)
def test_t08_relay_after_a_failed_auth_fails(scenario, canary, deliver, verdict, finding):
    broken = dict(unauth_mail=None, auth_fail_open=True, deliver=deliver)
    outcome, host = scenario(submission=broken, submissions=broken, probes=["T08"], canary=canary)
    t08 = results(outcome, probe="T08")
    assert [(r["verdict"], r["finding"]) for r in t08] == [(verdict, finding)] * 2, [r["reason"] for r in t08]
    assert all("after a failed AUTH" in r["reason"] for r in t08)
    if not canary:
        assert host.transactions == []


def test_t08_wrong_password_accepted_is_its_own_finding(scenario):
    users = {"alice": PASSWORD}

    class AnyPassword(fakesmtp._Session):
        async def cmd_AUTH(self, line):
            self.authed = True
            await self.send(235, "2.7.0 Authentication successful")

    original = fakesmtp._Session
    fakesmtp._Session = AnyPassword
    try:
        outcome, unused_host = scenario(submission=dict(users=users), probes=["T08"])
    finally:
        fakesmtp._Session = original
    assert {(r["verdict"], r["finding"]) for r in results(outcome, probe="T08")} == {("FAIL", "wrong_password_accepted")}


def test_t05_optional_tls_judged_by_what_the_server_allows():
    """tls: starttls (TLS optional): MAIL accepted before TLS and AUTH, relay refused at RCPT is a
    PASS; a foreign recipient accepted in cleartext is followed to the canary. tls: required: MAIL
    accepted before TLS is a FAIL (RFC 3207 4: 530 to everything but NOOP/EHLO/STARTTLS/QUIT)."""

    def run(behaviour, tls_mode):
        async def go():
            server = fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="submission", **behaviour), None)
            port = await server.start()
            target = {
                "name": "x",
                "addresses": ["127.0.0.1"],
                "local_domains": ["example.test"],
                "listeners": [{"port": port, "role": "submission", "tls": tls_mode}],
            }
            try:
                return await engine.run_async({"targets": [target], "probes": ["T05"], "timeout": 2})
            finally:
                await server.stop()

        outcome = asyncio.run(go())
        check_findings(outcome)
        return next(r for r in outcome["results"] if r["probe"] == "T05")

    # (no TLS context on these fakes: T05 runs on the plaintext session only)
    passed = run(dict(tls_required=False, unauth_mail=None), "starttls")
    assert passed["verdict"] == "PASS" and passed["reply"]["stage"] == "RCPT" and "RFC 6409" in passed["reason"]
    relays = run(dict(tls_required=False, unauth_mail=None, relay="accept"), "starttls")
    assert relays["verdict"] == "FAIL" and relays["finding"] == "submission_without_tls"
    assert "unconfirmed" in relays["reason"]
    required = run(dict(tls_required=False, unauth_mail=None), "required")
    assert required["verdict"] == "FAIL" and required["finding"] == "submission_without_tls"
    assert run(dict(), "starttls")["verdict"] == "PASS"  # 530 at MAIL


# -- trick forms through every own name ----------------------------------------------------------
BACKUP = dict(hostname="backup.other.test", local_domains=(), relay_domains=("relay.test",))
BACKUP_TARGET = {"hostname": "backup.other.test", "local_domains": [], "relay_domains": ["relay.test"], "test_mailbox": None}


def test_backup_mx_percent_hack_through_its_relay_domain_fails(scenario):
    """The banner name lies outside the relay domain: forms at the host name are refused, but the
    percent hack through the relay domain relays (the canary receives it)."""
    outcome, host = scenario(mx=BACKUP, target=BACKUP_TARGET, probes=["T11", "T12", "T13"])
    mx = {r["case"]: r for r in results(outcome, host.mx.port) if r["probe"] in ("T11", "T12")}
    assert mx["P12"]["verdict"] == "PASS"  # at backup.other.test
    hack = mx["P12@relay.test"]
    assert hack["verdict"] == "FAIL" and hack["finding"] == "open_relay" and "canary" in hack["reason"]
    assert {"P17@relay.test", "P20@relay.test", "P23@relay.test"} <= set(mx)
    assert verdicts(outcome, "T13", host.mx.port) == {("T13", "relay.test"): "PASS"}


def test_address_literals_of_every_address_and_the_greeting_name(scenario):
    """Literal forms for each of the target's addresses; name forms for the name the server greets
    with when it is not a configured one - RCPT only there: the guard allows DATA through configured
    names alone, so acceptance is an unconfirmed trick form, not a message to an unvetted host."""
    greeted = dict(hostname="gw.example.test", relay_domains=("gw.example.test",))
    # (127.0.0.2: a second address on loopback where nothing listens; only 127.0.0.1 is judged here)
    outcome, host = scenario(mx=greeted, target={"addresses": ["127.0.0.1", "127.0.0.2"]}, probes=["T11", "T12"], retries=0)
    mx = {r["case"]: r for r in results(outcome, host.mx.port) if r["address"] == "127.0.0.1"}
    assert {"P11", "P11@[127.0.0.2]", "P05@[127.0.0.2]", "P22@[127.0.0.2]"} <= set(mx)
    assert {"P03@gw.example.test", "P12@gw.example.test"} <= set(mx)
    p12 = mx["P12@gw.example.test"]
    assert p12["verdict"] == "WARN" and p12["finding"] == "trick_form_accepted"
    assert not any("gw.example.test" in rcpt for t in host.mx.transactions for rcpt in t["rcpts"])
    assert mx["P12"]["verdict"] == "PASS"


def test_ehlo_name_forms_run_when_it_is_yet_another_name(scenario):
    named = dict(ehlo_hostname="relay-gw.example.test", relay_domains=("relay-gw.example.test",))
    outcome, host = scenario(mx=named, probes=["T11", "T12"])
    mx = {r["case"]: r for r in results(outcome, host.mx.port)}
    assert {"P03@relay-gw.example.test", "P12@relay-gw.example.test", "P23@relay-gw.example.test"} <= set(mx)
    assert mx["P12@relay-gw.example.test"]["verdict"] == "WARN"  # accepted, RCPT only: unvetted name
    assert mx["P12@relay-gw.example.test"]["finding"] == "trick_form_accepted"
    assert not any(r["case"].endswith("@mx.example.test") for r in outcome["results"] if r["case"])


# -- user forms -----------------------------------------------------------------------------------
def test_extra_forms_run_with_every_hosted_domain(scenario):
    forms = [
        {"sender": "<probe@{literal}>", "rcpt": "<{local}%{canary}@{domain}>", "name": "percent"},
        {"sender": "<{foreign}!probe>", "rcpt": "<{local}@{foreign}>"},
    ]
    outcome, host = scenario(mx=BACKUP, target=dict(BACKUP_TARGET, local_domains=["example.test"]), probes=["T11", "T12"], extra_forms=forms)
    mx = {r["case"]: r for r in results(outcome, host.mx.port)}
    assert mx["X01@relay.test@[127.0.0.1]"]["verdict"] == "FAIL"
    assert mx["X01@relay.test@[127.0.0.1]"]["finding"] == "open_relay"
    assert mx["X01@example.test@[127.0.0.1]"]["verdict"] == "PASS"
    assert mx["X01@relay.test@[127.0.0.1]"]["probe"] == "T12" and "percent" in mx["X01@relay.test@[127.0.0.1]"]["title"]
    assert mx["X02"]["probe"] == "T11" and mx["X02"]["verdict"] == "PASS"
    assert any(c.startswith("MAIL FROM:<example.net!probe>") for c in host.mx.commands)
    assert any(c.startswith("RCPT TO:<t11x02-") and c.endswith("@canary.test>") for c in host.mx.commands)


@pytest.mark.parametrize(
    "forms, words",
    [
        ([{"sender": "<a@{foreign}>", "rcpt": "<{local}@{canary}>\r\nRSET"}], "printable ASCII"),
        ([{"sender": "<a@{foreign}>\x00", "rcpt": "<{local}@{canary}>"}], "printable ASCII"),
        ([{"sender": "<a@{foreign}> SIZE=1", "rcpt": "<{local}@{canary}>"}], "printable ASCII"),
        ([{"sender": "<a@{foreign}>", "rcpt": "<{local}@{evil}>"}], "unknown placeholder"),
        ([{"sender": "<a@{foreign}>", "rcpt": "<user@{canary}>"}], "{local}"),
        ([{"sender": "<a@{foreign}>", "rcpt": "<{local}@other.example>"}], "{canary} or {foreign}"),
        ([{"sender": "<a@{foreign}>", "rcpt": "<{local}@{canary}>" + "x" * 200}], "longer than"),
        ([{"sender": "<a@{foreign}>", "rcpt": "<{local}@{canary}}>"}], "unbalanced"),
        ([{"sender": "<a@{foreign}>"}], "rcpt"),
        ([{"sender": "<a>", "rcpt": "<{local}@{canary}>", "data": "x"}], "a dict with"),
        ("<a>", "a list"),
        ([{"sender": "<a>", "rcpt": "<{local}@{canary}>"}] * 33, "at most 32"),
    ],
)
def test_extra_forms_are_validated_strictly(forms, words):
    with pytest.raises(engine.ConfigError) as error:
        engine.normalize({"targets": [{"name": "x", "addresses": ["127.0.0.1"]}], "extra_forms": forms})
    assert words in str(error.value)


# -- extra ports ----------------------------------------------------------------------------------
def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_extra(behaviour, closed=False, canary=None):
    async def go():
        declared = fakesmtp.FakeSMTP(fakesmtp.Behaviour(), None)
        extra = fakesmtp.FakeSMTP(behaviour, None)
        port = await declared.start()
        extra_port = _closed_port() if closed else await extra.start()
        target = {
            "name": "x",
            "addresses": ["127.0.0.1"],
            "hostname": "mx.example.test",
            "local_domains": ["example.test"],
            "test_mailbox": "alice@example.test",
            "listeners": [{"port": port, "role": "mx", "tls": "none"}],
            "extra_ports": [extra_port, port],
        }
        params = {"targets": [target], "timeout": 1, "retry_delay": 0.05}
        if canary:
            params["canary"] = canary
        try:
            return await engine.run_async(params), extra_port, extra
        finally:
            await declared.stop()
            await extra.stop()

    outcome, extra_port, server = asyncio.run(go())
    check_findings(outcome)
    return outcome, extra_port, server


def test_open_extra_port_is_probed_with_mx_semantics(spool):
    outcome, port, server = _run_extra(
        fakesmtp.Behaviour(relay="accept", auth_on_mx=True, auth_before_tls=True, spool=spool), canary={"domain": "canary.test", "spool": spool, "wait": 0.5}
    )
    extra = results(outcome, port)
    probes_run = {r["probe"] for r in extra}
    assert {"T00", "T01", "T02", "T11", "T12", "T15"} <= probes_run
    assert not probes_run & {"T13", "T14", "T17", "T18"}  # no inbound duty, no smuggling mailbox there
    by = {(r["probe"], r["case"]): r for r in extra}
    assert by[("T11", "P02")]["verdict"] == "FAIL" and by[("T11", "P02")]["finding"] == "open_relay"
    assert by[("T01", "plain")]["verdict"] == "FAIL" and by[("T01", "plain")]["finding"] == "cleartext_auth"
    # the declared port listed again in extra_ports is probed once, as declared
    assert len([r for r in outcome["results"] if r["probe"] == "T00"]) == 2


def test_closed_extra_port_is_skipped_not_a_finding():
    outcome, port, unused = _run_extra(fakesmtp.Behaviour(), closed=True)
    extra = results(outcome, port)
    assert extra and all(r["verdict"] == "SKIP" and r["finding"] is None for r in extra)
    assert "closed" in next(r for r in extra if r["probe"] == "T00")["reason"]
    assert outcome["summary"]["FAIL"] == 0


def test_secure_extra_port_passes():
    outcome, port, unused = _run_extra(fakesmtp.Behaviour())
    extra = results(outcome, port)
    assert extra and all(r["verdict"] == "PASS" for r in extra), [(r["probe"], r["case"], r["verdict"], r["reason"]) for r in extra if r["verdict"] != "PASS"]


def _run_kept_out(behaviour, closed):
    """One declared submission listener the policy keeps this vantage out of (``reachable: false``:
    a null client's loopback-only port 25 probed from outside, a connect list)."""

    async def go():
        server = fakesmtp.FakeSMTP(behaviour, None)
        port = _closed_port() if closed else await server.start()
        listener = {"port": port, "role": "mx", "tls": "none", "relay": "refused", "reachable": False}
        target = {"name": "x", "addresses": ["127.0.0.1"], "hostname": "null.example.test", "listeners": [listener]}
        try:
            return await engine.run_async({"targets": [target], "timeout": 1, "retry_delay": 0.05})
        finally:
            await server.stop()

    outcome = asyncio.run(go())
    check_findings(outcome)
    return outcome


def test_a_closed_listener_the_policy_keeps_the_vantage_out_of_is_not_a_finding():
    """Closed is what the policy says there (before: T00 FAIL listener_unreachable, high, on every
    correctly configured null client verified from outside)."""
    outcome = _run_kept_out(fakesmtp.Behaviour(), closed=True)
    assert outcome["results"] and all(r["verdict"] == "SKIP" and r["finding"] is None for r in outcome["results"])
    reach = next(r for r in outcome["results"] if r["probe"] == "T00")
    assert "keeps this vantage out" in reach["reason"] and "closed" in reach["reason"]


def test_an_open_listener_the_policy_keeps_the_vantage_out_of_is_probed_as_declared(spool):
    outcome = _run_kept_out(fakesmtp.Behaviour(relay="accept", spool=spool), closed=False)
    by = {(r["probe"], r["case"]): r for r in outcome["results"]}
    assert by[("T00", None)]["verdict"] == "PASS"
    assert by[("T11", "P02")]["verdict"] == "FAIL"  # open after all, and it relays: that is a finding


def test_reachable_is_a_boolean():
    with pytest.raises(engine.ConfigError, match="reachable must be true or false"):
        engine.normalize({"targets": [{"name": "x", "addresses": ["127.0.0.1"], "listeners": [{"port": 25, "reachable": "no"}]}]})


@pytest.mark.parametrize(
    "ports, words", [([0], "1-65535"), (["x"], "not a port"), ([True], "not a port"), (list(range(1, 20)), "at most 16"), ("25", "a list")]
)
def test_extra_ports_are_validated(ports, words):
    with pytest.raises(engine.ConfigError) as error:
        engine.normalize({"targets": [{"name": "x", "addresses": ["127.0.0.1"], "extra_ports": ports}]})
    assert words in str(error.value)


class _ScriptedClient:
    """MAIL/RCPT/RSET answered from a table: {sender: (code, text)}; records what was sent."""

    def __init__(self, answers):
        self.answers = answers
        self.sent = []

    async def mail(self, sender):
        self.sent.append("MAIL " + sender)
        code, text = self.answers.get(sender, (250, "OK"))
        return Reply(code=code, lines=(text,), enhanced=None)

    async def rcpt(self, rcpt):
        self.sent.append("RCPT " + rcpt)
        return Reply(code=550, lines=("relay not permitted",), enhanced=None)

    async def rset(self):
        self.sent.append("RSET")


@pytest.mark.parametrize("code, memoised", [(501, True), (553, True), (503, False), (550, False)])
def test_only_an_address_refusal_of_a_form_sender_is_remembered(code, memoised):
    """A form sender refused with 501/553 (about the address: Exim's "domain literals not allowed")
    goes straight to the clean sender on the listener's later forms; a 503 (bad sequence) or a
    550 policy answer may depend on the session, so the next form asks with its own sender again.
    The verdict is the clean sender's either way."""
    from types import SimpleNamespace

    state = engine.ListenerState(reuse=True)
    ctx = SimpleNamespace(state=state, listener=SimpleNamespace(role="mx", relay="denied"), clean_sender="probe@canary.test")
    trick, clean = "<probe@[198.51.100.144]>", "<probe@canary.test>"
    verdicts_seen = []
    for index in range(2):
        client = _ScriptedClient({trick: (code, "%s: domain literals not allowed" % trick)})
        outcome, mail, rcpt = asyncio.run(probes._transaction(ctx, client, trick, "<t%d%%canary.test@[198.51.100.144]>" % index, retry_sender=clean))
        verdicts_seen.append((outcome.verdict, mail.code))
        asked = "MAIL " + trick in client.sent
        assert asked if index == 0 else asked != memoised, (index, client.sent)
        assert client.sent[-2:] == ["MAIL " + clean, "RCPT <t%d%%canary.test@[198.51.100.144]>" % index]
    assert verdicts_seen[0] == verdicts_seen[1] == ("PASS", 250)  # the clean sender taken, the relay refused at RCPT
