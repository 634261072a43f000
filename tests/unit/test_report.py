# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports (module_utils/report.py) and the relay_report module."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.mailsec.relay.plugins.module_utils import report

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULE = os.path.join(REPO, "plugins", "modules", "relay_report.py")


def probe(target, probe_id, verdict, port=25, address="198.51.100.11", case=None, code=554, text="Relay access denied", **extra):
    result = {
        "target": target,
        "address": address,
        "port": port,
        "probe": probe_id,
        "title": "relay refused: %s" % probe_id,
        "verdict": verdict,
        "expected": "refused",
        "reply": {"code": code, "enhanced": "5.7.1", "text": text, "stage": "RCPT"},
        "transcript": ["C: EHLO prober.mailsec.test", "S: 250-mx1.example.test"],
        "duration": 0.25,
    }
    if case:
        result["case"] = case
    result.update(extra)
    return result


RESULTS = [
    probe("mx1", "T01", "PASS"),
    probe("mx1", "T11", "FAIL", case="P13", code=250, text="2.1.5 Ok"),
    probe("mx1", "T11", "PASS", case="P14"),
    probe("mx1", "T05", "WARN", port=587),
    probe("mx2", "T01", "INCONCLUSIVE", address="2001:db8:25::12", code=None, text="timeout"),
    probe("mx2", "T02", "SKIP"),
    probe("mx2", "T03", "PASS", vantage="trusted"),
]
FINDINGS = [
    {
        "host": "mx2",
        "check": "mynetworks",
        "verdict": "DRIFT",
        "expected": ["198.51.100.48/28"],
        "actual": ["0.0.0.0/0"],
        "detail": "mynetworks | differs",
    },
    {"host": "mx3", "check": "smtpd_relay_restrictions", "verdict": "PASS", "expected": "x", "actual": "x", "detail": ""},
    {"host": "mx3", "check": "weird", "verdict": "MAYBE", "expected": 1, "actual": 2, "detail": "odd"},
]


@pytest.fixture
def rows():
    return report.collect(RESULTS, FINDINGS)


def test_rows_from_probe_results(rows):
    fail = [row for row in rows if row["verdict"] == "FAIL" and row["source"] == "probe"][0]
    assert fail["host"] == "mx1"
    assert fail["check"] == "T11/P13 198.51.100.11:25 relay refused: T11"
    assert fail["actual"] == "250 5.7.1 2.1.5 Ok (RCPT)"
    assert fail["expected"] == "refused" and fail["transcript"][0].startswith("C: EHLO")
    v6 = [row for row in rows if row["host"] == "mx2" and row.get("probe") == "T01"][0]
    assert "[2001:db8:25::12]:25" in v6["check"]
    assert [row for row in rows if row.get("vantage") == "trusted"][0]["check"].endswith("[trusted]")


def test_verdicts_normalized_and_unknown_is_error(rows):
    drift = [row for row in rows if row["check"] == "mynetworks"][0]
    assert drift["verdict"] == "FAIL" and drift["expected"] == '["198.51.100.48/28"]'
    weird = [row for row in rows if row["check"] == "weird"][0]
    assert weird["verdict"] == "ERROR" and "MAYBE" in weird["detail"]
    assert report.normalize_verdict("ok") == "PASS" and report.normalize_verdict(None) == "ERROR"


def test_hosts_sorted_input_order_kept(rows):
    assert [row["host"] for row in rows] == ["mx1"] * 4 + ["mx2"] * 4 + ["mx3"] * 2
    assert [row.get("probe") for row in rows if row["host"] == "mx1"] == ["T01", "T11", "T11", "T05"]


def test_totals_and_status(rows):
    per_host, totals = report.summarize(rows, hosts=["mx4"])
    findings = totals.pop("findings")
    severities = totals.pop("severities")
    assert totals == {
        "hosts": 4,
        "checks": 10,
        "status": "ERROR",
        "PASS": 4,
        "FAIL": 2,
        "WARN": 1,
        "INCONCLUSIVE": 1,
        "SKIP": 1,
        "ERROR": 1,
        "unverified_hosts": 0,
    }
    # Rows without a finding get the fallbacks: probe -> unclassified, drift -> config_drift, ERROR -> check_error.
    assert findings == {"check_error": 1, "config_drift": 1, "inconclusive": 1, "unclassified": 2}
    assert sum(severities.values()) == 5 and list(severities) == sorted(severities, key=report.finding_ids.rank)
    assert per_host["mx1"]["status"] == "FAIL" and per_host["mx1"]["checks"] == 4
    assert per_host["mx2"]["status"] == "FAIL"
    assert per_host["mx4"] == {
        "checks": 0,
        "status": report.NO_CHECKS,
        "PASS": 0,
        "FAIL": 0,
        "WARN": 0,
        "INCONCLUSIVE": 0,
        "SKIP": 0,
        "ERROR": 0,
        "findings": {},
        "severities": {},
    }
    assert report.summarize([], [])[1]["status"] == report.NO_CHECKS


def test_json_report(rows):
    document = json.loads(report.to_json(rows, "Relay check", hosts=["mx4"]))
    assert document["title"] == "Relay check"
    assert document["totals"]["FAIL"] == 2 and set(document["hosts"]) == {"mx1", "mx2", "mx3", "mx4"}
    assert len(document["findings"]) == 10


def test_junit_structure(rows):
    root = ET.fromstring(report.to_junit(rows, "Relay check").encode("utf-8"))
    assert root.tag == "testsuites" and root.get("name") == "Relay check"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("10", "2", "1", "2")
    suites = root.findall("testsuite")
    assert [suite.get("name") for suite in suites] == ["mx1", "mx2", "mx3"]
    cases = root.iter("testcase")
    by_name = dict(((case.get("classname"), case.get("name")), case) for case in cases)
    assert len(by_name) == 10
    failed = by_name[("mx1", "T11/P13 198.51.100.11:25 relay refused: T11")]
    failure = failed.find("failure")
    assert failure is not None and failure.get("message") == ("unclassified (high): relay refused: T11; expected refused, got 250 5.7.1 2.1.5 Ok (RCPT)")
    assert failure.get("type") == "unclassified"
    assert "C: EHLO prober.mailsec.test" in failure.text
    assert by_name[("mx1", "T01 198.51.100.11:25 relay refused: T01")].find("failure") is None
    warned = by_name[("mx1", "T05 198.51.100.11:587 relay refused: T05")]
    assert warned.find("failure") is None and warned.find("skipped") is None
    assert warned.find("system-out").text.startswith("WARN: ")
    inconclusive = by_name[("mx2", "T01 [2001:db8:25::12]:25 relay refused: T01")]
    assert inconclusive.find("skipped").get("message").startswith("INCONCLUSIVE")
    drift = by_name[("mx2", "mynetworks")].find("failure")
    assert drift.get("message").startswith("config_drift (high): mynetworks | differs: expected")
    assert by_name[("mx3", "weird")].find("error") is not None
    mx1 = suites[0]
    assert (mx1.get("tests"), mx1.get("failures"), mx1.get("skipped"), mx1.get("time")) == ("4", "1", "0", "1.000")


def test_junit_survives_control_characters_and_markup():
    rows = report.collect([probe("mx<1>&", "T01", "FAIL", text="bad\x00\x1b[0m <b>reply</b> & more")])
    text = report.to_junit(rows, "t")
    root = ET.fromstring(text.encode("utf-8"))
    case = root.find("testsuite/testcase")
    assert case.get("classname") == "mx<1>&"
    assert "<b>reply</b> & more" in case.find("failure").get("message")


def test_markdown_summary(rows):
    text = report.to_markdown(rows, "Relay check", hosts=["mx4"])
    lines = text.splitlines()
    assert lines[0] == "# Relay check"
    assert lines[2] == "**ERROR**: 4 host(s), 10 check(s): 4 PASS, 2 FAIL, 1 WARN, 1 INCONCLUSIVE, 1 SKIP, 1 ERROR."
    assert "| host | status | checks | PASS | FAIL | WARN | INCONCLUSIVE | SKIP | ERROR |" in lines
    assert "| mx1 | FAIL | 4 | 2 | 1 | 1 | 0 | 0 | 0 |" in lines
    assert "| mx4 | NO CHECKS | 0 | 0 | 0 | 0 | 0 | 0 | 0 |" in lines
    assert "| **total** | **ERROR** | 10 | 4 | 2 | 1 | 1 | 1 | 1 |" in lines
    assert "### mx1" in lines and "### mx4" not in lines
    drift = [line for line in lines if "mynetworks" in line][0]
    assert "mynetworks \\| differs" in drift  # a pipe in a cell does not break the table
    assert all(line.count("|") - line.count("\\|") == 10 for line in lines if line.startswith("| ") and "host |" in line)
    # PASS rows are counted, not listed.
    assert not [line for line in lines if line.startswith("| PASS")]


def test_markdown_neutralises_what_a_server_wrote():
    """A banner or reply is the server's text: in the Markdown report it must not become an image
    a reader's browser fetches, a link, or HTML."""
    hostile = "<img src=https://evil.example/x.png> ![t](https://evil.example/t.png) [click](https://evil.example/) `x` & <script>alert(1)</script>"
    rows = report.collect([probe("mx[1](https://evil.example)", "T11", "FAIL", text=hostile, reason=hostile, finding="open_relay", severity="critical")])
    text = report.to_markdown(rows, "t")
    for active in ("<img", "<script", "![t](", "[click]("):
        assert active not in text, (active, text)
    assert not re.search(r"(?<!\\)\]\(", text), text  # no unescaped link target
    assert "&lt;img src=https://evil.example/x.png&gt;" in text and "\\[click\\](https://evil.example/)" in text
    assert "### mx\\[1\\](https://evil.example)" in text  # the heading too (an inventory name)


def test_markdown_all_clean():
    text = report.to_markdown(report.collect([probe("mx1", "T01", "PASS")]), "t")
    assert "**PASS**: 1 host(s), 1 check(s): 1 PASS, 0 FAIL, 0 WARN, 0 INCONCLUSIVE, 0 SKIP." in text
    assert "Every check passed." in text and "ERROR" not in text


def test_output_is_deterministic(rows):
    again = report.collect(json.loads(json.dumps(RESULTS)), json.loads(json.dumps(FINDINGS)))
    assert report.render(rows, "t") == report.render(again, "t")


# ---- the module, run as Ansible runs it (args file) --------------------------------------------


def run_module(tmp_path, args, check=False, diff=False):
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=diff)}))
    collections = tmp_path / "collections"
    if not collections.exists():
        (collections / "ansible_collections" / "mailsec").mkdir(parents=True)
        (collections / "ansible_collections" / "mailsec" / "relay").symlink_to(REPO)
    env = dict(os.environ, PYTHONPATH=str(collections))
    run = subprocess.run([sys.executable, MODULE, str(args_file)], capture_output=True, text=True, env=env, timeout=60, check=False)
    output = json.loads(run.stdout)
    assert not output.get("failed"), output
    return output


def test_module_writes_then_is_idempotent_and_check_mode_writes_nothing(tmp_path):
    dest = tmp_path / "reports"
    args = {"results": RESULTS, "findings": FINDINGS, "dest_dir": str(dest), "name": "verify", "title": "Relay check"}

    planned = run_module(tmp_path, args, check=True)
    assert planned["changed"] is True and not dest.exists()
    assert planned["files"]["junit"] == str(dest / "verify.xml")

    first = run_module(tmp_path, args)
    assert first["changed"] is True and len(first["changed_files"]) == 3
    assert first["totals"]["FAIL"] == 2 and first["hosts"]["mx1"]["status"] == "FAIL"
    assert sorted(os.listdir(dest)) == ["verify.json", "verify.md", "verify.xml"]
    assert oct(os.stat(dest / "verify.md").st_mode & 0o777) == "0o644"
    ET.parse(str(dest / "verify.xml"))
    assert json.loads((dest / "verify.json").read_text())["totals"]["checks"] == 10

    second = run_module(tmp_path, args)
    assert second["changed"] is False and second["changed_files"] == []

    before = (dest / "verify.md").read_bytes()
    changed_args = dict(args, results=RESULTS[:1])
    dry = run_module(tmp_path, changed_args, check=True, diff=True)
    assert dry["changed"] is True and len(dry["changed_files"]) == 3
    assert (dest / "verify.md").read_bytes() == before
    assert any(item["before"] != item["after"] for item in dry["diff"])

    only_junit = run_module(tmp_path, dict(changed_args, formats=["junit"]))
    assert list(only_junit["files"]) == ["junit"] and only_junit["changed_files"] == [str(dest / "verify.xml")]
    assert (dest / "verify.md").read_bytes() == before


# -- finding ids in every report --------------------------------------------------------------------

FINDING_RESULTS = [
    probe(
        "mx1",
        "T11",
        "FAIL",
        case="P02",
        code=250,
        text="2.1.5 Ok",
        vantage="external",
        finding="open_relay",
        severity="critical",
        reason="the canary received the relayed message",
    ),
    probe("mx1", "T14", "WARN", port=587, vantage="external", finding="weak_tls", severity="low", reason="TLSv1.1 accepted"),
    probe("mx1", "T22", "FAIL", vantage="external", finding="unverified", severity="high", reason="T11 ended INCONCLUSIVE"),
    probe("mx2", "T22", "FAIL", vantage="external", finding="unverified", reason="P02 timed out twice"),
    probe("mx2", "T12", "WARN", vantage="external", finding="brand_new_id", reason="newer engine"),
    probe("mx3", "T11", "INCONCLUSIVE", vantage="external", code=None, text=None),
    {
        "target": "mx3",
        "address": "198.51.100.13",
        "port": 25,
        "vantage": "external",
        "probe": "passed",
        "verdict": "PASS",
        "count": 40,
        "probes": {"T01": 1, "T11": 39},
        "title": "40 checks passed",
    },
]


def test_every_non_pass_row_has_finding_severity_reason_and_context():
    rows = report.collect(FINDING_RESULTS)
    for row in rows:
        if row["verdict"] == "PASS":
            assert "finding" not in row
            continue
        assert row["finding"] and row["severity"] in report.finding_ids.SEVERITIES + ("info",) and row["reason"], row
        assert row["listener"].endswith(":%s" % row["port"]) and row["vantage"] == "external" and "probe" in row
    relay = [row for row in rows if row.get("finding") == "open_relay"][0]
    assert (relay["severity"], relay["reason"], relay["reply"]["code"]) == ("critical", "the canary received the relayed message", 250)
    # Catalogue default when the result names the id but no severity; unknown ids are kept, never a crash.
    assert [row["severity"] for row in rows if row["host"] == "mx2" and row.get("finding") == "unverified"] == ["high"]
    newer = [row for row in rows if row.get("finding") == "brand_new_id"][0]
    assert newer["severity"] == "low" and newer["reason"] == "newer engine"
    assert [row["finding"] for row in rows if row["host"] == "mx3" and row["verdict"] != "PASS"] == ["inconclusive"]


def test_skips_do_not_make_a_host_status():
    """A hardened host whose T17 had no canary and whose OpenSSL cannot offer RC4 passed every
    check it could run: PASS (its skips counted), not SKIP; SKIP only when nothing else ran."""

    def status(*verdicts):
        return report.host_status([{"verdict": verdict} for verdict in verdicts])

    assert status("PASS", "SKIP", "SKIP") == "PASS"
    assert status("SKIP", "SKIP") == "SKIP"
    assert status("FAIL", "SKIP") == "FAIL" and status("INCONCLUSIVE", "SKIP", "PASS") == "INCONCLUSIVE"
    assert status() == report.NO_CHECKS
    per_host, totals = report.summarize(report.collect([dict(RESULTS[0], verdict="PASS"), dict(RESULTS[0], verdict="SKIP", case="x")]))
    assert [entry["status"] for entry in per_host.values()] == ["PASS"] and totals["status"] == "PASS" and totals["SKIP"] == 1


def test_unverified_host_status_and_counts_of_aggregates():
    per_host, totals = report.summarize(report.collect(FINDING_RESULTS))
    # A FAIL of another finding stays FAIL; an unverified relay decision alone is UNVERIFIED.
    assert per_host["mx1"]["status"] == "FAIL" and per_host["mx2"]["status"] == "UNVERIFIED"
    assert totals["unverified_hosts"] == 1 and totals["status"] == "FAIL"
    assert per_host["mx3"]["checks"] == 41 and per_host["mx3"]["PASS"] == 40
    assert totals["findings"] == {"brand_new_id": 1, "inconclusive": 1, "open_relay": 1, "unverified": 2, "weak_tls": 1}
    assert totals["severities"] == {"critical": 1, "high": 2, "low": 2, "info": 1}


def test_json_junit_markdown_carry_findings():
    rows = report.collect(FINDING_RESULTS)
    document = json.loads(report.to_json(rows, "t"))
    assert document["finding_ids"]["open_relay"]["severity"] == "critical"
    assert document["finding_ids"]["brand_new_id"]["meaning"] == "not in this version's catalogue"
    assert document["totals"]["findings"]["unverified"] == 2
    root = ET.fromstring(report.to_junit(rows, "t").encode("utf-8"))
    failures = dict((case.get("name"), case.find("failure")) for case in root.iter("testcase") if case.find("failure") is not None)
    relay = [f for name, f in failures.items() if name.startswith("T11/P02")][0]
    assert relay.get("type") == "open_relay" and "critical" in relay.get("message")
    assert "listener: 198.51.100.11:25" in relay.text and "vantage: external" in relay.text and "reason: the canary" in relay.text
    # The aggregate is one testcase; tests counts testcases, failures are exact.
    assert (root.get("tests"), root.get("failures")) == (str(len(rows)), "3")
    markdown = report.to_markdown(rows, "t")
    assert "## Findings by id" in markdown and "| open_relay | critical | 1 | 1 |" in markdown
    assert "| unverified | high | 2 | 2 |" in markdown and "1 host(s) UNVERIFIED" in markdown
    assert "| FAIL | open_relay | critical | T11/P02 198.51.100.11:25" in markdown and "the canary received the relayed message" in markdown
    assert "| mx3 | INCONCLUSIVE | 41 | 40 |" in markdown


def test_drift_rows_fallback_and_own_finding():
    rows = report.collect(
        findings=[
            {"host": "h", "check": "mynetworks", "verdict": "WARN", "expected": 1, "actual": 2, "detail": "wider"},
            {"host": "h", "check": "x", "verdict": "FAIL", "finding": "open_relay", "detail": "0/0 relays"},
        ]
    )
    assert (rows[0]["finding"], rows[0]["severity"], rows[0]["reason"]) == ("config_drift", "low", "wider")
    assert (rows[1]["finding"], rows[1]["severity"]) == ("open_relay", "critical")


def test_module_writes_the_plan_beside_the_reports_in_the_same_run(tmp_path):
    dest = tmp_path / "reports"
    plan = {"prober": "localhost", "plan": [{"vantage": {"name": "ext"}, "targets": []}], "hosts": {"mx1": {"status": "FAIL"}}}
    args = {"results": FINDING_RESULTS, "dest_dir": str(dest), "name": "verify", "plan": plan}
    planned = run_module(tmp_path, args, check=True)
    assert planned["files"]["plan"] == str(dest / "verify-plan.json") and not dest.exists()
    first = run_module(tmp_path, args)
    assert sorted(os.listdir(dest)) == ["verify-plan.json", "verify.json", "verify.md", "verify.xml"]
    assert json.loads((dest / "verify-plan.json").read_text()) == plan
    assert first["totals"]["findings"]["open_relay"] == 1 and first["totals"]["unverified_hosts"] == 1
    assert run_module(tmp_path, args)["changed"] is False
    without = run_module(tmp_path, dict(args, plan=None))
    assert "plan" not in without["files"]
