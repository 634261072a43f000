#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the measured figures into docs/performance.md between the generated-section markers.

Input: the JSON files fleet_bench.py, converge_bench.py and probe_bench.py (one per target, --probe
repeated) wrote (--json). Only numbers found in them are printed; a bench that did not run is said
to be missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

BEGIN = "<!-- BEGIN GENERATED: bench/run_all.sh -->"
END = "<!-- END GENERATED: bench/run_all.sh -->"
f = benchlib.fmt


def load(path):
    if path and os.path.exists(path):
        with open(path) as handle:
            return json.load(handle)
    return None


def machine_section(data, lab=None):
    machine = (data or {}).get("machine") or benchlib.machine_facts()
    lines = [
        "Run started %s on %s CPUs (%s), kernel %s, Python %s, ansible-core %s, %s; RLIMIT_NOFILE %s."
        % (
            machine["date"],
            machine["nproc"],
            machine["cpu"],
            machine["kernel"],
            machine["python"],
            machine["ansible_core"],
            machine["podman"],
            machine["nofile"],
        ),
        "Load average (1 min) when the run started: %s. Each section below gives its own date and the load "
        "average beside each figure: the 2 cores are shared with other jobs (tests of other people may run "
        "at the same time), so wall times carry that load and are noisy; CPU seconds are the steadier figure." % machine["loadavg_1m"],
        "",
    ]
    return lines + lab_section(lab)


def _when(data):
    """'measured <date>, load <x> at its start' of one bench's JSON."""
    machine = (data or {}).get("machine") or {}
    return "measured %s, load average %s at its start" % (machine.get("date", "?"), machine.get("loadavg_1m", "?"))


def lab_section(lab):
    """Which state the lab hosts were in for the lab figures (bench/lab_state.py)."""
    if not lab:
        return ["Lab hosts: not hardened by this run (bench/run_all.sh did not run playbooks/harden.yml): no lab figure below is of hardened hosts.", ""]
    recap = lab.get("recap") or {}
    text = "Lab hosts (%s): %s by `ansible-playbook -i %s %s` before the fleet and probe benches (rc %s, %s s; %s; %s)." % (
        ", ".join(sorted(recap)) or "none",
        lab["state"].upper(),
        lab.get("inventory"),
        lab.get("playbook"),
        lab.get("rc"),
        f(lab.get("wall_s"), 1),
        ", ".join("%s changed=%d" % (h, r["changed"]) for h, r in sorted(recap.items())) or "no recap",
        _when(lab),
    )
    if lab["state"] != "hardened":
        text += " The lab figures were skipped: they would be of unhardened hosts."
    return [text, ""]


# Targets of issue 17 ("Must show")
ENGINE_TARGET_S = 20
MODULE_RATIO_TARGET = 1.2
MODULE_RSS_TARGET_MIB = 300
RERUN_TARGET_S = 3.0
# Issue 17's side-by-side measurements of a no-op rerun (one host, SSH); quoted, not measured here.
PEER_RERUNS = (
    ("mailsec.relay (this collection, in the issue's measurement)", 2.5, ""),
    ("geerlingguy.postfix", 6.0, " (manages two settings)"),
    ("linux-system-roles.postfix", 10.3, ""),
    ("Oefenweb.postfix", 12.1, ""),
    ("foundata", 14.9, ""),
)

ENDPOINTS = {
    "lean": (
        "smtp_fakes/lean_smtp.py: FakeHost's replies and real TLS (self-signed ECDSA P-256 certificate, the key type certbot issues by default), "
        "one buffered asyncio protocol per connection with TLS on memory BIOs"
    ),
    "fake": "smtp_fakes/fakesmtp.FakeHost",
}


def fleet_section(fleet):
    if not fleet:
        return ["### Fleet verification", "", "Not measured in this run (bench/fleet_bench.py).", ""]
    cfg = fleet["config"]
    mixed = fleet.get("mixed_lab") or None
    real_count = len(mixed["real_targets"]) if mixed else 0
    ports = (cfg.get("ports") or "25,587,465").split(",")
    lines = [
        "### Fleet verification (bench/fleet_bench.py)",
        "",
        "(%s; the load column gives the 1-minute load average at the start and end of each run.) "
        "N emulated hardened MTAs (%s STARTTLS, %s TLS-required + AUTH after TLS, %s implicit TLS) on "
        "127.77.x.y, %d endpoint processes (%s), concurrency %d; median of %d engine runs and %d module runs "
        "per N. The module path is ansible-playbook with one relay_probe task on localhost: on that local "
        "connection relay_probe's action plugin runs the engine in ansible-playbook's worker, as for the "
        "verify role's default prober (a remote prober runs the module)."
        % (
            _when(fleet),
            ports[0],
            ports[1],
            ports[2],
            cfg["servers"],
            ENDPOINTS.get(cfg.get("endpoint"), ENDPOINTS["fake"]),
            cfg["concurrency"],
            cfg["repeat"],
            cfg.get("module_repeat") or cfg["repeat"],
        ),
    ]
    if mixed:
        lines[-1] += (
            " Every run also verified %d real lab MTAs (%s; %d listeners) in the same engine or module "
            "call: the whole bench ran in the %s container's network namespace, probing from %s (the "
            "external vantage; expectations from the lab inventory's policy)."
            % (
                real_count,
                ", ".join("%s (%s)" % (n, (mixed.get("kinds") or {}).get(n) or "?") for n in mixed["real_targets"]),
                mixed["real_listeners"],
                mixed["netns"],
                mixed["vantage"],
            )
        )
    else:
        lines[-1] += " Emulated endpoints only: no real MTA in these runs."
    lines += [
        "",
        "| path | N | real MTAs | wall s | prober processes | prober CPU s | endpoint CPU s | peak RSS MiB (largest process) | "
        "process tree peak RSS / PSS MiB | results | results/s | endpoints/s | peak fds | connections | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for path in ("engine", "module"):
        rows = fleet.get(path)
        if not isinstance(rows, dict):
            continue
        for size, row in sorted(rows.items(), key=lambda kv: int(kv[0])):
            if "wall" not in row:
                lines.append("| %s | %s | %d | error: %s |" % (path, size, real_count, "; ".join(e.splitlines()[-1][:120] for e in row.get("errors") or [])))
                continue
            lines.append(
                "| %s | %s | %d | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s | %s | %s |"
                % (
                    path,
                    size,
                    real_count,
                    f(row["wall"]),
                    f(row.get("workers")),
                    f(row.get("cpu"), 1),
                    f(row.get("server_cpu"), 1),
                    f(row["maxrss_mib"], 0),
                    f(row.get("tree_rss_mib"), 0),
                    f(row.get("tree_pss_mib"), 0),
                    row["results"],
                    f(row["results_per_s"], 0),
                    f(int(size) / row["wall"], 1),
                    f(row.get("fd_peak")),
                    f(row.get("connections")),
                    _loads(row),
                )
            )
    lines.append("")
    if mixed:
        lines.append(
            "N counts the emulated endpoints; results and verdicts include the %d real MTAs, endpoint CPU and "
            "connections are the emulated endpoints' only." % real_count
        )
        lines.append("")
        for path in ("engine", "module"):
            rows = fleet.get(path)
            for size, row in sorted(rows.items(), key=lambda kv: int(kv[0])) if isinstance(rows, dict) else ():
                split = row.get("split")
                if split:
                    lines.append(
                        "- %s N=%s verdicts: real %s%s / emulated %s"
                        % (
                            path,
                            size,
                            _verdicts(split["real"]),
                            "" if row.get("real_splits_agree") in (None, True) else " (differed between runs)",
                            _verdicts(split["emulated"]),
                        )
                    )
        eng_rows = fleet.get("engine") if isinstance(fleet.get("engine"), dict) else {}
        notable = next(
            (row.get("real_not_pass") for _, row in sorted(eng_rows.items(), key=lambda kv: -int(kv[0])) if row.get("real_not_pass") is not None), None
        )
        if notable:
            lines.append(
                "- real MTAs, every result but PASS (engine, largest N): "
                + "; ".join("%s/%s %s%s %s" % (r["target"], r["port"], r["probe"], "/" + r["case"] if r["case"] else "", r["verdict"]) for r in notable)
            )
        lines.append("")
    for path in ("engine", "module"):
        rows = fleet.get(path)
        if isinstance(rows, dict):
            walls = {int(k): v.get("wall") for k, v in rows.items()}
            if walls.get(100) and walls.get(1000):
                lines.append("- %s: t(1000)/t(100) = %s (10 would be linear)" % (path, f(walls[1000] / walls[100])))
    eng, mod = fleet.get("engine"), fleet.get("module")
    if isinstance(eng, dict) and isinstance(mod, dict):
        for size in sorted(set(eng) & set(mod), key=int):
            if "wall" in eng[size] and "wall" in mod[size]:
                lines.append(
                    "- module/engine at N=%s: wall %s (+%s s), CPU %s (module: ansible-playbook's whole tree), peak RSS %s"
                    % (
                        size,
                        f(mod[size]["wall"] / eng[size]["wall"]),
                        f(mod[size]["wall"] - eng[size]["wall"]),
                        f(benchlib.ratio(mod[size].get("cpu"), eng[size].get("cpu"))),
                        f(mod[size]["maxrss_mib"] / eng[size]["maxrss_mib"]),
                    )
                )
    elif isinstance(mod, str):
        lines.append("- module path: %s" % mod)
    big = (eng or {}).get("1000") if isinstance(eng, dict) else None
    if big and "wall" in big:
        lines.append(
            "- target (issue 17) engine over 1000 emulated endpoints < %d s on these %s cores, endpoints "
            "emulated on the same cores: %s (%s s at load %s; prober %s s + endpoints %s s of CPU)"
            % (
                ENGINE_TARGET_S,
                (fleet.get("machine") or {}).get("nproc", "?"),
                "met" if big["wall"] < ENGINE_TARGET_S else "NOT met",
                f(big["wall"]),
                _loads(big),
                f(big.get("cpu"), 1),
                f(big.get("server_cpu"), 1),
            )
        )
    big_mod = (mod or {}).get("1000") if isinstance(mod, dict) else None
    if big and big_mod and "wall" in big and "wall" in big_mod:
        ratio = big_mod["wall"] / big["wall"]
        # the whole ansible-playbook process tree at once (summed RSS, the stricter of the two sums);
        # runs of an older bench without it: the largest process
        memory = big_mod.get("tree_rss_mib") or big_mod["maxrss_mib"]
        met = ratio <= MODULE_RATIO_TARGET and memory < MODULE_RSS_TARGET_MIB
        lines.append(
            "- target (issue 17) 1000 endpoints through the module at most %.1f x the engine's time, peak "
            "memory below %d MiB: %s (%s x; ansible-playbook's whole process tree %s MiB RSS summed, %s MiB PSS; "
            "largest single process %s MiB)"
            % (
                MODULE_RATIO_TARGET,
                MODULE_RSS_TARGET_MIB,
                "met" if met else "NOT met",
                f(ratio),
                f(big_mod.get("tree_rss_mib"), 0),
                f(big_mod.get("tree_pss_mib"), 0),
                f(big_mod["maxrss_mib"], 0),
            )
        )
    lab = fleet.get("lab")
    if isinstance(lab, dict) and "wall" in lab:
        lines.append(
            "- real lab MTAs (%s; %d listeners) from the prober container: %s s, %d results, %s"
            % (", ".join(lab["targets"]), lab["listeners"], f(lab["wall"]), lab["results"], ", ".join("%s %s" % kv for kv in lab["verdicts"].items() if kv[1]))
        )
    elif lab:
        lines.append("- real lab MTAs: %s" % (lab if isinstance(lab, str) else lab.get("errors")))
    lines.append("")
    return lines


def zoo_section(zoo):
    if not zoo:
        return ["### Zoo of foreign servers (bench/zoo_bench.py)", "", "Not measured in this run (bench/zoo_bench.py: root, zoo images).", ""]
    f = benchlib.fmt
    lines = [
        "### Zoo of foreign servers (bench/zoo_bench.py)",
        "",
        "(measured %s, load average %s at the start of each run, %s at its end.) `playbooks/verify.yml` over the %d "
        "servers of tests/zoo (%d listener addresses, IPv4 and IPv6) in verify-only mode (each server's listeners, "
        "domains, test mailbox and account from its truth file), one vantage, the zoo's canary sink, all reports "
        "written; survey settings (`verify_fail_on: []`, `verify_unverified: warn`); ansible-playbook in zoo-prober's "
        "network namespace. %s; median of %d run(s)%s."
        % (
            (zoo.get("machine") or {}).get("date", "?"),
            ", ".join(str(x) for x in zoo.get("loadavg_1m") or []),
            ", ".join(str(x) for x in zoo.get("loadavg_1m_end") or []),
            zoo["servers"],
            zoo["listener_addresses"],
            "The zoo was started by the bench" if zoo.get("zoo_started_here") else "The zoo was already running",
            zoo["runs"],
            " (runs after the first meet sendmail's limit of 10 connections per client per 10 minutes)" if zoo["runs"] > 1 else "",
        ),
        "",
        "| what | seconds |",
        "|---|---:|",
        "| verify playbook wall (%s checks) | %s |" % (zoo.get("results"), f(zoo.get("playbook_wall_s"))),
        "| engine (relay_probe's own seconds in the same run) | %s |" % f(zoo.get("engine_s")),
        "| controller (wall - engine) | %s |" % f(zoo.get("controller_s")),
        "| nmap smtp-open-relay on the %s MX endpoints, 4 at a time | %s |" % (zoo.get("nmap_endpoints"), f(zoo.get("nmap_wall_s"))),
        "",
        "- playbook / engine: %s x; nmap / playbook: %s x (same run)" % (f(zoo.get("ratio_playbook_over_engine")), f(zoo.get("ratio_nmap_over_playbook"))),
        "- target (issue 17) the zoo verified by the playbook in under %.0f s wall: %s (%s s)"
        % (zoo.get("target_s") or 10, "met" if zoo.get("target_met") else "NOT met", f(zoo.get("playbook_wall_s"))),
        "- where the controller's time went (last run): "
        + "; ".join("%s %s s" % (name, f(seconds)) for name, seconds in zoo.get("overhead") or [] if seconds >= 0.05),
        "- verdicts: %s; findings: %s" % (_verdicts(zoo.get("verdicts") or {}), ", ".join("%s %s" % kv for kv in sorted((zoo.get("findings") or {}).items()))),
        "",
    ]
    return lines


def _loads(row):
    """Load average at the start (and end, where recorded) of each run: "0.9→7.6/7.6→8.1"."""
    ends = row.get("loadavg_1m_end") or []
    return "/".join(str(start) if i >= len(ends) or ends[i] is None else "%s→%s" % (start, ends[i]) for i, start in enumerate(row.get("loadavg_1m") or []))


def _verdicts(counts):
    return ", ".join("%s %s" % kv for kv in counts.items() if kv[1]) or "none"


def converge_section(conv):
    if not conv:
        return ["### Converge", "", "Not measured in this run (bench/converge_bench.py).", ""]
    lines = [
        "### Converge (bench/converge_bench.py)",
        "",
        "playbooks/harden.yml (and playbooks/drift.yml) on fresh containers of the lab images over the "
        "containers.podman connection (%s); median of %d reruns. The hosts are fresh containers of this "
        "bench, hardened by the first run; the no-op rerun and drift rows are of hardened hosts. "
        '"podman calls" are the connection\'s round trips (each `podman exec`/`mount`).' % (_when(conv), conv["config"]["repeat"]),
        "",
        "| host | run | wall s | tasks | ok | changed | skipped | tasks on the host | podman calls | podman s | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, host in conv["hosts"].items():
        for kind in ("first", "rerun", "drift"):
            run = host.get(kind)
            if not isinstance(run, dict):
                lines.append("| %s | %s | %s |" % (name, kind, run))
                continue
            recap = run.get("host_recap") or {}
            lines.append(
                "| %s | %s | %s | %d | %s | %s | %s | %d | %d | %s | %s |"
                % (
                    name,
                    kind if kind != "rerun" else "no-op rerun",
                    f(run["wall"], 1),
                    run["tasks"],
                    recap.get("ok"),
                    recap.get("changed"),
                    recap.get("skipped"),
                    run["remote_tasks"],
                    run["podman_calls"],
                    f(run["podman_seconds"], 1),
                    run.get("loadavg_1m"),
                )
            )
    lines.append("")
    calib = conv.get("calibration") or {}
    if calib:
        lines.append(
            "Calibration on the same container: a facts-only play's fact gathering %s s (%s podman calls), "
            "one module call (`ping`) %s s (%s podman calls), one podman call %s s. For comparison, "
            "quoted from the issue's measurements (peers over SSH, not measured here): facts ~2 s, a module "
            "call ~0.85 s."
            % (
                f(calib.get("gather_facts_s")),
                calib.get("gather_facts_podman_calls"),
                f(calib.get("module_call_s")),
                calib.get("module_call_podman_calls"),
                f(calib.get("podman_call_s"), 3),
            )
        )
        lines.append("")
    for name, host in conv["hosts"].items():
        rerun = host.get("rerun")
        if not isinstance(rerun, dict):
            continue
        verdict = "met" if rerun["wall"] <= RERUN_TARGET_S and (rerun.get("host_recap") or {}).get("changed") == 0 else "NOT met"
        lines.append(
            "%s no-op rerun: changed=%s in %s s at load %s — target (issue 17: changed=0, at most %s s per "
            "host) %s. Costliest tasks:"
            % (name, (rerun.get("host_recap") or {}).get("changed"), f(rerun["wall"], 1), rerun.get("loadavg_1m"), f(RERUN_TARGET_S, 0), verdict)
        )
        lines.append("")
        for task in rerun["costliest"][:6]:
            lines.append("- %s s, %d podman calls, %s: %s (`%s`)" % (f(task["seconds"]), task["podman_calls"], task["status"], task["task"], task["action"]))
        lines.append("")
    reruns = [host["rerun"]["wall"] for host in conv["hosts"].values() if isinstance(host.get("rerun"), dict)]
    if reruns:
        lines.append(
            "No-op rerun of harden.yml beside the peers. The peers' figures are QUOTED from issue 17's "
            "side-by-side measurements (one host over SSH), not measured in this run; this run's rows "
            "are over the containers.podman connection:"
        )
        lines.append("")
        lines.append("| role | no-op rerun s | source |")
        lines.append("|---|---:|---|")
        for name, host in conv["hosts"].items():
            if isinstance(host.get("rerun"), dict):
                lines.append("| mailsec.relay, %s | %s | this run (load %s) |" % (name, f(host["rerun"]["wall"], 1), host["rerun"].get("loadavg_1m")))
        for name, seconds, note in PEER_RERUNS:
            lines.append("| %s%s | %s | quoted from issue 17 |" % (name, note, f(seconds, 1)))
        lines.append("")
    mit = conv.get("mitogen")
    if mit:
        lines.append("Mitogen (%s): %s" % (conv.get("mitogen_version") or "mitogen", mit.get("status")))
        for name, host in (mit.get("hosts") or {}).items():
            plain = conv["hosts"][name]["rerun"]["wall"]
            lines.append(
                "- %s: first run %s s, no-op rerun %s s (without mitogen %s s; ratio %s)"
                % (name, f(host["first"]["wall"], 1), f(host["rerun"]["wall"], 1), f(plain, 1), f(host["rerun"]["wall"] / plain))
            )
        if mit.get("error"):
            lines.append("")
            lines.append("```")
            lines.extend(mit["error"].strip().splitlines()[-12:])
            lines.append("```")
        lines.append("")
    return lines


PROBE_TARGET_S = 1.0


def _x(value):
    """A ratio: whole numbers from 10 up, one decimal below."""
    return f(value, 0 if value is not None and value >= 10 else 1)


def _ms(row):
    """Median wall, and each run's wall when there were several (T08 makes them bimodal)."""
    walls = (row or {}).get("walls") or []
    text = f((row or {}).get("median_s"), 3)
    return text + (" (%s)" % "/".join(f(w, 3) for w in walls) if len(walls) > 1 else "")


def probe_section(probes, lab=None):
    """The issue's "probe matrix vs nmap" table, one row group per probe_bench.py JSON."""
    if not probes:
        return ["### Probe matrix vs nmap", "", "Not measured in this run (bench/probe_bench.py).", ""]
    lines = [
        "### Probe matrix vs nmap (bench/probe_bench.py)",
        "",
        "One host: the engine's full matrix on all its listeners, the same without T08 (the deliberate "
        "wrong passwords; run before the full matrix in each round), the matrix on port 25 alone, and Debian nmap's "
        "`smtp-open-relay` script (`nmap -n -p 25`, 16 RCPT-only relay tests, one connection) against the "
        "same listener. Median of the runs; probes/s = cases / median wall; ratios are nmap over engine "
        "for wall time and engine over nmap for probes/s (port 25 against port 25). Lab hosts are probed "
        "from the prober container's network namespace, with 30 s between rounds so that Dovecot's auth "
        "penalty from the previous round's T08 has expired; lab hosts: %s. Each target's line below gives its "
        "date; the last column the load average at each round's start."
        % ("hardened by this run (see above)" if (lab or {}).get("state") == "hardened" else "NOT hardened by this run"),
        "",
        "| target | runs | row | wall s: median (each run) | cases | probes/s | ratios | verdicts | load per run |",
        "|---|---:|---|---:|---:|---:|---|---|---|",
    ]
    for data in probes:
        load = "/".join(str(x) for x in data.get("loadavg_1m_per_run") or [])
        nmap = data.get("nmap_mx") or {}
        done = nmap.get("completed", nmap.get("median_s") is not None)
        if nmap.get("median_s") is None:
            vs_nmap = vs_nmap_mx = "nmap not run"
        elif not done:
            vs_nmap = vs_nmap_mx = "no ratio: nmap's script stopped without a verdict"
        else:
            vs_nmap = "probes/s vs nmap %s x" % _x(data.get("ratio_probes_per_s_engine_all_over_nmap"))
            vs_nmap_mx = "wall: nmap %s x longer; probes/s vs nmap %s x" % (
                _x(data.get("ratio_nmap_over_engine_mx")),
                _x(data.get("ratio_probes_per_s_engine_mx_over_nmap")),
            )
        rows = [
            ("full matrix, all listeners (%s)" % "/".join(str(p) for p in data.get("ports") or []), data.get("engine_all"), vs_nmap),
            ("all listeners without T08", data.get("engine_all_no_t08"), "full / without T08: wall %s x" % f(data.get("ratio_engine_all_over_no_t08"), 2)),
            ("port 25 only", data.get("engine_mx"), vs_nmap_mx),
            (
                "nmap smtp-open-relay, port %s" % nmap.get("port", 25),
                nmap if nmap.get("median_s") is not None else None,
                "nmap said: %s" % (nmap.get("verdict") or "n/a"),
            ),
        ]
        for label, row, ratio in rows:
            if row is None:
                if label.startswith("nmap"):
                    lines.append("| %s | %s | %s | not run | | | | | %s |" % (data["name"], data["runs"], label, load))
                continue
            verdicts = ", ".join("%s %s" % kv for kv in (row.get("verdicts") or {}).items() if kv[1])
            lines.append(
                "| %s | %s | %s | %s | %s | %s | %s | %s | %s |"
                % (data["name"], data["runs"], label, _ms(row), f(row.get("cases")), f(row.get("probes_per_s"), 0), ratio, verdicts, load)
            )
    lines.append("")
    for data in probes:
        full = (data.get("engine_all") or {}).get("median_s")
        without = (data.get("engine_all_no_t08") or {}).get("median_s")
        met = full is not None and full < PROBE_TARGET_S
        line = '- %s (%s; measured %s): target "full matrix on one host < 1 s" %s (%s s' % (
            data["name"],
            data.get("target"),
            (data.get("machine") or {}).get("date", "?"),
            "met" if met else "NOT met",
            f(full, 3),
        )
        if without is not None:
            line += "; without T08 %s s, full / without T08 %s x" % (f(without, 3), f(data.get("ratio_engine_all_over_no_t08"), 1))
        pps = data.get("ratio_probes_per_s_engine_mx_over_nmap")
        line += (
            "; probes/s over nmap's script %s x on port 25)." % _x(pps)
            if pps is not None
            else "; no probes/s ratio over nmap: its script gave no verdict here)."
        )
        if not met and without is not None and without < PROBE_TARGET_S:
            t08 = [c for c in data.get("slowest_all") or [] if c["probe"] == "T08"]
            line += (
                " Without T08 the matrix is under 1 s: T08 sends wrong passwords on purpose and the server "
                "answers them only after its failure delay (Dovecot's `auth_failure_delay`, 2 s by default), "
                "so T08 alone sets the floor of the full matrix%s. That delay is the server's deliberate "
                "brute-force brake, not probe time."
                % (" (T08 took %s in the last run)" % ", ".join("%s s on %s" % (f(c["duration"], 3), c["port"]) for c in t08) if t08 else "")
            )
        penalised = [c for c in data.get("slowest_all") or [] if c["probe"] == "T08" and (c.get("duration") or 0) > 3]
        if penalised:
            line += (
                " In the last full run T08 on %s took %s s: it also waited out Dovecot's auth penalty from "
                "the other listener's wrong password (the two reached Dovecot a moment apart; ~4 s on top)."
                % (penalised[0]["port"], f(penalised[0]["duration"], 3))
            )
        lines.append(line)
        for key, label in (("quit_mx", "port 25"), ("quit_all", "all listeners")):
            quits = data.get(key) or {}
            if quits.get("quits"):
                text = "  QUIT exchanges (%s, last run): %d, median wait for the 221 %s s, %d over 0.1 s, %s s in all." % (
                    label,
                    quits["quits"],
                    f(quits.get("quit_wait_median_s"), 3),
                    quits.get("quits_over_100ms", 0),
                    f(quits.get("quit_wait_sum_s"), 2),
                )
                if (quits.get("quit_wait_median_s") or 0) >= 0.1:
                    text += (
                        " The server holds its reply to QUIT until the client closes (Exim 4.96 on plaintext: "
                        "up to 200 ms), and each connection keeps its per-host slot until then."
                    )
                lines.append(text)
        slow = data.get("slowest_all") or []
        if slow:
            lines.append(
                "  Slowest cases of the last full run: %s."
                % ", ".join("%s%s on %s %s s" % (c["probe"], "/" + c["case"] if c.get("case") else "", c["port"], f(c["duration"], 3)) for c in slow[:5])
            )
    lines.append("")
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fleet")
    parser.add_argument("--converge")
    parser.add_argument("--lab", help="bench/lab_state.py's JSON: the state the lab was brought to")
    parser.add_argument("--probe", action="append", default=[], help="a probe_bench.py JSON (repeat per target)")
    parser.add_argument("--zoo", help="bench/zoo_bench.py's JSON")
    parser.add_argument("--doc", default=os.path.join(benchlib.ROOT, "docs", "performance.md"))
    args = parser.parse_args()
    fleet, conv = load(args.fleet), load(args.converge)
    probes = [data for data in (load(path) for path in args.probe) if data]
    lab = load(args.lab)
    zoo = load(args.zoo)
    body = (
        machine_section(fleet or conv or (probes[0] if probes else None), lab)
        + fleet_section(fleet)
        + zoo_section(zoo)
        + converge_section(conv)
        + probe_section(probes, lab)
    )
    text = open(args.doc).read() if os.path.exists(args.doc) else "# Performance\n\n%s\n%s\n" % (BEGIN, END)
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + "\n\n%s\n%s\n" % (BEGIN, END)
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(args.doc, "w") as handle:
        handle.write(head + BEGIN + "\n" + "\n".join(body).rstrip("\n") + "\n" + END + tail)
    print("wrote %s" % args.doc)


if __name__ == "__main__":
    main()
