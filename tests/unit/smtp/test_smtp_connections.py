# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connections the engine saves without changing what a case proves: T07 judged on T00's
TLS-first connection, T16 as the last case of a shared plaintext session."""

from __future__ import annotations

from conftest import verdicts

from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine


def _t16(outcome, port):
    return next(r for r in outcome["results"] if r["probe"] == "T16" and r["port"] == port)


def test_t07_is_judged_on_the_tls_first_connection_of_t00(scenario):
    outcome, host = scenario(probes=["T07"], transcripts="all")
    assert verdicts(outcome, port=host.submissions.port) == {("T00", None): "PASS", ("T07", None): "PASS"}
    assert host.submissions.connections == 1 and host.submissions.tls_handshakes == 1
    t07 = next(r for r in outcome["results"] if r["probe"] == "T07")
    assert t07["reason"].startswith("TLS handshake first, greeting inside TLS (TLSv1.")
    assert t07["reply"]["code"] == 220 and t07["reply"]["stage"] == "BANNER"
    assert t07["transcript"][0].startswith("*** connect") and "*** TLS established" in t07["transcript"][1]
    # the reference mode still connects for T07 itself, with the same verdict and reason
    slow, slow_host = scenario(probes=["T07"], transcripts="all", reuse=False)
    assert slow_host.submissions.connections == 2
    slow_t07 = next(r for r in slow["results"] if r["probe"] == "T07")
    assert (slow_t07["verdict"], slow_t07["reason"]) == (t07["verdict"], t07["reason"])


def test_t16_runs_last_on_a_shared_plaintext_session(scenario):
    # concurrency 1: one connection per listener at a time, as in large runs
    outcome, host = scenario(transcripts="all", concurrency=1)
    assert verdicts(outcome)[("T16", None)] == "PASS" and outcome["summary"]["INCONCLUSIVE"] == 0
    for server in (host.mx, host.submission):
        lines = _t16(outcome, server.port)["transcript"]
        injected = lines.index("C: STARTTLS + NOOP\\r\\n")
        assert lines[injected - 1].startswith("S: 250") and lines[-2:] == ["C: QUIT", "S: 221 2.0.0 Bye"]
    # on port 25 the session had served relay cases: one RSET, answered before STARTTLS went out
    mx_lines = _t16(outcome, host.mx.port)["transcript"]
    assert mx_lines.count("C: RSET") == 1 and mx_lines.index("C: RSET") < mx_lines.index("C: STARTTLS + NOOP\\r\\n")
    # T16 costs no connection of its own
    without, without_host = scenario(concurrency=1, probes=[p for p in engine.DEFAULT_PROBES if p != "T16"])
    assert "T16" not in {r["probe"] for r in without["results"]}
    assert host.mx.connections == without_host.mx.connections
    assert host.submission.connections == without_host.submission.connections
    slow, unused_host = scenario(concurrency=1, reuse=False)
    assert verdicts(slow) == verdicts(outcome)
    assert host.mx.max_errors <= 8 and host.submission.max_errors <= 8


def test_t16_on_a_shared_session_still_catches_the_injection(scenario):
    outcome, host = scenario(mx=dict(keep_plaintext_after_starttls=True), transcripts="all", concurrency=1)
    assert verdicts(outcome, port=host.mx.port)[("T16", None)] == "FAIL"
    assert verdicts(outcome, port=host.submission.port)[("T16", None)] == "PASS"
    assert "C: RSET" in _t16(outcome, host.mx.port)["transcript"]
