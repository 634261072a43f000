# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of roles/verify: expected verdicts from the policy, and summaries of probe results.

All logic lives in module_utils/verify_plan.py; these wrappers only adapt Ansible's data
(hostvars, registered loop results) and turn plan errors into filter errors.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.mailsec.relay.plugins.module_utils import outbound, policy, verify_plan
from ansible_collections.mailsec.relay.plugins.module_utils.plain import plain as _plain


def _host_entry(name, hostvars):
    if hostvars is None:
        raise AnsibleFilterError("probe_targets: pass hostvars when hosts is a list of names")
    try:
        hv = hostvars[name]
    except KeyError:
        raise AnsibleFilterError("probe_targets: %s is not in the inventory" % name)
    addresses = hv.get("verify_addresses") or [hv.get("ansible_host") or name]
    if isinstance(addresses, str):
        addresses = [addresses]
    entry = {
        "name": str(name),
        "addresses": _plain(addresses),
        "test_mailbox": _plain(hv.get("verify_test_mailbox")),
        "auth": _plain(hv.get("verify_auth")),
        "rate_probe_login": _plain(hv.get("verify_rate_probe_login")),
        "extra_ports": _plain(hv.get("verify_extra_ports")),
    }
    if hv.get("verify_listeners") is not None:
        # Verify-only: a server this collection does not manage; its verify_* variables are the policy.
        entry["verify"] = dict((key[len("verify_") :], _plain(hv.get(key))) for key in verify_plan.VERIFY_ONLY_KEYS)
    else:
        # The policy of every host in this one pass (the policy role per host cost a task per host);
        # the same builder as role mailsec.relay.policy, from the same variables.
        variables = dict((key, _plain(hv[key])) for key in list(hv) if key.startswith(policy.PREFIX) and key not in policy.OUTPUT_VARIABLES)
        try:
            entry["effective"] = policy.build_policy(variables, str(name))
        except policy.PolicyErrors as errors:
            # Messages name variables and describe values; they never contain passwords.
            entry["invalid"] = "The mailsec.relay policy of %s has %d error(s):\n%s" % (name, len(errors), "\n".join(str(e) for e in errors))
        entry["sasl_users"] = _plain(variables.get("mailsec_relay_sasl_users") or [])
        if hv.get("verify_readback_listeners", True):
            entry["readback"] = _plain(hv.get("mailsec_relay_readback"))
    return entry


def _vantage_name(run):
    """The vantage of a registered run: in ``item`` (direct loop) or ``item.item`` (async_status loop)."""
    item = run.get("item") or {}
    while isinstance(item, Mapping) and "vantage" not in item and "item" in item:
        item = item["item"]
    return str(((item or {}).get("vantage") or {}).get("name", "?"))


def probe_targets(hosts, vantages=None, hostvars=None, limits=None):
    """Hosts (inventory names + hostvars, or ready ``{name, effective, addresses, sasl_users}``
    entries) and vantages -> one relay_probe run per vantage. ``limits``: the ceilings of the limit
    probes T24/T25 (``{sender_rate_ceiling, auth_rate_ceiling}``, roles/verify's variables)."""
    if not verify_plan.HAS_NETADDR:
        raise AnsibleFilterError("probe_targets: " + verify_plan.policy.MISSING_LIBRARY_MESSAGE)
    entries = []
    for host in hosts or []:
        if isinstance(host, Mapping):
            entries.append(_plain(host))
        else:
            entries.append(_host_entry(str(host), hostvars))
    try:
        return verify_plan.build_plan(entries, _plain(vantages), _plain(limits))
    except verify_plan.VerifyPlanError as exc:
        raise AnsibleFilterError("probe_targets: %s" % exc)


def verify_redact(plan):
    """A probe plan with passwords masked."""
    return verify_plan.redact_plan(_plain(plan))


def verify_summary(probe_runs, hosts):
    """Registered relay_probe loop results (or ``[{vantage, results}]``) -> per-host summary."""
    return verify_plan.summarize(_runs(probe_runs), [str(h) for h in hosts])


def _runs(probe_runs):
    """``[{vantage, results}]`` of the runs that returned results. Each result is copied one level
    deep only (summarize adds keys to the copy and reads its top-level fields and reply): its
    transcript and the rest stay as Ansible passed them, to be made plain once, when Ansible
    finalizes the filter's output, instead of twice."""
    runs = []
    for run in probe_runs or []:
        if "results" not in run:
            continue
        vantage = _vantage_name(run) if "item" in run else str(run.get("vantage"))
        runs.append({"vantage": vantage, "results": [dict(result) for result in run.get("results") or []]})
    return runs


def verify_digest(probe_runs, hosts, verdicts=("FAIL",), unverified="fail", plan=None, summary=None):
    """Everything the role needs after the probes, in one pass over the results: ``{summary, brief,
    runs, errors, gate}`` (``gate``: ``{host: message lines}`` of the hosts that fail, those with an
    invalid policy in ``plan`` included).

    With ``summary`` (verify_summary of the same runs, already a fact) the summary is not built again
    and is left out of the digest. Only what the brief and the gate read is then taken from it and
    from the runs (counts, verdicts, finding ids): a fleet's results and transcripts are not copied
    once more."""
    if summary is None:
        summary = verify_plan.summarize(_runs(probe_runs), [str(h) for h in hosts])
        digest = {"summary": summary}
    else:
        digest = {}
    gate = verify_plan.gate(summary, tuple(_plain(verdicts) or ()), str(unverified))
    for run in _plain(plan) or []:
        for skipped in run.get("skipped") or []:
            if skipped.get("invalid"):
                gate[skipped["name"]] = str(skipped["reason"]).splitlines()
    digest.update(brief=_plain(verify_plan.brief(summary)), runs=verify_runs(probe_runs), errors=verify_probe_errors(probe_runs), gate=_plain(gate))
    return digest


def verify_probe_errors(probe_runs):
    """Registered relay_probe loop results -> one line per run that did not complete.

    Only the vantage name and the module's message are kept: the rest of a failed result (its
    ``invocation`` and loop ``item``) holds the targets, credentials included.
    """
    errors = []
    for run in probe_runs or []:
        if run.get("skipped") or "results" in run:
            continue
        if run.get("finished") == 0:
            message = "did not finish within verify_run_timeout"
        else:
            message = str(run.get("msg") or "no message")
        errors.append("vantage %s: %s" % (_vantage_name(run), message))
    return errors


def verify_runs(probe_runs):
    """Registered relay_probe loop results -> one sanitized line per vantage (counts, seconds)."""
    runs = [{"vantage": _vantage_name(run), "summary": _plain(run.get("summary"))} for run in probe_runs or [] if "results" in run]
    return verify_plan.run_lines(runs)


def verify_results(summary):
    """Every result of a summary, host after host (what the reports are written from)."""
    return [result for data in (summary or {}).values() for result in data["results"]]


def verify_brief(summary):
    """Counts and worst finding per host, for printing."""
    return verify_plan.brief(_plain(summary))


def verify_failure(summary, host, verdicts=("FAIL",)):
    """The failure message lines of one host (findings with one of ``verdicts``)."""
    return verify_plan.failure_message(str(host), _plain(summary)[str(host)], tuple(_plain(verdicts)))


def verify_table(before, after, mta_by_host=None):
    """Before/after verdict table as text."""
    return verify_plan.comparison_table(_plain(before), _plain(after), _plain(mta_by_host))


def outbound_delivered(text, smarthost_addresses, client_addresses, log_lines=None, log_patterns=None):
    """The outbound probe's delivered verdict from the canary's copy (and the smarthost's log)."""
    return outbound.judge_delivered(_plain(text), _plain(smarthost_addresses), _plain(client_addresses), _plain(log_lines), _plain(log_patterns))


def outbound_queue(output, rcpt):
    """The client's queue entry for the probe's recipient: ``{queued, deferred, reason}``."""
    return outbound.queue_state(_plain(output), str(rcpt))


def outbound_queued(queue, canary_files, queued_reason, client_addresses, log_lines=None, log_patterns=None):
    """The outbound probe's queued (fail closed) verdict."""
    return outbound.judge_queued(_plain(queue), _plain(canary_files), str(queued_reason), _plain(client_addresses), _plain(log_lines), _plain(log_patterns))


def outbound_findings(hosts, hostvars):
    """relay_report ``findings`` rows of the outbound verdicts of ``hosts``: each host's
    ``verify_outbound_result`` fact, set by an outbound probe earlier in this run."""
    rows = []
    for host in hosts or []:
        result = hostvars[host].get("verify_outbound_result")
        if result:
            rows.append(outbound.report_finding(str(host), _plain(result)))
    return rows


def outbound_failure(result, log_lines=None):
    """The failure lines of one outbound verdict (none when it is PASS)."""
    return outbound.failure_lines(_plain(result), _plain(log_lines))


class FilterModule(object):
    def filters(self):
        return {
            "probe_targets": probe_targets,
            "verify_redact": verify_redact,
            "verify_summary": verify_summary,
            "verify_digest": verify_digest,
            "verify_results": verify_results,
            "verify_brief": verify_brief,
            "verify_runs": verify_runs,
            "verify_probe_errors": verify_probe_errors,
            "verify_failure": verify_failure,
            "verify_table": verify_table,
            "outbound_delivered": outbound_delivered,
            "outbound_queue": outbound_queue,
            "outbound_queued": outbound_queued,
            "outbound_findings": outbound_findings,
            "outbound_failure": outbound_failure,
        }
