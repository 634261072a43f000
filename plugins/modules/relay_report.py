#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: relay_report
short_description: Write relay probe results and drift findings as JSON, JUnit XML and Markdown
description:
  - Turns C(mailsec.relay.relay_probe) results and drift findings into report files on the host it runs on;
    run it on the controller, delegated to localhost, once per play (run_once).
  - JUnit has one testsuite per host and one testcase per check (C(classname) = host, C(name) = check).
    C(FAIL) becomes a C(<failure>), C(ERROR) an C(<error>), C(INCONCLUSIVE) and C(SKIP) a C(<skipped>),
    and C(WARN) a passing testcase with a C(WARN:) line in C(<system-out>).
  - The Markdown file has the totals, a per-host table, the findings counted by id and every result that is not
    C(PASS) with its finding id, severity, probe, listener, vantage, reply and reason.
  - Every result that is neither C(PASS) nor C(SKIP) is reported with a finding id (docs/verify.md), its severity
    and reason; results that name none (drift rows, older engines) get C(config_drift), C(check_error),
    C(inconclusive) or C(unclassified).
  - A host whose required relay checks have no verdict (finding C(unverified)) has the status C(UNVERIFIED).
  - Compact results (an aggregate with C(count)) count as that many checks; JUnit shows each as one testcase.
  - Reports contain no timestamps, so a file is rewritten (and the task C(changed)) only when its content changes.
  - A C(FAIL) verdict does not fail this module; callers decide (for example with C(failed_when) on RV(totals)).
  - On a local connection without become or async, with a numeric O(mode), its action plugin renders and writes the
    reports in the controller's process with the same code; otherwise (a remote host, become, a symbolic O(mode))
    the module runs.
version_added: "0.1.0"
options:
  results:
    description:
      - C(results) of C(mailsec.relay.relay_probe) (see C(docs/probe-contract.md)); the host is C(target).
      - A C(vantage) key, as added by role C(mailsec.relay.verify), becomes part of the check name.
    type: list
    elements: dict
    default: []
  findings:
    description:
      - Drift findings, each C({host, check, verdict, expected, actual, detail}).
      - Optional keys C(finding), C(severity) and C(reason) name the finding of a row that is neither C(PASS) nor
        C(SKIP) (else C(config_drift)); C(source=outbound) marks the verdicts of role C(mailsec.relay.verify)'s
        outbound probe (any other source is read as C(drift)).
      - Verdicts are C(PASS), C(FAIL), C(WARN), C(INCONCLUSIVE), C(SKIP) or C(ERROR) (C(OK) and C(DRIFT) are read
        as C(PASS) and C(FAIL)); any other verdict is reported as C(ERROR), never silently as a pass.
    type: list
    elements: dict
    default: []
  hosts:
    description:
      - Hosts to list even if they have no result, so a host nobody checked is visible as C(NO CHECKS).
    type: list
    elements: str
    default: []
  dest_dir:
    description:
      - Directory for the report files; created if missing.
    type: path
    required: true
  name:
    description:
      - Base name of the files C(<name>.json), C(<name>.xml) and C(<name>.md).
    type: str
    default: mailsec-relay
  formats:
    description:
      - Which files to write.
    type: list
    elements: str
    choices: [json, junit, markdown]
    default: [json, junit, markdown]
  title:
    description:
      - Title of the report (Markdown heading, JUnit C(testsuites) name, JSON C(title)).
    type: str
    default: mailsec.relay report
  plan:
    description:
      - Expectations to keep beside the reports (role C(mailsec.relay.verify) passes the probe plan with
        passwords masked); written as C(<name>-plan.json) in the same run. Omitted, no such file is written.
    type: dict
  mode:
    description:
      - Permissions of the report files.
    type: raw
    default: "0644"
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports which files would change and writes nothing.
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - Probe results never contain passwords (docs/probe-contract.md), and this module adds none.
seealso:
  - module: mailsec.relay.relay_probe
author:
  - mailsec.relay developers (@mailsec)
"""

EXAMPLES = r"""
- name: Write the verification reports on the controller
  mailsec.relay.relay_report:
    results: "{{ probe.results }}"
    hosts: "{{ ansible_play_hosts }}"
    dest_dir: "{{ playbook_dir }}/reports"
    name: verify
    title: Relay verification
  delegate_to: localhost
  run_once: true
  register: report

- name: Write only JUnit for CI, from drift findings
  mailsec.relay.relay_report:
    findings:
      - {host: mx1, check: mynetworks, verdict: FAIL, expected: [198.51.100.48/28], actual: [0.0.0.0/0],
         detail: mynetworks differs from the policy}
    dest_dir: /tmp/reports
    name: drift
    formats: [junit]
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
files:
  description: Path of each report file by format (written, or that would be written in check mode).
  returned: always
  type: dict
  sample: {json: /srv/reports/verify.json, junit: /srv/reports/verify.xml, markdown: /srv/reports/verify.md, plan: /srv/reports/verify-plan.json}
changed_files:
  description: Paths whose content changed (or would change in check mode).
  returned: always
  type: list
  elements: str
totals:
  description: Counts over all hosts; C(status) is the worst verdict.
  returned: always
  type: dict
  sample: {hosts: 2, checks: 80, status: FAIL, PASS: 75, FAIL: 1, WARN: 2, INCONCLUSIVE: 2, SKIP: 0, ERROR: 0,
           unverified_hosts: 0, findings: {open_relay: 1, weak_tls: 2, inconclusive: 2}, severities: {critical: 1, high: 2, info: 2}}
hosts:
  description: Per-host counts and status (worst verdict, SKIP only when every check was skipped, or C(NO CHECKS)).
  returned: always
  type: dict
  sample: {mx1: {checks: 40, status: FAIL, PASS: 37, FAIL: 1, WARN: 2, INCONCLUSIVE: 0, SKIP: 0, ERROR: 0,
                 findings: {open_relay: 1, weak_tls: 2}, severities: {critical: 1, high: 2}}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.mailsec.relay.plugins.module_utils import report_files


def main():
    module = AnsibleModule(argument_spec=report_files.ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params

    def set_mode(path, changed):
        return module.set_fs_attributes_if_different(module.load_file_common_arguments(dict(path=path, mode=params["mode"])), changed)

    try:
        result = report_files.write_reports(params, module.check_mode, module._diff, module.atomic_move, set_mode)
    except report_files.ReportError as exc:
        module.fail_json(msg=to_text(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
