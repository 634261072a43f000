# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compact probe results: PASS results aggregated per listener and vantage, the rest kept whole.

A fleet run returns ~110 results per listener and almost all of them are PASS; returning every
one to Ansible costs more than the probes (issue 17). :func:`compact_results` keeps every result
that is not a PASS exactly as the engine gave it and replaces the PASS results of each
``(target, address, port, vantage)`` by one aggregate::

    {target, address, port, vantage, source_address, verdict: PASS, probe: passed, count: 37,
     probes: {T01: 1, T11: 14, ...}, title: "37 checks passed: T01, T11 x14, ...", duration: 1.2}

The SKIP results of a group fold the same way, once the run is over (T20 and the unverified check
read them until then), into one aggregate that keeps each check's probe, case and reason::

    {target, address, port, vantage, source_address, verdict: SKIP, probe: skipped, count: 3,
     probes: {T17: 1, T21: 2}, checks: [T17, T21/EXPORT, T21/RC4],
     title: "3 checks skipped: T17, T21/EXPORT, T21/RC4",
     reason: "T17: no canary (or spool) configured; T21/EXPORT: not testable here: ...; T21/RC4: ..."}

(``reason`` names each distinct reason once, after the checks it skipped.)

A SKIP carries no reply, transcript or finding, so nothing a reader needs is lost; at N=1000 the
ten SKIPs of every endpoint (no canary, ciphers this OpenSSL cannot offer) were three quarters of
what relay_probe returned.

Counts per verdict stay what they were (module_utils/report.py and verify_plan.summarize add up
``count``). Pure Python, no Ansible imports.
"""

from __future__ import annotations

AGGREGATE_PROBE = "passed"
SKIP_AGGREGATE_PROBE = "skipped"
_AGGREGATES = (AGGREGATE_PROBE, SKIP_AGGREGATE_PROBE)
# Keys copied from the first result of a group: they are the same for the whole group.
_GROUP_KEYS = ("target", "address", "port", "vantage", "source_address", "client_seen")


def group_key(result):
    """The group a PASS or SKIP result is counted in: target, address, port and vantage."""
    return tuple(str(result.get(key)) for key in ("target", "address", "port", "vantage"))


def _open_group(result, verdict, probe, **fields):
    """The aggregate ``result`` opens: its group's keys, then ``verdict``, ``probe``, a zero count
    and ``fields``."""
    group = dict((name, result[name]) for name in _GROUP_KEYS if result.get(name) is not None)
    group.update(verdict=verdict, probe=probe, count=0, probes={}, **fields)
    return group


def _count(group, result):
    """Count ``result`` in ``group``; returns its probe id."""
    probe = str(result.get("probe") or "?")
    group["count"] += 1
    group["probes"][probe] = group["probes"].get(probe, 0) + 1
    return probe


def is_aggregate(result):
    """A compact aggregate (of PASS or of SKIP results) that stands for ``count`` checks."""
    return result.get("probe") in _AGGREGATES


def _title(count, probes):
    parts = [probe if n == 1 else "%s x%d" % (probe, n) for probe, n in probes.items()]
    return "%d check%s passed: %s" % (count, "" if count == 1 else "s", ", ".join(parts))


class PassAggregates:
    """PASS results folded into one aggregate per group as they come (the engine folds each final
    PASS at the moment it is recorded, so a fleet run never holds 100,000 result dicts)."""

    def __init__(self):
        self.groups = {}

    def add(self, result):
        """Count one PASS result; returns the group's aggregate when this result opened it, else None."""
        key = group_key(result)
        group = self.groups.get(key)
        opened = group is None
        if opened:
            group = self.groups[key] = _open_group(result, "PASS", AGGREGATE_PROBE, duration=0.0)
        _count(group, result)
        try:
            group["duration"] += float(result.get("duration") or 0.0)
        except (TypeError, ValueError):
            pass
        return group if opened else None

    def finish(self):
        """Sort the probe counts, round the duration and set the title of every aggregate; returns them."""
        for group in self.groups.values():
            group["probes"] = dict(sorted(group["probes"].items()))
            group["duration"] = round(group["duration"], 3)
            group["title"] = _title(group["count"], group["probes"])
        return list(self.groups.values())


def fold_skips(results):
    """``results`` -> a new list: every result that is not a SKIP unchanged (input order), the SKIP
    results of each target, address, port and vantage merged into one aggregate at the place of
    the group's first SKIP."""
    output, groups = [], {}
    for result in results or []:
        if result.get("verdict") != "SKIP" or is_aggregate(result):
            output.append(result)  # an aggregate passed in again stays as it is
            continue
        key = group_key(result)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _open_group(result, "SKIP", SKIP_AGGREGATE_PROBE, checks=[], duration=0.0)
            group["_reasons"] = {}  # reason -> the checks it skipped, in order of first appearance
            output.append(group)
        probe = _count(group, result)
        check = probe + ("/%s" % result["case"] if result.get("case") else "")
        group["checks"].append(check)
        group["_reasons"].setdefault(str(result.get("reason") or "no reason given"), []).append(check)
    for group in groups.values():
        group["probes"] = dict(sorted(group["probes"].items()))
        group["title"] = "%d check%s skipped: %s" % (group["count"], "" if group["count"] == 1 else "s", ", ".join(group["checks"]))
        group["reason"] = "; ".join("%s: %s" % (", ".join(checks), reason) for reason, checks in group.pop("_reasons").items())
    return output


def compact_results(results):
    """``results`` -> a new list: results that are neither PASS nor SKIP unchanged (input order);
    PASS results merged per target, address, port and vantage into one aggregate at the place of
    the group's first PASS, SKIP results likewise (fold_skips)."""
    output = []
    aggregates = PassAggregates()
    for result in results or []:
        if result.get("verdict") != "PASS" or is_aggregate(result):
            output.append(result)  # an aggregate passed in again stays as it is
            continue
        opened = aggregates.add(result)
        if opened is not None:
            output.append(opened)
    aggregates.finish()
    return fold_skips(output)


def verdict_counts(results):
    """Checks per verdict, an aggregate counting for the PASS results it stands for."""
    counts = {}
    for result in results or []:
        verdict = result.get("verdict")
        counts[verdict] = counts.get(verdict, 0) + (int(result.get("count") or 0) if is_aggregate(result) else 1)
    return counts
