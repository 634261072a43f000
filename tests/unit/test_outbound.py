# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The outbound probe's evidence (module_utils/outbound.py, roles/verify tasks/outbound.yml), issue 14."""

from __future__ import annotations

import json

from ansible_collections.mailsec.relay.plugins.module_utils import outbound

SMARTHOST, CLIENT = "203.0.113.33", "203.0.113.31"
EXIM_LOG = [
    "2026-12-06 04:10:01 1tA-0001-AB <= probe@pf-null.example.test H=pf-null.example.test [203.0.113.31] P=esmtpsa X=TLS1.3:TLS_AES_256_GCM_SHA384:256"
    " CV=no A=plain_server:nullclient@example.test S=612",
    "2026-12-06 04:11:01 plain_server authenticator failed for pf-null.example.test [203.0.113.31]: 535 Incorrect authentication data",
]


def canary_copy(peer=SMARTHOST, received=None):
    received = received or (
        "Received: from pf-null.example.test ([203.0.113.31])\r\n\tby smarthost.example.test with esmtpsa  (TLS1.3) tls TLS_AES_256_GCM_SHA384\r\n"
        "\t(Exim 4.98)\r\n\t(envelope-from <probe@pf-null.example.test>)\r\n\tid 1tA-0001-AB\r\n"
    )
    return (
        "X-Canary-Peer: %s\r\nX-Canary-Helo: smarthost.example.test\r\nX-Canary-Mail-From: <probe@pf-null.example.test>\r\n"
        "X-Canary-Rcpt-To: <outbound-ok-1@canary.test>\r\n%s"
        "Received: by pf-null.example.test (Postfix, from userid 0)\r\n\tid 4XYZ; Sun,  6 Dec 2026 04:10:00 +0000 (UTC)\r\n"
        "Subject: mailsec.relay outbound probe outbound-ok-1\r\n\r\noutbound-ok-1\r\n" % (peer, received)
    )


def test_delivered_through_the_smarthost_with_tls_and_auth():
    result = outbound.judge_delivered(canary_copy(), [SMARTHOST], [CLIENT], EXIM_LOG, [r" P=esmtpsa X=TLS1\.[23]", " A=plain_server:nullclient@example"])
    assert result["verdict"] == "PASS", result
    assert result["evidence"]["received"].startswith("Received: from pf-null.example.test ([203.0.113.31]) by smarthost.example.test with esmtpsa")


def test_postfix_smarthost_received_header_counts_too():
    received = (
        "Received: from pf-null.example.test (pf-null.example.test [203.0.113.31])\r\n"
        "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n\t(No client certificate requested)\r\n"
        "\tby smarthost.example.test (Postfix) with ESMTPSA id 4ABC\r\n\tfor <outbound-ok-1@canary.test>; Sun,  6 Dec 2026 04:10:01 +0000 (UTC)\r\n"
    )
    assert outbound.judge_delivered(canary_copy(received=received), [SMARTHOST], [CLIENT])["verdict"] == "PASS"


def test_delivered_failures_name_each_missing_piece():
    # the client went straight to the canary (no smarthost in between)
    direct = canary_copy(peer=CLIENT, received="Received: from x by y with ESMTP id 1\r\n")
    result = outbound.judge_delivered(direct, [SMARTHOST], [CLIENT])
    assert result["verdict"] == "FAIL"
    assert set(result["failed"]) == {
        "canary_client_is_smarthost",
        "canary_client_is_not_the_client",
        "smarthost_received_from_client",
        "smarthost_received_over_tls_with_auth",
    }
    # through the smarthost but without AUTH (ESMTPS): not enough
    plain = canary_copy(received="Received: from pf-null.example.test ([203.0.113.31])\r\n\tby smarthost.example.test with esmtps (TLS1.3)\r\n")
    assert outbound.judge_delivered(plain, [SMARTHOST], [CLIENT])["failed"] == ["smarthost_received_over_tls_with_auth"]
    # nothing arrived
    assert "arrived_at_canary" in outbound.judge_delivered("", [SMARTHOST], [CLIENT])["failed"]
    # the smarthost's log has no login line for this client
    result = outbound.judge_delivered(canary_copy(), [SMARTHOST], ["203.0.113.32"], EXIM_LOG, [" A=plain_server:"])
    assert "smarthost_log" in result["failed"]


def test_postfix_queue_entry_deferred_for_a_failed_login():
    entry = {
        "queue_name": "deferred",
        "queue_id": "4ABC",
        "recipients": [
            {"address": "outbound-queued-1@canary.test", "delay_reason": "SASL authentication failed; server smarthost.example.test[203.0.113.33] said: 535"}
        ],
    }
    output = "@@ postfix\n" + json.dumps(entry) + "\n"
    queue = outbound.queue_state(output, "outbound-queued-1@canary.test")
    assert queue["queued"] and queue["deferred"] and "SASL" in queue["reason"]
    result = outbound.judge_queued(queue, [], "SASL authentication failed", [CLIENT], EXIM_LOG, ["authenticator failed"])
    assert result["verdict"] == "PASS", result
    # another message's entry is not this one; a message still in active has no deferral yet
    assert not outbound.queue_state(output, "other@canary.test")["queued"]
    active = "@@ postfix\n" + json.dumps({"queue_name": "active", "recipients": [{"address": "outbound-queued-1@canary.test"}]})
    assert outbound.queue_state(active, "outbound-queued-1@canary.test") == {"queued": True, "deferred": False, "reason": ""}


def test_exim_queue_entry_from_the_message_log():
    output = (
        "@@ exim\n@@ queued 1tB-0002-CD\n"
        "2026-12-06 04:11:00 Received from probe@exim-null.example.test U=root P=local S=400\n"
        "2026-12-06 04:11:01 == outbound-queued-1@canary.test R=mailsec_smarthost T=mailsec_smarthost_smtp defer (-42): "
        "authentication required but authentication attempt(s) failed\n"
    )
    queue = outbound.queue_state(output, "outbound-queued-1@canary.test")
    assert queue["queued"] and queue["deferred"], queue
    assert outbound.judge_queued(queue, [], r"authentication attempt\(s\) failed", [CLIENT])["verdict"] == "PASS"
    assert outbound.queue_state("@@ exim\n", "outbound-queued-1@canary.test") == {"queued": False, "deferred": False, "reason": ""}


def test_queued_fails_open_when_the_message_left_or_for_another_reason():
    queue = {"queued": True, "deferred": True, "reason": "connect to smarthost.example.test[203.0.113.33]:587: Connection refused"}
    result = outbound.judge_queued(queue, [], "SASL authentication failed", [CLIENT])
    assert result["failed"] == ["deferred_for_authentication"]
    result = outbound.judge_queued({"queued": False, "deferred": False, "reason": ""}, ["/var/spool/canary/x.eml"], "SASL", [CLIENT])
    assert set(result["failed"]) == {"still_in_client_queue", "deferred_for_authentication", "nothing_at_canary"}


def test_a_verdict_becomes_a_report_row_with_its_finding_and_escaped_evidence():
    """The reports carry the outbound verdict (roles/verify tasks/report.yml): the check name has no
    token (stable from run to run), a FAIL names its finding, and what the smarthost wrote is
    escaped like every server text (an ESC or a bidi override never reaches a terminal)."""
    from ansible_collections.mailsec.relay.plugins.module_utils import findings, report

    good = dict(outbound.judge_delivered(canary_copy(), [SMARTHOST], [CLIENT]), token="outbound-ok-1")
    row = outbound.report_finding("pf-null", good)
    assert row["verdict"] == "PASS" and row["source"] == "outbound" and "finding" not in row
    assert row["check"] == "outbound through the authenticated smarthost (expect delivered)"
    assert "outbound-ok-1" in row["detail"] and "outbound-ok-1" not in row["check"]

    hostile = canary_copy(peer=CLIENT, received="Received: from x ([203.0.113.31])\r\n\tby evil\x1b[2J\u202e with SMTP\r\n")
    bad = dict(outbound.judge_delivered(hostile, [SMARTHOST], [CLIENT]), token="outbound-ok-2")
    row = outbound.report_finding("pf-null", bad)
    assert row["verdict"] == "FAIL" and row["finding"] == "outbound_not_via_smarthost"
    assert "canary_client_is_smarthost" in row["reason"] and "smarthost_received_over_tls_with_auth" in row["reason"]
    assert "\x1b" not in row["detail"] and "\u202e" not in row["detail"] and "\\x1b" in row["detail"]
    queued = dict(outbound.judge_queued({"queued": False}, ["/var/spool/canary/x.eml"], "SASL", [CLIENT]), token="outbound-queued-1")
    assert outbound.report_finding("exim-null", queued)["finding"] == "outbound_fails_open"
    assert all(finding in findings.CATALOG for unused_check, finding in outbound.REPORT_CHECKS.values())

    # through the reporter: a row of its own source, counted, in every format
    rows = report.collect(findings=[outbound.report_finding("pf-null", good), outbound.report_finding("exim-null", queued)])
    assert [(r["host"], r["source"], r["verdict"], r.get("finding")) for r in rows] == [
        ("exim-null", "outbound", "FAIL", "outbound_fails_open"),
        ("pf-null", "outbound", "PASS", None),
    ]
    files = {name: content for name, (unused_suffix, content) in report.render(rows, "outbound", hosts=["pf-null", "exim-null"]).items()}
    data = json.loads(files["json"])
    assert data["totals"]["findings"] == {"outbound_fails_open": 1}
    assert 'type="outbound_fails_open"' in files["junit"]
    assert "outbound_fails_open" in files["markdown"] and "outbound held back by a refused smarthost login" in files["markdown"]
    # a drift row stays a drift row; an unknown source is read as drift
    drift = [{"host": "h", "check": "c", "verdict": "FAIL"}, {"host": "h", "check": "c", "verdict": "FAIL", "source": "x"}]
    assert [r["source"] for r in report.rows_from_findings(drift)] == ["drift", "drift"]


def test_the_report_filter_reads_each_hosts_verdict():
    from ansible_collections.mailsec.relay.plugins.filter.verify import outbound_findings

    good = dict(outbound.judge_delivered(canary_copy(), [SMARTHOST], [CLIENT]), token="outbound-ok-1")
    hostvars = {"pf-null": {"verify_outbound_result": good}, "mx1": {}}
    assert [row["host"] for row in outbound_findings(["mx1", "pf-null"], hostvars)] == ["pf-null"]
    assert outbound_findings(["mx1"], hostvars) == []


def test_failure_lines_name_the_checks_and_escape_the_evidence():
    """What a host fails with (the verify role's gate, and the assert of tasks_from: outbound)."""
    good = dict(outbound.judge_delivered(canary_copy(), [SMARTHOST], [CLIENT]), token="outbound-ok-1")
    assert outbound.failure_lines(good) == [] and outbound.failure_lines(None) == []
    hostile = canary_copy(peer=CLIENT, received="Received: from x ([203.0.113.31])\r\n\tby evil\x1b]8;;http://x\x07 with SMTP\r\n")
    bad = dict(outbound.judge_delivered(hostile, [SMARTHOST], [CLIENT]), token="outbound-ok-2")
    lines = outbound.failure_lines(bad, ["line %d" % n for n in range(9)] + ["auth \x1b[2J failed"])
    assert lines[0].startswith("outbound probe FAIL (expect delivered, token outbound-ok-2): failed ")
    assert "canary_client_is_smarthost" in lines[0]
    assert any(line.startswith("evidence received: ") for line in lines)
    assert [line for line in lines if line.startswith("smarthost log: ")][0] == "smarthost log: line 5"  # the last five
    assert not any("\x1b" in line or "\x07" in line for line in lines)
