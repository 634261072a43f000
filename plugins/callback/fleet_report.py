# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_report
type: aggregate
short_description: Fleet report of relay drift findings and probe verdicts (JSON, JUnit XML, Markdown)
version_added: "0.1.0"
description:
  - Collects, over the whole run, the drift findings returned by M(mailsec.relay.mta_facts) and the
    probe verdicts of M(mailsec.relay.relay_probe) (or published with C(ansible.builtin.set_stats)
    under C(mailsec_relay_probe_results) / C(mailsec_relay_findings)), plus hosts that could not be
    read (unreachable, module failure) as errors.
  - At the end of the run it writes C(<name>.json), C(<name>.xml) (JUnit, one testcase per host and
    check) and C(<name>.md) through C(plugins/module_utils/report.py), and prints a short fleet summary.
  - Every result that is neither PASS nor SKIP is reported with its finding id (docs/verify.md), severity,
    reason, probe, listener, vantage and reply; the summary counts findings by id and by severity.
    Drift findings and results of older engines, which name no finding, get a fallback id
    (C(config_drift), C(check_error), C(inconclusive), C(unclassified)).
  - Enable it with C(ANSIBLE_CALLBACKS_ENABLED=mailsec.relay.fleet_report).
author:
  - mailsec.relay developers (@mailsec)
requirements:
  - enable in configuration
options:
  report_dir:
    description: Directory for the report files (created when missing).
    type: path
    default: ./reports
    env:
      - name: MAILSEC_RELAY_REPORT_DIR
    ini:
      - section: mailsec_relay_fleet_report
        key: report_dir
  report_name:
    description: Base name of the report files.
    type: str
    default: fleet
    env:
      - name: MAILSEC_RELAY_REPORT_NAME
    ini:
      - section: mailsec_relay_fleet_report
        key: report_name
  title:
    description: Title of the reports.
    type: str
    default: mailsec.relay fleet report
    env:
      - name: MAILSEC_RELAY_REPORT_TITLE
    ini:
      - section: mailsec_relay_fleet_report
        key: title
"""

import os

from ansible.plugins.callback import CallbackBase

from ansible_collections.mailsec.relay.plugins.module_utils import report

PROBE_STATS_KEY = "mailsec_relay_probe_results"
FINDINGS_STATS_KEY = "mailsec_relay_findings"
MTA_FACTS_ACTIONS = ("mailsec.relay.mta_facts", "mta_facts")
PROBE_ACTIONS = ("mailsec.relay.relay_probe", "relay_probe")


def _is_findings(value):
    return isinstance(value, list) and all(isinstance(item, dict) and "check" in item and "verdict" in item for item in value)


def _is_probe_results(value):
    return isinstance(value, list) and all(isinstance(item, dict) and "probe" in item and "verdict" in item and "target" in item for item in value)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "mailsec.relay.fleet_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super(CallbackModule, self).__init__(display=display)
        self.findings = {}  # (host, check) -> finding; a later read of the same check wins
        self.probe_results = []
        self.probe_keys = set()
        self.hosts = set()

    # -- gathering -----------------------------------------------------------------------------

    def _add_findings(self, findings):
        for item in findings:
            self.findings[(str(item.get("host")), str(item.get("check")))] = item
            self.hosts.add(str(item.get("host")))

    def _add_probe_results(self, results):
        for item in results:
            key = tuple(str(item.get(k)) for k in ("target", "address", "port", "probe", "case", "vantage"))
            if key in self.probe_keys:
                continue
            self.probe_keys.add(key)
            self.probe_results.append(item)
            self.hosts.add(str(item.get("target")))

    def _gather(self, result_dict):
        if not isinstance(result_dict, dict):
            return
        if _is_findings(result_dict.get("findings")):
            self._add_findings(result_dict["findings"])
        if _is_probe_results(result_dict.get("results")):
            self._add_probe_results(result_dict["results"])

    def _error(self, result, what):
        host = result._host.get_name()
        action = getattr(result._task, "action", "")
        if action in MTA_FACTS_ACTIONS + PROBE_ACTIONS:
            message = result._result.get("msg") or what
            self._add_findings(
                [
                    {
                        "host": host,
                        "check": "%s %s" % (action.rsplit(".", 1)[-1], what),
                        "verdict": "ERROR",
                        "expected": "a readable host",
                        "actual": what,
                        "detail": str(message)[:500],
                    }
                ]
            )

    def v2_runner_on_ok(self, result):
        if getattr(result._task, "action", "") in MTA_FACTS_ACTIONS:
            self.hosts.add(result._host.get_name())  # read, even if it had no policy to compare
        self._gather(result._result)

    def v2_runner_item_on_ok(self, result):
        self._gather(result._result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._gather(result._result)
        self._error(result, "failed")

    def v2_runner_on_unreachable(self, result):
        host = result._host.get_name()
        self._add_findings(
            [
                {
                    "host": host,
                    "check": "reachable",
                    "verdict": "ERROR",
                    "expected": "reachable",
                    "actual": "unreachable",
                    "detail": str(result._result.get("msg", ""))[:500],
                }
            ]
        )

    # -- writing ------------------------------------------------------------------------------

    def v2_playbook_on_stats(self, stats):
        custom = (getattr(stats, "custom", None) or {}).get("_run", {})
        if _is_probe_results(custom.get(PROBE_STATS_KEY)):
            self._add_probe_results(custom[PROBE_STATS_KEY])
        if _is_findings(custom.get(FINDINGS_STATS_KEY)):
            self._add_findings(custom[FINDINGS_STATS_KEY])
        if not self.findings and not self.probe_results:
            self._display.display("fleet_report: no drift findings or probe verdicts in this run; no report written")
            return
        rows = report.collect(results=self.probe_results, findings=list(self.findings.values()))
        title = self.get_option("title")
        directory = self.get_option("report_dir")
        name = self.get_option("report_name")
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        written = []
        for fmt, (suffix, content) in sorted(report.render(rows, title, hosts=sorted(self.hosts)).items()):
            path = os.path.join(directory, name + suffix)
            with open(path, "w") as handle:
                handle.write(content)
            written.append(path)
        self._print_summary(rows, written)

    def _print_summary(self, rows, written):
        per_host, totals = report.summarize(rows, sorted(self.hosts))
        by_host = report.rows_by_host(rows)
        width = max([len(host) for host in per_host] + [5])
        lines = ["", "MAILSEC RELAY FLEET REPORT " + "*" * 50]
        for host, entry in sorted(per_host.items()):
            failed = ["%s %s" % (row.get("finding") or row["verdict"], row["check"]) for row in by_host.get(host, []) if row["verdict"] in ("FAIL", "ERROR")]
            lines.append(
                "%s : %-12s %3d checks, %d FAIL%s"
                % (
                    host.ljust(width),
                    entry["status"],
                    entry["checks"],
                    entry["FAIL"] + entry["ERROR"],
                    (" (" + "; ".join(failed[:3]) + (" ..." if len(failed) > 3 else "") + ")") if failed else "",
                )
            )
        lines.append(
            "%s : %-12s %3d checks, %d PASS, %d FAIL, %d ERROR on %d host(s), %d UNVERIFIED"
            % (
                "FLEET".ljust(width),
                totals["status"],
                totals["checks"],
                totals["PASS"],
                totals["FAIL"],
                totals["ERROR"],
                totals["hosts"],
                totals["unverified_hosts"],
            )
        )
        if totals["findings"]:
            # The worst severity a finding had in this run (a result may weigh more than the id's default).
            weight = {}
            for row in rows:
                if row.get("finding"):
                    known = weight.get(row["finding"])
                    if known is None or report.finding_ids.rank(row["severity"]) < report.finding_ids.rank(known):
                        weight[row["finding"]] = row["severity"]
            ordered = sorted(totals["findings"], key=lambda name: (report.finding_ids.rank(weight.get(name)), name))
            lines.append(
                "%s : %s" % ("findings".ljust(width), ", ".join("%s %d (%s)" % (name, totals["findings"][name], weight.get(name, "?")) for name in ordered))
            )
            lines.append("%s : %s" % ("severity".ljust(width), ", ".join("%s %d" % (name, count) for name, count in totals["severities"].items())))
        lines.append("reports: " + ", ".join(written))
        self._display.display("\n".join(lines))
