# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Findings -> JSON, JUnit XML and Markdown reports.

Pure functions, no Ansible imports. Two inputs are understood:

* relay_probe ``results`` (docs/probe-contract.md): ``{target, address, port, probe, case, title,
  verdict, expected, reply, transcript, duration, vantage?}``;
* drift findings: ``{host, check, verdict, expected, actual, detail}`` (with ``source: outbound``
  and a ``finding``: the verify role's outbound verdicts, module_utils/outbound.py).

Both become rows ``{host, check, verdict, expected, actual, detail, ...}``; every renderer works on rows.
Every row that is neither PASS nor SKIP carries ``finding`` (a stable id of module_utils/findings.py),
``severity`` and ``reason``: the result's own when the engine named them, else a fallback
(:func:`classify`), so a CI consumer can match on ids whatever produced the row. A row may stand for
``count`` checks (a compact PASS or SKIP aggregate of module_utils/compact.py); counts add them up.
Output is deterministic (no timestamps), so a report file changes only when the findings do.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from ansible_collections.mailsec.relay.plugins.module_utils import findings as finding_ids

VERDICTS = ("PASS", "FAIL", "WARN", "INCONCLUSIVE", "SKIP", "ERROR")
# Worst first: a host's status is its worst verdict. UNVERIFIED is a host status, not a verdict: a
# required relay check ended without a verdict (finding ``unverified``), so the relay state is unknown.
SEVERITY = ("ERROR", "FAIL", "UNVERIFIED", "WARN", "INCONCLUSIVE", "SKIP", "PASS")
UNVERIFIED = "UNVERIFIED"
# Severity of a row whose finding the catalogue does not know and that names none itself.
_VERDICT_SEVERITY = {"ERROR": "high", "FAIL": "high", "WARN": "low", "INCONCLUSIVE": "info"}
VERDICT_ALIASES = {"OK": "PASS", "PASSED": "PASS", "FAILED": "FAIL", "DRIFT": "FAIL", "SKIPPED": "SKIP", "WARNING": "WARN"}
NO_CHECKS = "NO CHECKS"

_XML_ILLEGAL = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value):
    """Any finding value as one readable string (mappings and lists as compact, sorted JSON)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def normalize_verdict(value):
    """Upper-case verdict; known aliases mapped; anything unknown becomes ERROR (never silently PASS)."""
    verdict = str(value or "").strip().upper()
    verdict = VERDICT_ALIASES.get(verdict, verdict)
    return verdict if verdict in VERDICTS else "ERROR"


def reply_text(reply):
    """``{code, enhanced, text, stage}`` -> ``554 5.7.1 Relay access denied (RCPT)``."""
    if not isinstance(reply, dict):
        return _text(reply)
    head = " ".join(_text(reply.get(key)) for key in ("code", "enhanced", "text") if reply.get(key) not in (None, ""))
    stage = reply.get("stage")
    return "%s (%s)" % (head, stage) if stage and head else head or (_text(stage) if stage else "")


def _endpoint(address, port):
    if address in (None, ""):
        return ":%s" % port if port not in (None, "") else ""
    address = str(address)
    host = "[%s]" % address if ":" in address else address
    return "%s:%s" % (host, port) if port not in (None, "") else host


def probe_check_name(result):
    """``T11/P13 198.51.100.11:25 relay refused: ... [external]``: unique per probe, case, listener, vantage."""
    probe = _text(result.get("probe")) or "probe"
    if result.get("case"):
        probe += "/" + _text(result["case"])
    parts = [probe, _endpoint(result.get("address"), result.get("port")), _text(result.get("title"))]
    name = " ".join(part for part in parts if part)
    if result.get("vantage"):
        name += " [%s]" % _text(result["vantage"])
    return name


def classify(verdict, item, source="probe"):
    """``(finding, severity, reason)`` of one non-PASS, non-SKIP row; never raises.

    The item's own ``finding`` wins (an id unknown to this catalogue is kept as given: ids may be
    newer than the reporter). Without one: ERROR -> ``check_error``, INCONCLUSIVE ->
    ``inconclusive``, drift -> ``config_drift``, any other probe result -> ``unclassified``.
    """
    finding = _text(item.get("finding")).strip()
    named = bool(finding)
    if not named:
        if verdict == "ERROR":
            finding = "check_error"
        elif verdict == "INCONCLUSIVE":
            finding = "inconclusive"
        else:
            finding = "config_drift" if source == "drift" else "unclassified"
    severity = _text(item.get("severity")).strip().lower()
    if severity not in finding_ids.SEVERITIES:
        # A fallback id weighs what the verdict says (a drift WARN is low, a drift FAIL high).
        known = named and finding in finding_ids.CATALOG
        severity = finding_ids.CATALOG[finding][0] if known else _VERDICT_SEVERITY.get(verdict, "info")
    reason = _text(item.get("reason") or item.get("detail") or item.get("title"))
    if not reason:
        reason = finding_ids.CATALOG[finding][1] if finding in finding_ids.CATALOG else finding
    return finding, severity, reason


def _count(item):
    """How many checks a result stands for (a compact PASS or SKIP aggregate stands for many)."""
    try:
        return max(1, int(item.get("count") or 1))
    except (TypeError, ValueError):
        return 1


def rows_from_results(results):
    """relay_probe results -> rows."""
    rows = []
    for result in results or []:
        raw_verdict = result.get("verdict")
        verdict = normalize_verdict(raw_verdict)
        row = {
            "host": _text(result.get("target") or result.get("host")) or "unknown",
            "check": probe_check_name(result),
            "verdict": verdict,
            "expected": _text(result.get("expected")),
            "actual": reply_text(result.get("reply")),
            "detail": _text(result.get("title")),
            "source": "probe",
            "count": _count(result),
        }
        if verdict == "ERROR" and str(raw_verdict or "").upper() != "ERROR":
            row["detail"] = "unknown verdict %r; %s" % (raw_verdict, row["detail"])
        for key in ("probe", "case", "address", "port", "vantage", "client_seen", "probes", "checks"):
            if result.get(key) not in (None, ""):
                row[key] = result[key]
        listener = _endpoint(result.get("address"), result.get("port"))
        if listener:
            row["listener"] = listener
        if isinstance(result.get("reply"), dict):
            row["reply"] = result["reply"]
        if verdict not in ("PASS", "SKIP"):
            row["finding"], row["severity"], row["reason"] = classify(verdict, result)
        elif result.get("reason"):
            row["reason"] = _text(result["reason"])
        if result.get("duration") is not None:
            try:
                row["duration"] = float(result["duration"])
            except (TypeError, ValueError):
                pass
        if result.get("transcript"):
            row["transcript"] = [_text(line) for line in result["transcript"]]
        rows.append(row)
    return rows


FINDING_SOURCES = ("drift", "outbound")  # of a findings row (``source``; drift when it names none)


def rows_from_findings(findings):
    """Drift findings (and the verify role's outbound verdicts, ``source: outbound``) -> rows."""
    rows = []
    for finding in findings or []:
        raw_verdict = finding.get("verdict")
        source = finding.get("source") if finding.get("source") in FINDING_SOURCES else "drift"
        row = {
            "host": _text(finding.get("host")) or "unknown",
            "check": _text(finding.get("check")) or "check",
            "verdict": normalize_verdict(raw_verdict),
            "expected": _text(finding.get("expected")),
            "actual": _text(finding.get("actual")),
            "detail": _text(finding.get("detail")),
            "source": source,
            "count": 1,
        }
        if row["verdict"] == "ERROR" and str(raw_verdict or "").upper() != "ERROR":
            row["detail"] = "unknown verdict %r; %s" % (raw_verdict, row["detail"])
        if row["verdict"] not in ("PASS", "SKIP"):
            row["finding"], row["severity"], row["reason"] = classify(row["verdict"], finding, source)
        rows.append(row)
    return rows


def collect(results=None, findings=None):
    """Rows from both inputs, grouped by host (hosts sorted; each host keeps its input order)."""
    rows = rows_from_results(results) + rows_from_findings(findings)
    order = dict((host, index) for index, host in enumerate(sorted(set(row["host"] for row in rows))))
    return sorted(rows, key=lambda row: order[row["host"]])  # stable: input order within a host


def _counts(rows):
    counts = dict((verdict, 0) for verdict in VERDICTS)
    by_finding, by_severity = {}, {}
    for row in rows:
        counts[row["verdict"]] += row.get("count", 1)
        if row.get("finding"):
            by_finding[row["finding"]] = by_finding.get(row["finding"], 0) + row.get("count", 1)
            by_severity[row["severity"]] = by_severity.get(row["severity"], 0) + row.get("count", 1)
    counts["findings"] = dict(sorted(by_finding.items()))
    counts["severities"] = dict(sorted(by_severity.items(), key=lambda item: finding_ids.rank(item[0])))
    return counts


def host_status(rows):
    """Worst verdict of a host's rows, SKIP aside: a host whose checks passed and some of which could
    not run here (no canary, a cipher class this OpenSSL cannot offer, a port closed to the vantage)
    is PASS, its skips counted; SKIP only when every row is one. UNVERIFIED when a required relay
    check has no verdict (finding ``unverified``) and nothing worse than that was found (a FAIL of
    another finding stays FAIL)."""
    judged = [row for row in rows if row["verdict"] != "SKIP"] or rows
    status = worst(row["verdict"] for row in judged if row.get("finding") != "unverified")
    if any(row.get("finding") == "unverified" for row in rows) and SEVERITY.index(status if status in SEVERITY else "PASS") > SEVERITY.index(UNVERIFIED):
        return UNVERIFIED
    return status


def worst(verdicts):
    present = set(verdicts)
    for verdict in SEVERITY:
        if verdict in present:
            return verdict
    return NO_CHECKS


def rows_by_host(rows, hosts=None):
    """``{host: [rows]}`` in one pass (fleets have thousands of hosts); ``hosts`` adds empty ones."""
    by_host = dict((_text(host), []) for host in hosts or [])
    for row in rows:
        by_host.setdefault(row["host"], []).append(row)
    return by_host


def summarize(rows, hosts=None):
    """``(per_host, totals)``; ``hosts`` adds hosts that have no rows (shown, not silently clean)."""
    by_host = rows_by_host(rows, hosts)
    names = sorted(by_host)
    per_host = {}
    for name in names:
        host_rows = by_host[name]
        entry = {"checks": sum(row.get("count", 1) for row in host_rows), "status": host_status(host_rows)}
        entry.update(_counts(host_rows))
        per_host[name] = entry
    totals = {
        "hosts": len(names),
        "checks": sum(row.get("count", 1) for row in rows),
        "status": worst(entry["status"] for entry in per_host.values()),
        "unverified_hosts": sum(1 for entry in per_host.values() if entry["status"] == UNVERIFIED),
    }
    totals.update(_counts(rows))
    return per_host, totals


def finding_catalog(rows):
    """``{id: {severity, meaning}}`` of the finding ids present in ``rows`` (unknown ids: meaning unknown)."""
    present = sorted(set(row["finding"] for row in rows if row.get("finding")))
    return dict(
        (
            name,
            {"severity": finding_ids.CATALOG[name][0], "meaning": finding_ids.CATALOG[name][1]}
            if name in finding_ids.CATALOG
            else {"severity": None, "meaning": "not in this version's catalogue"},
        )
        for name in present
    )


def to_json(rows, title, hosts=None):
    per_host, totals = summarize(rows, hosts)
    document = {"title": title, "totals": totals, "hosts": per_host, "findings": rows, "finding_ids": finding_catalog(rows)}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _xml_text(value):
    return _XML_ILLEGAL.sub("?", _text(value))


def _failure_message(row):
    message = "expected %s, got %s" % (row["expected"] or "?", row["actual"] or "nothing")
    message = message if not row["detail"] or row["source"] == "probe" else "%s: %s" % (row["detail"], message)
    if row.get("finding"):
        reason = row["reason"] if row["reason"] and row["reason"] not in message else ""
        message = "%s (%s): %s%s" % (row["finding"], row["severity"], reason + "; " if reason else "", message)
    return message


def _body(row):
    lines = []
    for key in ("finding", "severity", "reason", "probe", "case", "listener", "detail", "expected", "actual"):
        if row.get(key) not in (None, ""):
            lines.append("%s: %s" % (key, row[key]))
    for key in ("vantage", "address", "port", "client_seen"):
        if row.get(key) not in (None, ""):
            lines.append("%s: %s" % (key, row[key]))
    if row.get("transcript"):
        lines.append("transcript:")
        lines.extend("  " + line for line in row["transcript"])
    return "\n".join(lines)


def _set_counts(element, name, counts, rows):
    """JUnit totals of a <testsuites> or <testsuite> from summarize() counts.

    ``tests`` and ``skipped`` count testcases (a compact PASS or SKIP aggregate is one testcase), as
    JUnit readers recount them; failures and errors are never aggregated, so those counts equal the
    checks'.
    """
    _set(
        element,
        name=name,
        tests=len(rows),
        failures=counts["FAIL"],
        errors=counts["ERROR"],
        skipped=sum(1 for row in rows if row["verdict"] in ("INCONCLUSIVE", "SKIP")),
        time=_seconds(rows),
    )


def to_junit(rows, title, hosts=None):
    """JUnit XML: a testsuite per host, a testcase per check (classname = host, name = check).

    FAIL -> <failure>, ERROR -> <error>, INCONCLUSIVE/SKIP -> <skipped>, WARN -> passes with a
    ``WARN:`` line in <system-out> (it ran and found something weak, which is not a failure).
    """
    per_host, totals = summarize(rows, hosts)
    by_host = rows_by_host(rows, hosts)
    root = ET.Element("testsuites")
    _set_counts(root, title, totals, rows)
    for host, entry in per_host.items():
        host_rows = by_host[host]
        suite = ET.SubElement(root, "testsuite")
        _set_counts(suite, host, entry, host_rows)
        for row in host_rows:
            case = ET.SubElement(suite, "testcase")
            _set(case, classname=host, name=row["check"], time=_seconds([row]))
            verdict = row["verdict"]
            if verdict == "FAIL":
                element = ET.SubElement(case, "failure")
                _set(element, message=_failure_message(row), type=row.get("finding") or "FAIL")
                element.text = _xml_text(_body(row))
            elif verdict == "ERROR":
                element = ET.SubElement(case, "error")
                _set(element, message=row["detail"] or "error", type="ERROR")
                element.text = _xml_text(_body(row))
            elif verdict in ("INCONCLUSIVE", "SKIP"):
                element = ET.SubElement(case, "skipped")
                what = row.get("reason") or row["actual"] or row["detail"] or "no answer"
                if row.get("finding"):
                    what = "%s (%s): %s" % (row["finding"], row["severity"], what)
                _set(element, message="%s: %s" % (verdict, what))
            if verdict == "WARN" or (verdict in ("INCONCLUSIVE", "SKIP") and _body(row)):
                out = ET.SubElement(case, "system-out")
                out.text = _xml_text(("%s: " % verdict if verdict == "WARN" else "") + _body(row))
    if hasattr(ET, "indent"):  # Python >= 3.9; only cosmetic
        ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _set(element, **attributes):
    for key, value in attributes.items():
        element.set(key, _xml_text(value))


def _seconds(rows):
    return "%.3f" % sum(row.get("duration") or 0.0 for row in rows)


# Markdown and inline HTML a viewer would act on, in text a server wrote (a banner, a reply): '<' and
# '&' start tags and entities (an <img> would make every reader's browser fetch the server's URL),
# '[' and ']' links and images (![](https://...)), '`' code spans. Escaped, the text reads as sent.
_MARKDOWN_ACTIVE = {"\\": "\\\\", "|": "\\|", "<": "&lt;", ">": "&gt;", "&": "&amp;", "[": "\\[", "]": "\\]", "`": "\\`"}
_MARKDOWN_ACTIVE_RE = re.compile("[%s]" % re.escape("".join(_MARKDOWN_ACTIVE)))


def _markdown_text(text):
    return _MARKDOWN_ACTIVE_RE.sub(lambda match: _MARKDOWN_ACTIVE[match.group(0)], text)


REASON_CELL = 160  # characters of a Markdown table cell


def _cell(value, limit=REASON_CELL):
    text = " ".join(_text(value).split())  # one line per table row
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return _markdown_text(text) or " "


def to_markdown(rows, title, hosts=None):
    """A readable summary: totals, a per-host table, findings counted by id, then every non-PASS
    result per host with its finding, severity, probe, listener, vantage, reply and reason."""
    per_host, totals = summarize(rows, hosts)
    counted = [verdict for verdict in VERDICTS if verdict != "ERROR" or totals["ERROR"]]
    lines = ["# %s" % _cell(title, 300), ""]
    lines.append(
        "**%s**: %d host(s), %d check(s): %s."
        % (totals["status"], totals["hosts"], totals["checks"], ", ".join("%d %s" % (totals[verdict], verdict) for verdict in counted))
    )
    if totals["unverified_hosts"]:
        lines += ["", "%d host(s) UNVERIFIED: a required relay check ended without a verdict; their relay state is unknown." % totals["unverified_hosts"]]
    lines += ["", "| host | status | checks | %s |" % " | ".join(counted), "|---|---|---:|%s|" % "|".join("---:" for unused in counted)]
    for host, entry in per_host.items():
        lines.append("| %s | %s | %d | %s |" % (_cell(host), entry["status"], entry["checks"], " | ".join(str(entry[verdict]) for verdict in counted)))
    lines.append("| **total** | **%s** | %d | %s |" % (totals["status"], totals["checks"], " | ".join(str(totals[verdict]) for verdict in counted)))
    attention = [row for row in rows if row["verdict"] != "PASS"]
    if totals["findings"]:
        hosts_by_finding = {}
        for row in attention:
            if row.get("finding"):
                hosts_by_finding.setdefault(row["finding"], set()).add(row["host"])
        catalog = finding_catalog(attention)
        lines += ["", "## Findings by id", "", "| finding | severity | results | hosts | meaning |", "|---|---|---:|---:|---|"]
        ordered = sorted(totals["findings"], key=lambda name: (finding_ids.rank(catalog[name]["severity"]), name))
        for name in ordered:
            lines.append(
                "| %s | %s | %d | %d | %s |"
                % (
                    _cell(name),
                    catalog[name]["severity"] or "?",
                    totals["findings"][name],
                    len(hosts_by_finding.get(name, ())),
                    _cell(catalog[name]["meaning"], 300),
                )
            )
    lines += ["", "## Findings", ""]
    if not attention:
        lines.append("Every check passed." if rows else "No checks were run.")
    attention_by_host = rows_by_host(attention)
    for host in per_host:
        host_rows = attention_by_host.get(host)
        if not host_rows:
            continue
        lines += [
            "### %s" % _cell(host),
            "",
            "| verdict | finding | severity | check | listener | vantage | expected | reply | reason |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in sorted(host_rows, key=lambda row: (SEVERITY.index(row["verdict"]), finding_ids.rank(row.get("severity")))):
            reason = row.get("reason") or row["detail"]
            # a SKIP aggregate's reason names every reason of its checks: room for each of them
            reason_limit = min(REASON_CELL * len(row.get("checks") or ()), 1000) or REASON_CELL
            lines.append(
                "| %s | %s | %s | %s | %s | %s | %s | %s | %s |"
                % (
                    row["verdict"],
                    _cell(row.get("finding") or ""),
                    row.get("severity") or "",
                    _cell(row["check"]),
                    _cell(row.get("listener") or ""),
                    _cell(row.get("vantage") or ""),
                    _cell(row["expected"]),
                    _cell(row["actual"]),
                    _cell(reason, reason_limit),
                )
            )
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


RENDERERS = {"json": (".json", to_json), "junit": (".xml", to_junit), "markdown": (".md", to_markdown)}


def render(rows, title, formats=("json", "junit", "markdown"), hosts=None):
    """``{format: (file suffix, content)}`` for the requested formats."""
    rendered = {}
    for name in formats:
        suffix, renderer = RENDERERS[name]
        rendered[name] = (suffix, renderer(rows, title, hosts))
    return rendered
