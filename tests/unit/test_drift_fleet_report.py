# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback mailsec.relay.fleet_report: gathers findings and verdicts, writes JSON/JUnit/Markdown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

from ansible_collections.mailsec.relay.plugins.callback import fleet_report  # noqa: E402

FINDINGS = [
    {
        "host": "mx1",
        "check": "relay_networks",
        "verdict": "FAIL",
        "expected": ["198.51.100.48/28"],
        "actual": ["0.0.0.0/0", "198.51.100.48/28"],
        "detail": "OPEN RELAY; extra relay grant within 0.0.0.0/0",
    },
    {"host": "mx1", "check": "hostname", "verdict": "PASS", "expected": "mx1.example.test", "actual": "mx1.example.test", "detail": ""},
    {"host": "mx2", "check": "hostname", "verdict": "PASS", "expected": "mx2.example.test", "actual": "mx2.example.test", "detail": ""},
]
PROBES = [
    {
        "target": "mx2",
        "address": "198.51.100.12",
        "port": 25,
        "probe": "T11",
        "case": "P01",
        "title": "relay refused",
        "verdict": "PASS",
        "expected": "refused",
        "reply": {"code": 554, "text": "Relay access denied", "stage": "RCPT"},
        "vantage": "external",
    },
    {
        "target": "mx2",
        "address": "198.51.100.12",
        "port": 25,
        "probe": "T12",
        "title": "canary relay",
        "verdict": "FAIL",
        "expected": "refused",
        "reply": {"code": 250, "text": "ok", "stage": "RCPT"},
        "vantage": "trusted",
    },
]

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.set_stats:
        data:
          mailsec_relay_findings: "{{ findings }}"
          mailsec_relay_probe_results: "{{ probes }}"
"""


@pytest.fixture(scope="module")
def run_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    playbook = tmp / "play.yml"
    playbook.write_text(PLAYBOOK)
    extra = tmp / "vars.json"
    extra.write_text(json.dumps({"findings": FINDINGS, "probes": PROBES}))
    env = dict(
        os.environ,
        ANSIBLE_CALLBACKS_ENABLED="mailsec.relay.fleet_report",
        MAILSEC_RELAY_REPORT_DIR=str(tmp / "reports"),
        MAILSEC_RELAY_REPORT_NAME="fleet",
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
    )
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook), "-e", "@" + str(extra)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp / "reports", proc.stdout


def test_summary_printed_at_the_end(run_report):
    _reports, stdout = run_report
    tail = stdout[stdout.index("MAILSEC RELAY FLEET REPORT") :]
    assert "mx1" in tail and "mx2" in tail
    flat = " ".join(tail.split())
    assert "FLEET : FAIL 5 checks, 3 PASS, 2 FAIL, 0 ERROR on 2 host(s), 0 UNVERIFIED" in flat
    assert "mx1 : FAIL 2 checks, 1 FAIL (config_drift relay_networks)" in flat
    # Findings by id and by severity: drift rows and engine results without an id get fallbacks.
    assert "findings : config_drift 1 (high), unclassified 1 (high)" in flat
    assert "severity : high 2" in flat


def test_json_report(run_report):
    reports = run_report[0]
    document = json.loads((reports / "fleet.json").read_text())
    assert document["totals"]["FAIL"] == 2 and document["totals"]["hosts"] == 2
    assert document["hosts"]["mx1"]["status"] == "FAIL" and document["hosts"]["mx2"]["status"] == "FAIL"


def test_junit_parses_with_xml_etree(run_report):
    reports = run_report[0]
    root = ET.parse(str(reports / "fleet.xml")).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 5  # one per host and check (3 drift + 2 probe)
    failing = [(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None]
    assert ("mx1", "relay_networks") in failing
    assert any(host == "mx2" and name.startswith("T12") for host, name in failing)


def test_junit_parses_with_junitparser(run_report):
    junitparser = pytest.importorskip("junitparser")
    reports = run_report[0]
    xml = junitparser.JUnitXml.fromfile(str(reports / "fleet.xml"))
    suites = dict((suite.name, suite) for suite in xml)
    assert sorted(suites) == ["mx1", "mx2"]
    assert suites["mx1"].tests == 2 and suites["mx1"].failures == 1
    outcomes = [type(r).__name__ for case in suites["mx2"] for r in case.result]
    assert outcomes == ["Failure"]


def test_markdown_lists_hosts_and_totals(run_report):
    reports = run_report[0]
    text = (reports / "fleet.md").read_text()
    assert "| mx1 | FAIL |" in text and "| mx2 | FAIL |" in text and "**total**" in text
    assert "OPEN RELAY" in text


class _Host(object):
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class _Task(object):
    def __init__(self, action):
        self.action = action


class _Result(object):
    def __init__(self, host, action, result):
        self._host, self._task, self._result = _Host(host), _Task(action), result


def test_gathers_module_results_failures_and_unreachable_hosts():
    callback = fleet_report.CallbackModule()
    callback.v2_runner_on_ok(_Result("mx1", "mailsec.relay.mta_facts", {"findings": FINDINGS[:2]}))
    callback.v2_runner_on_ok(_Result("mx1", "mailsec.relay.mta_facts", {"findings": FINDINGS[:1]}))  # re-read: no duplicate
    callback.v2_runner_item_on_ok(_Result("prober", "mailsec.relay.relay_probe", {"results": PROBES}))
    callback.v2_runner_on_failed(_Result("mx3", "mailsec.relay.mta_facts", {"msg": "postconf failed"}))
    callback.v2_runner_on_unreachable(_Result("mx4", "ansible.builtin.ping", {"msg": "ssh: no route"}))
    callback.v2_runner_on_ok(_Result("mx5", "ansible.builtin.debug", {"msg": "unrelated"}))
    assert sorted(callback.findings) == [("mx1", "hostname"), ("mx1", "relay_networks"), ("mx3", "mta_facts failed"), ("mx4", "reachable")]
    assert callback.findings[("mx3", "mta_facts failed")]["verdict"] == "ERROR"
    assert len(callback.probe_results) == 2 and "mx5" not in callback.hosts
