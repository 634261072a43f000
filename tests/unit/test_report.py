# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports (module_utils/report.py) and the relay_report module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

try:
    from ansible_collections.mailsec.relay.plugins.module_utils import report
except ImportError:  # run straight from the checkout: the collection is reachable through .cache/collections
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", ".cache", "collections"))
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
    assert totals == {"hosts": 4, "checks": 10, "status": "ERROR", "PASS": 4, "FAIL": 2, "WARN": 1, "INCONCLUSIVE": 1, "SKIP": 1, "ERROR": 1}
    assert per_host["mx1"]["status"] == "FAIL" and per_host["mx1"]["checks"] == 4
    assert per_host["mx2"]["status"] == "FAIL"
    assert per_host["mx4"] == {"checks": 0, "status": report.NO_CHECKS, "PASS": 0, "FAIL": 0, "WARN": 0, "INCONCLUSIVE": 0, "SKIP": 0, "ERROR": 0}
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
    assert failure is not None and failure.get("message") == "expected refused, got 250 5.7.1 2.1.5 Ok (RCPT)"
    assert "C: EHLO prober.mailsec.test" in failure.text
    assert by_name[("mx1", "T01 198.51.100.11:25 relay refused: T01")].find("failure") is None
    warned = by_name[("mx1", "T05 198.51.100.11:587 relay refused: T05")]
    assert warned.find("failure") is None and warned.find("skipped") is None
    assert warned.find("system-out").text.startswith("WARN: ")
    inconclusive = by_name[("mx2", "T01 [2001:db8:25::12]:25 relay refused: T01")]
    assert inconclusive.find("skipped").get("message").startswith("INCONCLUSIVE")
    drift = by_name[("mx2", "mynetworks")].find("failure")
    assert drift.get("message").startswith("mynetworks | differs: expected")
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
