# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compact probe results (module_utils/compact.py) and their counts through the reports."""

from __future__ import annotations

from ansible_collections.mailsec.relay.plugins.module_utils import compact, report, verify_plan


def result(probe, verdict, port=25, vantage="ext", address="198.51.100.11", target="mx1", case=None, **extra):
    item = {
        "target": target,
        "address": address,
        "port": port,
        "vantage": vantage,
        "probe": probe,
        "verdict": verdict,
        "title": "t",
        "expected": "refused",
        "reply": {"code": 554},
        "duration": 0.5,
        "source_address": "198.51.100.100",
    }
    if case:
        item["case"] = case
    item.update(extra)
    return item


FULL = [
    result("T00", "PASS"),
    result("T11", "PASS", case="P01"),
    result("T11", "FAIL", case="P02", finding="open_relay", severity="critical", reason="canary arrived"),
    result("T11", "PASS", case="P03"),
    result("T01", "PASS", port=587),
    result("T05", "WARN", port=587, finding="cleartext_auth"),
    result("T11", "PASS", case="P01", vantage="trusted"),
    result("T11", "PASS", case="P01", address="2001:db8::11"),
    result("T13", "INCONCLUSIVE", finding="inconclusive"),
    result("T02", "SKIP", reason="no canary"),
]


def test_non_pass_kept_whole_pass_aggregated_per_listener_and_vantage():
    out = compact.compact_results(FULL)
    assert [r for r in out if r["verdict"] not in ("PASS", "SKIP")] == [r for r in FULL if r["verdict"] not in ("PASS", "SKIP")]
    aggregates = [r for r in out if r["verdict"] == "PASS"]
    assert [(a["address"], a["port"], a["vantage"], a["count"]) for a in aggregates] == [
        ("198.51.100.11", 25, "ext", 3),
        ("198.51.100.11", 587, "ext", 1),
        ("198.51.100.11", 25, "trusted", 1),
        ("2001:db8::11", 25, "ext", 1),
    ]
    first = aggregates[0]
    assert first["probes"] == {"T00": 1, "T11": 2} and first["title"] == "3 checks passed: T00, T11 x2"
    assert first["probe"] == compact.AGGREGATE_PROBE and first["duration"] == 1.5 and first["source_address"] == "198.51.100.100"
    # Order: an aggregate sits where its group's first PASS was.
    assert out[0] is first and out[1]["case"] == "P02"
    assert "reply" not in first and "transcript" not in first


def test_compaction_is_idempotent_and_keeps_input():
    copy = [dict(r) for r in FULL]
    once = compact.compact_results(FULL)
    assert FULL == copy
    assert compact.compact_results(once) == once
    assert compact.compact_results([]) == [] and compact.compact_results(None) == []


def test_counts_per_verdict_unchanged_in_reports_and_summary():
    full_rows, compact_rows = report.collect(FULL), report.collect(compact.compact_results(FULL))
    full_host, full_totals = report.summarize(full_rows)
    compact_host, compact_totals = report.summarize(compact_rows)
    for verdict in report.VERDICTS + ("checks", "findings", "severities", "status"):
        assert full_totals[verdict] == compact_totals[verdict], verdict
    assert len(compact_rows) < len(full_rows)
    runs_full = verify_plan.summarize([{"vantage": None, "results": FULL}], ["mx1"])
    runs_compact = verify_plan.summarize([{"vantage": None, "results": compact.compact_results(FULL)}], ["mx1"])
    assert runs_full["mx1"]["counts"] == runs_compact["mx1"]["counts"]
    assert runs_full["mx1"]["counts"]["PASS"] == 6


def test_skips_fold_per_listener_and_vantage_keeping_every_check_and_reason():
    full = FULL + [
        result("T21", "SKIP", case="EXPORT", reason="not testable here: no EXPORT"),
        result("T18", "SKIP", reason="no canary"),
        result("T17", "SKIP", port=587, reason="no canary"),
    ]
    out = compact.compact_results(full)
    skips = [r for r in out if r["verdict"] == "SKIP"]
    assert [(r["port"], r["count"], r["checks"]) for r in skips] == [(25, 3, ["T02", "T21/EXPORT", "T18"]), (587, 1, ["T17"])]
    first = skips[0]
    assert first["probe"] == compact.SKIP_AGGREGATE_PROBE and compact.is_aggregate(first)
    assert first["probes"] == {"T02": 1, "T18": 1, "T21": 1}
    # each reason once, after the checks it skipped, in order of first appearance
    assert first["reason"] == "T02, T18: no canary; T21/EXPORT: not testable here: no EXPORT"
    assert first["title"] == "3 checks skipped: T02, T21/EXPORT, T18"
    assert out.index(first) == [r["probe"] for r in full].index("T02") - 2  # where the first SKIP was, after 2 PASS folded
    assert compact.verdict_counts(out) == compact.verdict_counts(full)
    # the reports count the checks, and JUnit counts testcases as its readers recount them
    rows = report.collect(out)
    assert report.summarize(rows)[1]["SKIP"] == 4 == report.summarize(report.collect(full))[1]["SKIP"]
    long_reason = "not testable here: " + "this OpenSSL cannot offer it, " * 3 + "end of the reason"
    wordy = report.collect(compact.compact_results([result("T17", "SKIP", reason=long_reason), result("T21", "SKIP", case="RC4", reason=long_reason + ".")]))
    markdown = report.to_markdown(wordy, "t")
    assert "T17: %s; T21/RC4: %s." % (long_reason, long_reason) in markdown  # every reason of the aggregate whole
    junit = report.to_junit(rows, "t")
    assert junit.count("<skipped") == 3  # 2 SKIP aggregates and the INCONCLUSIVE
    assert 'skipped="3"' in junit.split(">", 2)[1]
