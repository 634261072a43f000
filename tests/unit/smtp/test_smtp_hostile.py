# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""T21 (TLS versions and suites), T22 (unverified relay decision), connect/greeting timeouts and
verdict integrity against hostile servers (issue 11 items 3 and 5, issue 12)."""

from __future__ import annotations

import asyncio
import json
import ssl
import warnings

import hostilesmtp
import pytest
from conftest import verdicts

from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine, tlsprobe
from ansible_collections.mailsec.relay.plugins.module_utils.smtp.client import SMTPClient
from ansible_collections.mailsec.relay.plugins.module_utils.smtp.reply import MAX_LINES
from ansible_collections.mailsec.relay.plugins.module_utils.smtp.safety import SafetyPolicy
from smtp_fakes import fakesmtp

USER, SECRET = "alice", "Wm4kT8zQ2vRx9LbJ"  # no 4-character piece is an English word


def _run(servers, listeners, users=None, password=SECRET, **params):
    """Start ``servers`` (FakeSMTP instances), probe them as one target with ``listeners`` (port filled in)."""

    async def go():
        for server in servers:
            await server.start("127.0.0.1")
        try:
            specs = [dict(item, port=server.port) for item, server in zip(listeners, servers)]
            target = {"name": "h", "addresses": ["127.0.0.1"], "hostname": "mx.example.test", "local_domains": ["example.test"], "listeners": specs}
            if users:
                target["auth"] = {"username": USER, "password": password}
            options = {"targets": [target], "timeout": 1, "greeting_timeout": 1, "retry_delay": 0.05}
            options.update(params)
            return await engine.run_async(options)
        finally:
            for server in servers:
                await server.stop()

    return asyncio.run(go())


def _weak_context(certfile, keyfile, ciphers="ALL:@SECLEVEL=0"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers(ciphers)
    context.load_cert_chain(certfile, keyfile)
    return context


MX = {"role": "mx", "tls": "starttls"}
SUBMISSIONS = {"role": "submission", "tls": "implicit"}


# -- T21 ---------------------------------------------------------------------------------------
def test_t21_old_tls_is_fail_on_submission_and_warn_on_mx(tmp_path):
    try:
        context = _weak_context(*fakesmtp.make_cert(str(tmp_path)), ciphers="ALL:eNULL:@SECLEVEL=0")
    except ssl.SSLError as exc:
        pytest.skip("the local OpenSSL cannot even build a TLS 1.0 server context: %s" % exc)
    servers = [fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="mx"), context), fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="submission"), context, implicit=True)]
    outcome = _run(servers, [MX, SUBMISSIONS], probes=["T21"])
    mx, sub = (verdicts(outcome, "T21", server.port) for server in servers)
    results = {(r["port"], r["case"]): r for r in outcome["results"] if r["probe"] == "T21"}
    for version in ("TLSv1.0", "TLSv1.1"):
        if tlsprobe.offer_context(version)[0] is None:
            # this machine cannot offer it: not testable, never a PASS
            assert mx[("T21", version)] == sub[("T21", version)] == "SKIP"
            assert results[(servers[0].port, version)]["reason"].startswith("not testable here")
            continue
        assert mx[("T21", version)] == "WARN" and sub[("T21", version)] == "FAIL"
        assert results[(servers[1].port, version)]["finding"] == "weak_tls"
        assert results[(servers[1].port, version)]["severity"] == "high"
        assert results[(servers[0].port, version)]["severity"] == "low"
        assert "below the minimum TLSv1.2" in results[(servers[1].port, version)]["reason"]
    assert mx[("T21", "TLSv1.2")] == sub[("T21", "TLSv1.2")] == "PASS"
    # every class the local library can offer was accepted by this server (ALL at level 0)
    if tlsprobe.offer_context("NULL")[0] is not None:
        assert sub[("T21", "NULL")] == "FAIL" and mx[("T21", "NULL")] == "WARN"
    if tlsprobe.offer_context("anon")[0] is not None:
        # anonymous suites: a warning on submission (no server authentication), opportunistic TLS on 25
        assert sub[("T21", "anon")] == "WARN" and results[(servers[1].port, "anon")]["finding"] == "weak_tls"
        assert mx[("T21", "anon")] == "PASS" and "RFC 7435" in results[(servers[0].port, "anon")]["reason"]
    # a lower minimum makes TLS 1.1 acceptable
    lowered = _run([fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="submission"), context, implicit=True)], [SUBMISSIONS], probes=["T21"], tls_min_version="TLSv1.1")
    got = verdicts(lowered, "T21")
    if tlsprobe.offer_context("TLSv1.1")[0] is not None:
        assert got[("T21", "TLSv1.1")] == "PASS" and got[("T21", "TLSv1.0")] == "FAIL"


def test_t21_hardened_server_refuses_old_tls(tls_context):
    servers = [fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="submission"), tls_context, implicit=True)]
    got = verdicts(_run(servers, [SUBMISSIONS], probes=["T21"]), "T21")
    assert got[("T21", "TLSv1.2")] == got[("T21", "TLSv1.3")] == "PASS"
    for case in ("TLSv1.0", "TLSv1.1", "NULL", "EXPORT", "RC4", "anon"):
        assert got[("T21", case)] in ("PASS", "SKIP")  # refused, or not testable here


def test_t21_lean_endpoint_answers_like_the_fake_host(tls_context):
    """smtp_fakes/lean_smtp.py (the fleet bench's endpoint) and FakeHost: the same T21 results."""
    from smtp_fakes import lean_smtp  # pylint: disable=import-outside-toplevel

    async def go():
        fake, lean = fakesmtp.FakeHost(tls_context), lean_smtp.LeanHost(tls_context, "mx.example.test")
        await fake.start()
        await lean.start()
        try:
            spec = fake.target()
            first = await engine.run_async({"targets": [spec], "timeout": 2, "probes": ["T21"]})
            for listener, server in zip(spec["listeners"], lean.servers):
                listener["port"] = server.port
            second = await engine.run_async({"targets": [spec], "timeout": 2, "probes": ["T21"]})
            return first, second, [s.port for s in fake.servers], [s.port for s in lean.servers]
        finally:
            await fake.stop()
            await lean.stop()

    first, second, fake_ports, lean_ports = asyncio.run(go())

    def table(outcome, ports):
        return {(ports.index(r["port"]), r["probe"], r["case"]): (r["verdict"], r["reason"]) for r in outcome["results"]}

    assert table(first, fake_ports) == table(second, lean_ports) and len(table(first, fake_ports)) == 27


def test_t21_what_the_local_openssl_cannot_offer_is_skip_never_pass(tls_context, monkeypatch):
    monkeypatch.setattr(tlsprobe, "_OFFERS", {})  # (offers are built once per process: not from this library)
    monkeypatch.setattr(tlsprobe.ssl, "HAS_TLSv1", False)
    monkeypatch.setattr(tlsprobe, "WEAK_SUITES", (("NULL", "eNULL"), ("EXPORT", "NO-SUCH-CIPHER"), ("RC4", "RC4"), ("anon", "aNULL")))
    servers = [fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="mx"), tls_context)]
    outcome = _run(servers, [MX], probes=["T21"])
    by_case = {r["case"]: r for r in outcome["results"] if r["probe"] == "T21"}
    for case in ("TLSv1.0", "EXPORT"):
        assert by_case[case]["verdict"] == "SKIP" and by_case[case]["reason"].startswith("not testable here")
    assert tlsprobe.offer_context("TLSv1.0") == (None, "%s has no TLSv1.0" % ssl.OPENSSL_VERSION)


def _grouped_and_reference(make_servers, listeners, **params):
    """T21 with grouped offers (the default) and in the reference mode (reuse: false, one offer per
    connection) against fresh servers each: (grouped, reference, connections of each)."""
    runs = []
    for reuse in (True, False):
        servers = make_servers()
        outcome = _run(servers, listeners, probes=["T21"], transcripts="all", reuse=reuse, **params)
        for r in outcome["results"]:
            r["server"] = [server.port for server in servers].index(r["port"])
            r["reuse"] = reuse
        runs.append((outcome, [server.connections for server in servers]))
    (grouped, opened), (reference, reference_opened) = runs
    return grouped, reference, opened, reference_opened


def _t21_table(outcome):
    return {(r["server"], r["case"]): r["verdict"] for r in outcome["results"] if r["probe"] == "T21"}


def test_t21_hardened_server_refuses_each_group_in_one_handshake(tls_context):
    """A hardened server refuses the band below the minimum (TLS 1.0-1.1) and the weak suite classes
    in one handshake each: 2 connections fewer per TLS listener, the same verdicts as one offer per
    connection, and each case's evidence is the handshake that proved it."""

    def servers():
        mx = fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="mx"), tls_context)
        return [mx, fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="submission"), tls_context, implicit=True)]

    grouped, reference, opened, reference_opened = _grouped_and_reference(servers, [MX, SUBMISSIONS])
    assert _t21_table(grouped) == _t21_table(reference)
    saved = (len(tlsprobe.version_group("TLSv1.2")) - 1 if tlsprobe.version_group("TLSv1.2") else 0) + (
        len(tlsprobe.suite_group()) - 1 if tlsprobe.suite_group() else 0
    )
    assert reference_opened[0] - opened[0] == saved  # (the STARTTLS server counts refused handshakes; implicit TLS ones never reach it)
    by_case = {(r["port"], r["case"]): r for r in grouped["results"] if r["probe"] == "T21"}
    for (unused, case), result in by_case.items():
        if case in tlsprobe.version_group("TLSv1.2") or case in tlsprobe.suite_group():
            assert result["verdict"] == "PASS" and "one ClientHello for" in result["reason"], result
            # the case that waited for the other's handshake carries that handshake's evidence line
            assert any(line.startswith("*** handshake offering only") for line in result["transcript"]), (result["case"], result["transcript"])
    # TLS 1.3 on the implicit-TLS listener: the reachability check's own handshake negotiated it,
    # and that handshake is the evidence (no T21 handshake of its own); the reference mode offers it
    tls13 = {r["reuse"]: r for r in grouped["results"] + reference["results"] if r["probe"] == "T21" and r["case"] == "TLSv1.3" and r["server"] == 1}
    assert "negotiated by the reachability check" in tls13[True]["reason"], tls13[True]
    assert any(line.startswith("*** TLS established: TLSv1.3") for line in tls13[True]["transcript"]), tls13[True]["transcript"]
    assert "negotiated by" not in tls13[False]["reason"] and tls13[True]["verdict"] == tls13[False]["verdict"] == "PASS"


def test_t21_an_accepted_group_offer_drills_down(tmp_path):
    """A server that takes TLS 1.0 only: the band offer negotiates TLS 1.0 (proven accepted by that
    handshake), TLS 1.1 gets its own refused handshake; an anonymous-only weak class: the suite
    offer proves anon, NULL gets its own. Verdicts as with one offer per connection."""
    certfile, keyfile = fakesmtp.make_cert(str(tmp_path))
    try:
        old = _weak_context(certfile, keyfile)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.maximum_version = ssl.TLSVersion.TLSv1
        anon = _weak_context(certfile, keyfile, ciphers="aNULL:!eNULL:HIGH:@SECLEVEL=0")
    except ssl.SSLError as exc:
        pytest.skip("the local OpenSSL cannot build these server contexts: %s" % exc)
    if not tlsprobe.version_group("TLSv1.2") or "anon" not in tlsprobe.suite_group():
        pytest.skip("the local OpenSSL offers no TLS 1.0-1.1 band or no anonymous suites")

    def servers():
        # (STARTTLS for the TLS 1.0 server: its greeting needs no handshake the engine would refuse)
        return [fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="mx"), old), fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="submission"), anon, implicit=True)]

    grouped, reference, unused_opened, unused_reference_opened = _grouped_and_reference(servers, [MX, SUBMISSIONS])
    table = _t21_table(grouped)
    assert table == _t21_table(reference)
    assert table[(0, "TLSv1.0")] == "WARN" and table[(0, "TLSv1.1")] == table[(0, "TLSv1.2")] == "PASS"
    assert table[(1, "anon")] == "WARN" and table[(1, "NULL")] == "PASS"
    reasons = {(r["server"], r["case"]): r["reason"] for r in grouped["results"] if r["probe"] == "T21"}
    assert "offered together with TLSv1.0 and TLSv1.1" in reasons[(0, "TLSv1.0")], reasons
    assert "one ClientHello" not in reasons[(0, "TLSv1.1")]  # refused in a handshake of its own
    assert "offered together with %s cipher suites" % "+".join(tlsprobe.suite_group()) in reasons[(1, "anon")], reasons
    assert "one ClientHello" not in reasons[(1, "NULL")]


def test_tls_min_version_is_checked():
    with pytest.raises(engine.ConfigError, match="tls_min_version"):
        engine.Options({"tls_min_version": "SSLv3"})
    with pytest.raises(engine.ConfigError, match="unverified"):
        engine.Options({"unverified": "ignore"})


@pytest.mark.parametrize(
    "field, value, where",
    [
        ("hostname", "mx.example.test\r\nVRFY root", "targets[0].hostname"),
        ("local_domains", ["example.test>\r\nRSET"], "targets[0].local_domains[0]"),
        ("relay_domains", ["ok.test", "ex\u0430mple.test"], "targets[0].relay_domains[1]"),
        ("test_mailbox", "postmaster@example.test\nVRFY x", "targets[0].test_mailbox"),
        ("refused_recipients", [{"address": "a@b.test>\r\nRSET", "kind": "unknown"}], "targets[0].refused_recipients[0]"),
        ("auth", {"username": "alice\r\nVRFY root", "password": "x"}, "targets[0].auth.username"),
    ],
)
def test_target_values_that_would_reach_a_command_follow_their_grammar(field, value, where):
    """relay_probe is a public module: its targets are checked before anything connects (the verify
    role checks them too, and the client refuses a line break in any command besides)."""
    target = {"name": "mx", "addresses": ["127.0.0.1"], "hostname": "mx.example.test", field: value}
    with pytest.raises(engine.ConfigError) as error:
        engine.normalize({"targets": [target]})
    assert str(error.value).startswith(where), str(error.value)


def test_target_names_in_unicode_are_probed_as_a_labels():
    targets, opts = engine.normalize(
        {"targets": [{"name": "mx_1", "addresses": ["127.0.0.1"], "local_domains": ["M\u00fcnchen.Test."], "relay_domains": ["Example.TEST"]}]}
    )
    assert targets[0].hostname == "mx_1"  # an inventory name as it is (it may hold '_' or be an address)
    assert targets[0].local_domains == ["xn--mnchen-3ya.test"] and targets[0].relay_domains == ["example.test"]
    with pytest.raises(engine.ConfigError, match="ehlo_name"):
        engine.Options({"ehlo_name": "prober.example.test\r\nVRFY root"})
    assert engine.Options({"ehlo_name": "[198.51.100.7]"}).ehlo_name == "[198.51.100.7]"
    with pytest.raises(engine.ConfigError, match="canary.domain"):
        engine.Options({"canary": {"domain": "canary.test>\r\nRSET", "spool": "/tmp"}})
    assert engine.Options({"canary": {"domain": "Canary.Test", "spool": "/tmp"}}).canary_domain == "canary.test"


# -- timeouts and greetings ----------------------------------------------------------------
def test_slow_multiline_greeting_is_waited_for(tls_context):
    """A greeting after 1.5 s (reverse DNS, postscreen) with reply timeout 0.5 s: greeting_timeout waits."""

    def server():
        return fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="mx", tarpit=1.5, banner="multiline"), tls_context)

    outcome = _run([server()], [MX], probes=["T11", "T13", "T20"], timeout=0.5, greeting_timeout=3)
    got = verdicts(outcome)
    assert got[("T00", None)] == "PASS" and got[("T11", "P02")] == "PASS" and got[("T20", "default")] == "PASS"
    assert outcome["summary"]["INCONCLUSIVE"] == 0 and "T22" not in {r["probe"] for r in outcome["results"]}
    t00 = next(r for r in outcome["results"] if r["probe"] == "T00")
    assert "this server is fake and multi-line" in t00["reason"]
    # the same server with a greeting timeout shorter than its wait: never greets (T00 FAIL), no PASS
    short = _run([server()], [MX], probes=["T11", "T20"], timeout=0.5, greeting_timeout=0.5, retries=0)
    assert verdicts(short, "T00") == {("T00", None): "FAIL"} and short["summary"]["PASS"] == 0


class _OneSlowGreeting(fakesmtp._Session):
    """Greets late (2 s) on the server's 3rd connection only."""

    async def run(self):
        if self.srv.connections == 3:
            await asyncio.sleep(2)
        await super().run()


def test_one_slow_greeting_is_retried_not_given_up(tls_context):
    server = fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="mx"), tls_context)
    server.session_class = _OneSlowGreeting
    outcome = _run([server], [MX], probes=["T11", "T13", "T15", "T19", "T20"], greeting_timeout=0.5, retries=1, reuse=False)
    assert server.connections > 5
    assert outcome["summary"]["INCONCLUSIVE"] == 0, [r["reason"] for r in outcome["results"] if r["verdict"] != "PASS"]
    assert verdicts(outcome)[("T20", "default")] == "PASS"
    # without retries the case that met the slow greeting gives up alone; the others are still probed
    server = fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="mx"), tls_context)
    server.session_class = _OneSlowGreeting
    outcome = _run([server], [MX], probes=["T11", "T13", "T15", "T19"], greeting_timeout=0.5, retries=0, reuse=False)
    given_up = [r for r in outcome["results"] if r["verdict"] == "INCONCLUSIVE"]
    assert len(given_up) == 1 and "no reply within 0.5s" in given_up[0]["reason"], given_up
    assert outcome["summary"]["PASS"] > 20


def test_unverified_relay_decision_fails_or_warns():
    def mute():
        return fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="mx", banner="mute"), None)

    plain = {"role": "mx", "tls": "none"}
    outcome = _run([mute()], [plain], probes=["T11", "T20"], timeout=0.3, retries=0)
    t22 = [r for r in outcome["results"] if r["probe"] == "T22"]
    assert [(r["verdict"], r["finding"], r["severity"]) for r in t22] == [("FAIL", "unverified", "high")]
    assert "T11/P02 INCONCLUSIVE" in t22[0]["reason"] and "T20/default INCONCLUSIVE" in t22[0]["reason"]
    warned = _run([mute()], [plain], probes=["T11", "T20"], timeout=0.3, retries=0, unverified="warn")
    assert verdicts(warned, "T22") == {("T22", None): "WARN"}
    assert [(r["finding"], r["severity"]) for r in warned["results"] if r["probe"] == "T22"] == [("unverified", "medium")]
    assert all(r["verdict"] != "PASS" for r in outcome["results"] if r["probe"] != "T00")


# -- hostile servers (issue 12) ------------------------------------------------------------------
def _hostile(role="mx", relay="refuse", tls=None, implicit=False, password=SECRET, **hostility):
    behaviour = fakesmtp.Behaviour(role=role, relay=relay, users={USER: password})
    return hostilesmtp.HostileSMTP(behaviour, tls, implicit, hostilesmtp.Hostility(**hostility))


PLAIN_MX = {"role": "mx", "tls": "none"}


@pytest.mark.parametrize("relay, verdict", [("accept", "FAIL"), ("refuse", "PASS")])
def test_ten_thousand_line_ehlo_is_bounded_and_still_judged(relay, verdict):
    outcome = _run([_hostile(relay=relay, ehlo_lines=10000)], [PLAIN_MX], probes=["T11", "T20"], transcripts="all")
    got = verdicts(outcome)
    assert got[("T11", "P02")] == verdict and got[("T20", "default")] == verdict
    p02 = next(r for r in outcome["results"] if r["case"] == "P02")
    assert len(p02["transcript"]) <= 80


def test_oversized_reply_keeps_its_first_lines_and_its_last():
    async def go():
        server = _hostile(ehlo_lines=10000)
        await server.start("127.0.0.1")
        client = SMTPClient("127.0.0.1", server.port, guard=SafetyPolicy().guard(), timeout=2)
        try:
            await client.connect()
            reply = await client.ehlo()
            return reply, client.extensions, client.transcript
        finally:
            await client.close()
            await server.stop()

    reply, extensions, transcript = asyncio.run(go())
    assert reply.code == 250 and len(reply.lines) == MAX_LINES
    assert reply.lines[-1] == "ENHANCEDSTATUSCODES" and "ENHANCEDSTATUSCODES" in extensions
    # 10,004 lines: the greeting line, 10,000 fillers, PIPELINING, SIZE, ENHANCEDSTATUSCODES
    assert "*** 9904 more reply lines not kept (reply bounded to 100 lines)" in transcript


def test_554_greeting_then_accept_all_is_probed_and_fails():
    outcome = _run([_hostile(relay="accept", greeting_code=554)], [PLAIN_MX], probes=["T11", "T15", "T20"])
    got = verdicts(outcome)
    assert got[("T11", "P02")] == "FAIL" and got[("T20", "default")] == "FAIL"
    assert all(v != "PASS" for (probe, unused), v in got.items() if probe in ("T11", "T15"))


def test_554_greeting_held_to_is_still_a_refusal():
    # fakesmtp's "refuse" greets 554 and closes: nothing accepted, the relay probes pass
    server = fakesmtp.FakeSMTP(fakesmtp.Behaviour(role="mx", banner="refuse"), None)
    got = verdicts(_run([server], [PLAIN_MX], probes=["T11", "T20"]))
    assert got[("T11", "P02")] == "PASS" and "T22" not in {probe for probe, unused in got}


def test_replies_just_under_the_timeout_still_count():
    outcome = _run([_hostile(relay="accept", reply_delay=0.35)], [PLAIN_MX], probes=["T11", "T20"], timeout=0.5, greeting_timeout=0.5)
    got = verdicts(outcome)
    assert got[("T11", "P02")] == "FAIL" and got[("T20", "default")] == "FAIL"
    assert outcome["summary"]["INCONCLUSIVE"] == 0


def test_auth_echoed_in_pieces_never_reaches_a_result(tls_context):
    servers = [
        _hostile(role="submission", relay="refuse", tls=tls_context, implicit=True, echo_auth=True),
        _hostile(role="submission", relay="refuse", tls=tls_context, implicit=True, echo_auth=True),
    ]
    outcome = _run(servers, [SUBMISSIONS, SUBMISSIONS], users=True, transcripts="all", probes=["T06", "T08", "T09", "T11", "T20"])
    assert all(server.echoed for server in servers)  # the servers did echo, in pieces
    text = json.dumps(outcome)
    whole, parts = hostilesmtp.secret_forms(USER, SECRET)
    assert [form for form in whole if form in text] == []
    assert [piece for piece in parts if piece in text] == []
    auth_lines = [line for r in outcome["results"] for line in r["transcript"] if line.startswith("S: 235")]
    assert auth_lines and all(line == "S: 235 (reply text to AUTH not stored)" for line in auth_lines)
    t09 = [r for r in outcome["results"] if r["probe"] == "T09"]
    assert t09 and all(r["verdict"] == "PASS" for r in t09)


def test_password_pieces_in_public_words_stay_but_echoed_pieces_do_not(tls_context):
    """A test account's password often shares words with the host's names ("test", "example"):
    masking every 4-character piece turned mx.example.test into mx.****.**** in transcripts and
    reasons. A piece inside a word the run names in public (its targets' names, domains and
    addresses) is no secret there; the pieces the server echoes on lines of their own stay masked."""
    secret = "example.test-Wm4kT8"
    server = _hostile(role="submission", relay="refuse", tls=tls_context, implicit=True, echo_auth=True, password=secret)
    outcome = _run([server], [SUBMISSIONS], users=True, password=secret, transcripts="all", probes=["T06", "T08", "T09", "T11", "T20"])
    text = json.dumps(outcome)
    whole, parts = hostilesmtp.secret_forms(USER, secret)
    assert [form for form in whole if form in text] == []
    lines = [line for r in outcome["results"] for line in r["transcript"]]
    # the server echoed every piece on a reply line of its own: none of the password's survives
    # (those of T08's deliberately wrong password may: they are no secret)
    assert set(parts) & set(server.echoed)
    assert [line for line in lines if line.startswith("S: ") and line[7:] in parts] == []
    # the host's own name stays readable (it shares "exam", "test", ... with the password)
    assert any("mx.example.test" in line for line in lines)
    assert not any("****.****" in line for line in lines)


def test_ehlo_reply_beyond_every_bound_falls_back_to_helo():
    # ~60,000 lines, over the 1 MiB a reply may take: HELO on a fresh connection, still judged
    outcome = _run([_hostile(relay="accept", ehlo_lines=60000)], [PLAIN_MX], probes=["T11", "T20"], transcripts="all", timeout=3)
    got = verdicts(outcome)
    assert got[("T11", "P02")] == "FAIL" and got[("T20", "default")] == "FAIL"
    lines = [line for r in outcome["results"] for line in r["transcript"]]
    assert any("HELO instead" in line for line in lines) and "C: HELO prober.mailsec.test" in lines


def test_terminal_escapes_and_bidi_overrides_in_replies_never_reach_results(scenario):
    """A banner or reply is shown in terminals and reports: ESC sequences (clear screen, hyperlinks)
    and bidirectional overrides come out escaped, in reasons, reply texts and transcripts alike."""
    name = "mx.example.test \x1b[2J\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07 \u202eevil\u202c"
    outcome, host = scenario(
        mx=dict(hostname=name, relay="accept"),
        target={"hostname": "mx.example.test"},
        canary=False,
        probes=["T01", "T11"],
        transcripts="all",
    )
    texts = json.dumps(outcome, ensure_ascii=False)
    for raw in ("\x1b", "\x07", "\u202e", "\u202c"):
        assert raw not in texts
    assert "\\x1b[2J" in texts and "\\u202e" in texts  # shown, not dropped: the reader sees what was sent
