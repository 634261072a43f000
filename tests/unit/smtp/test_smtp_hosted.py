# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""T23 (issue 15): addresses a host must refuse at RCPT - an unknown recipient of a relay domain with
recipient validation, any address of a blocked domain - against the fake server."""

from __future__ import annotations

from conftest import verdicts


def test_refused_recipients_pass_when_refused_and_fail_when_accepted(scenario):
    # The fake MX accepts every name of its local domain (no validation) and refuses the rest.
    outcome, host = scenario(
        target={
            "refused_recipients": [
                {"address": "mailsec-probe-unknown-recipient@example.test", "kind": "unknown"},
                {"address": "postmaster@blocked.test", "kind": "blocked"},
            ]
        }
    )
    port = min(r["port"] for r in outcome["results"] if r["probe"] == "T13")
    t23 = dict((r["case"], r) for r in outcome["results"] if r["probe"] == "T23" and r["port"] == port)
    unknown = t23["unknown:mailsec-probe-unknown-recipient@example.test"]
    assert unknown["verdict"] == "FAIL" and "accepted at RCPT" in unknown["reason"]
    assert unknown["finding"] == "accepts_all_recipients"
    blocked = t23["blocked:postmaster@blocked.test"]
    assert blocked["verdict"] == "PASS" and "refused at RCPT" in blocked["reason"]
    # Only on MX listeners, and never on submission.
    assert set(r["port"] for r in outcome["results"] if r["probe"] == "T23") == {port}
    # T23 sends RCPT only: nothing reached the canary spool or the host's DATA.
    assert ("T13", "example.test") in verdicts(outcome, "T13", port)


def test_without_refused_recipients_there_is_no_t23(scenario):
    outcome, host = scenario()
    assert not [r for r in outcome["results"] if r["probe"] == "T23"]


def test_an_accepted_blocked_domain_is_its_own_finding(scenario):
    # example.test is local to the fake MX: as a "blocked" address it is accepted, which is the finding.
    outcome, host = scenario(target={"refused_recipients": [{"address": "postmaster@example.test", "kind": "blocked"}]})
    t23 = [r for r in outcome["results"] if r["probe"] == "T23"]
    assert [r["verdict"] for r in t23] == ["FAIL"] and t23[0]["finding"] == "blocked_domain_accepted"
