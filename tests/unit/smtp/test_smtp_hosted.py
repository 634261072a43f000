# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""T21 (issue 15): addresses a host must refuse at RCPT - an unknown recipient of a relay domain with
recipient validation, any address of a blocked domain - against the fake server."""

from __future__ import annotations

from conftest import verdicts


def test_refused_recipients_pass_when_refused_and_fail_when_accepted(scenario):
    # The fake MX accepts every name of its local domain (no validation) and refuses the rest.
    outcome, host = scenario(target={"refused_recipients": [
        {"address": "mailsec-probe-unknown-recipient@example.test", "kind": "unknown"},
        {"address": "postmaster@blocked.test", "kind": "blocked"},
    ]})
    port = min(r["port"] for r in outcome["results"] if r["probe"] == "T13")
    t21 = dict((r["case"], r) for r in outcome["results"] if r["probe"] == "T21" and r["port"] == port)
    unknown = t21["unknown:mailsec-probe-unknown-recipient@example.test"]
    assert unknown["verdict"] == "FAIL" and "accepted at RCPT" in unknown["reason"]
    blocked = t21["blocked:postmaster@blocked.test"]
    assert blocked["verdict"] == "PASS" and "refused at RCPT" in blocked["reason"]
    # Only on MX listeners, and never on submission.
    assert set(r["port"] for r in outcome["results"] if r["probe"] == "T21") == {port}
    # T21 sends RCPT only: nothing reached the canary spool or the host's DATA.
    assert ("T13", "example.test") in verdicts(outcome, "T13", port)


def test_without_refused_recipients_there_is_no_t21(scenario):
    outcome, host = scenario()
    assert not [r for r in outcome["results"] if r["probe"] == "T21"]
