#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The full probe matrix against one host, side by side with nmap's smtp-open-relay script.

Per run: the engine's whole matrix on the host's listeners, the engine's matrix on port 25 alone,
the engine's matrix on all listeners without T08 (the deliberate wrong passwords, which wait out the
server's auth failure delay; run before the full matrix in each round), and ``nmap -n -p 25 --script smtp-open-relay
<addr>`` (Debian nmap, 16 relay tests, RCPT only; -n keeps nmap from asking DNS about the address).
Median wall time of --runs runs, probes per second, cases covered, the ratios nmap / engine on
port 25 and full / without-T08, verdict counts, the slowest cases of the last run and the load
average per run. ``--json`` writes them for bench/render_doc.py (one file per target).

Targets: a hardened fake host (smtp_fakes/fakesmtp.py) on 127.25.0.1 ports 25/587/465 in a
separate process (default), or a lab host: ``--lab-host mx1`` (its listeners and expectations from
the lab inventory's policy, as seen from the prober's external address) or ``--target ADDR``.
Lab runs go out of the lab prober's network namespace with ``--netns prober`` (nsenter; this
machine has no address on the lab network, and a route via its uplink is refused), with the
prober's canary spool read through ``podman mount``.

``--compare-modes`` also runs the engine in its reference mode (``reuse: false``: one case per
connection, no pipelined MAIL+RCPT or RSET, full TLS handshakes) and lists every case whose verdict
differs from the fast default; ``--dump DIR`` writes both runs' results with transcripts.

Lab hosts whose SASL backend is Dovecot delay a failed AUTH by 2 s and, for 29 s after it, every
AUTH from the prober (auth penalty): T08 puts a floor of ~2 s under a matrix with submission
listeners, and back-to-back runs slow each other down; ``--pause 30`` spaces the runs.

Run: .venv/bin/python bench/probe_bench.py [--runs 5] [--lab-host mx1 --netns prober --pause 30] [--json out.json]
     [--name NAME] [--no-without-t08]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import benchlib

FAKE_ADDRESS = "127.25.0.1"
NMAP = "/usr/bin/nmap"
IN_NETNS = "MAILSEC_PROBE_BENCH_NETNS"
NO_PROBE = "T08"  # left out of the "without T08" row: the wrong passwords that wait out the auth failure delay
SLOWEST = 8


allowed_target = benchlib.allowed_target
check_route = benchlib.check_route


def enter_netns(args):
    """Re-run this script inside the container's network namespace (host binaries and venv)."""
    argv = list(sys.argv[1:])
    index = argv.index("--netns")
    del argv[index : index + 2]
    if not args.canary_spool and not args.target:
        spool = os.path.join(benchlib.container_root(args.netns), "var", "spool", "canary")
        if os.path.isdir(spool):
            argv += ["--canary-spool", spool]
    benchlib.exec_in_netns(args.netns, __file__, argv, IN_NETNS)


def start_fake(spool):
    cmd = [sys.executable, "-m", "smtp_fakes.fakesmtp", "--full", "--listen", FAKE_ADDRESS, "--ports", "25,587,465", "--spool", spool]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=benchlib.env_with_paths(), text=True)
    line = proc.stdout.readline()
    if not line:
        proc.wait(5)
        raise SystemExit("fake SMTP host did not start (is %s port 25 free?)" % FAKE_ADDRESS)
    return proc, json.loads(line)["targets"][0]


def address_target(args):
    return {
        "name": args.target,
        "addresses": [args.target],
        "hostname": args.hostname or args.target,
        "local_domains": args.local_domain or [],
        "listeners": [
            {"port": 25, "role": "mx", "tls": "starttls"},
            {"port": 587, "role": "submission", "tls": "required"},
            {"port": 465, "role": "submission", "tls": "implicit"},
        ],
    }


def lab_target(name):
    """The verify role's target for a lab host (its policy, external vantage), with the test mailbox."""
    import fleet_bench

    for target in fleet_bench.lab_targets():
        if target["name"] == name:
            if target["local_domains"]:
                target["test_mailbox"] = "postmaster@%s" % target["local_domains"][0]
            return target, fleet_bench.LAB_SOURCE
    raise SystemExit("no lab host %r in tests/lab/inventory" % name)


QUIT_WAITS = []


def watch_quit():
    """Time the engine's QUIT exchanges (bench-side wrapper; the engine is unchanged).

    A server may hold its 221 until the client closes (Exim 4.96 on plaintext: up to 200 ms), and
    the engine waits for that reply at the end of every connection."""
    from ansible_collections.mailsec.relay.plugins.module_utils.smtp import client

    cls = getattr(client, "SMTPClient", None)
    original = getattr(cls, "quit", None)
    if original is None or getattr(original, "bench_wrapped", False):
        return

    async def quit(self, *args, **kwargs):
        started = time.monotonic()
        try:
            return await original(self, *args, **kwargs)
        finally:
            QUIT_WAITS.append(time.monotonic() - started)

    quit.bench_wrapped = True
    cls.quit = quit


def quit_figures():
    waits = sorted(QUIT_WAITS)
    return {
        "quits": len(waits),
        "quit_wait_sum_s": round(sum(waits), 3),
        "quit_wait_median_s": round(benchlib.median(waits), 4) if waits else None,
        "quits_over_100ms": sum(1 for w in waits if w > 0.1),
    }


def run_engine(engine, target, params):
    del QUIT_WAITS[:]
    started = time.monotonic()
    outcome = asyncio.run(engine.run_async(dict(params, targets=[target])))
    wall = time.monotonic() - started
    outcome["bench_quit"] = quit_figures()
    return wall, outcome


def run_nmap(address, port):
    cmd = [NMAP, "-n", "-p", str(port), "--script", "smtp-open-relay", address]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    wall = time.monotonic() - started
    verdict = "?"
    for pattern in (
        r"Server is an open relay \((\d+)/16 tests\)",
        r"(Server doesn't seem to be an open relay.*)",
        r"(Server isn't an open relay.*)",
        r"(Couldn't .*)",
        r"smtp-open-relay: (.*)",
    ):
        match = re.search(pattern, proc.stdout)
        if match:
            verdict = match.group(0).strip()
            break
    return wall, verdict, proc.stdout


def verdict_map(outcome):
    return {(r["port"], r["probe"], r["case"] or ""): (r["verdict"], r["reason"]) for r in outcome["results"]}


def compare(fast, slow):
    """Cases whose verdict differs between the fast default and the reference mode."""
    one, two = verdict_map(fast), verdict_map(slow)
    return [(key, one.get(key), two.get(key)) for key in sorted(set(one) | set(two)) if (one.get(key) or (None,))[0] != (two.get(key) or (None,))[0]]


def verdicts(outcome):
    return {k: v for k, v in outcome["summary"].items() if k.isupper()}


def slowest(outcome, count=SLOWEST):
    """The longest cases of one run: probe, case, listener port, duration, verdict."""
    cases = sorted(outcome["results"], key=lambda r: r.get("duration") or 0, reverse=True)[:count]
    return [{"probe": r["probe"], "case": r["case"], "port": r["port"], "duration": r.get("duration"), "verdict": r["verdict"]} for r in cases]


def dump(directory, name, outcome):
    if directory:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, name + ".json"), "w") as handle:
            json.dump(outcome, handle, indent=1, sort_keys=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--target", help="host address (default: a fake host on %s)" % FAKE_ADDRESS)
    parser.add_argument("--lab-host", help="lab inventory host (mx1, hub1, legacy1, exim1): listeners from its policy")
    parser.add_argument("--netns", help="container whose network namespace to probe from (the lab's prober)")
    parser.add_argument("--hostname")
    parser.add_argument("--local-domain", action="append")
    parser.add_argument("--source-address", help="vantage address to bind (lab runs)")
    parser.add_argument("--canary-spool", help="canary sink spool on this machine (lab runs)")
    parser.add_argument("--compare-modes", action="store_true", help="also run the one-case-per-connection reference mode and list verdict differences")
    parser.add_argument("--no-nmap", action="store_true")
    parser.add_argument("--probes", help="comma-separated probe IDs for the engine (default: all)")
    parser.add_argument("--no-without-t08", action="store_true", help="skip the extra all-listener run without T08 (wrong passwords) in each round")
    parser.add_argument(
        "--pause",
        type=float,
        default=0,
        help="seconds to wait before each all-listener run after the first (lab: 30, so that "
        "Dovecot's auth penalty from the previous run's wrong passwords has expired)",
    )
    parser.add_argument("--dump", help="write the last run's results (all transcripts) here")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--name", help="the target's name in the JSON (default: fake, the lab host or the address)")
    args = parser.parse_args()
    if args.netns and not os.environ.get(IN_NETNS):
        enter_netns(args)
    benchlib.import_paths()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine

    watch_quit()

    workdir = tempfile.mkdtemp(prefix="probe-bench-")
    fake = None
    source = args.source_address
    if args.lab_host:
        target, lab_source = lab_target(args.lab_host)
        source = source or lab_source
        spool = args.canary_spool
    elif args.target:
        if not allowed_target(args.target):
            raise SystemExit("--target must be loopback or a lab documentation address")
        target = address_target(args)
        spool = args.canary_spool
    else:
        spool = os.path.join(workdir, "spool")
        os.makedirs(spool)
        fake, target = start_fake(spool)
    address = target["addresses"][0]
    check_route(address)
    params = {"timeout": 5, "retry_delay": 1, "vantage": "bench", "transcripts": "all" if args.dump else "failures"}
    if source:
        params["source_address"] = [source]
    if args.probes:
        params["probes"] = args.probes.split(",")
    if spool:
        params["canary"] = {"domain": "canary.test", "spool": spool, "wait": 10}
    mx_target = dict(target, listeners=[item for item in target["listeners"] if item["port"] == 25 or (fake is not None and item is target["listeners"][0])])
    nmap_port = mx_target["listeners"][0]["port"]
    # The matrix without the deliberate wrong passwords (T08): what the server's auth failure
    # delay costs. Run first in each round (after --pause), so no earlier T08 penalty slows it.
    wanted = [p.upper() for p in (params.get("probes") or ["ALL"])]
    chosen = set(engine.DEFAULT_PROBES) | (set(wanted) - {"ALL"}) if "ALL" in wanted else set(wanted)
    no_t08 = dict(params, probes=sorted(chosen - {NO_PROBE})) if NO_PROBE in chosen and not args.no_without_t08 else None
    rows = {"engine_all": [], "engine_mx": [], "nmap_mx": [], "reference_all": [], "engine_all_no_t08": []}
    loads = []
    last = {}
    differences = []

    def pause():
        if args.pause and rows["engine_all"]:
            time.sleep(args.pause)

    try:
        for _ in range(args.runs):
            pause()
            loads.append(round(os.getloadavg()[0], 2))
            # Port 25 first (no AUTH there; it also warms up after the previous round's nmap), then
            # the matrix without T08, then the full matrix: no run follows a wrong password unpaused.
            wall, outcome = run_engine(engine, mx_target, params)
            rows["engine_mx"].append(wall)
            last["mx"] = outcome
            if no_t08 is not None:
                wall, outcome = run_engine(engine, target, no_t08)
                rows["engine_all_no_t08"].append(wall)
                last["no_t08"] = outcome
            wall, outcome = run_engine(engine, target, params)
            rows["engine_all"].append(wall)
            last["all"] = outcome
            if args.compare_modes:
                pause()
                wall, outcome = run_engine(engine, target, dict(params, reuse=False))
                rows["reference_all"].append(wall)
                last["reference"] = outcome
                differences.append(compare(last["all"], outcome))
            if os.path.exists(NMAP) and not args.no_nmap:
                wall, verdict, _ = run_nmap(address, nmap_port)
                rows["nmap_mx"].append(wall)
                last["nmap"] = verdict
    finally:
        if fake is not None:
            fake.terminate()
            fake.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    dump(args.dump, "fast", last["all"])
    if "reference" in last:
        dump(args.dump, "reference", last["reference"])

    med = {key: benchlib.median(values) for key, values in rows.items()}
    cases_all = last["all"]["summary"]["results"]
    cases_mx = last["mx"]["summary"]["results"]
    ports = "/".join(str(item["port"]) for item in target["listeners"])
    engine_pps_mx = benchlib.ratio(cases_mx, med["engine_mx"])
    nmap_ran = bool(rows["nmap_mx"])
    # Only a verdict means nmap ran its 16 tests; "SMTP RSET: failed ..." and the like mean it stopped.
    nmap_done = nmap_ran and bool(re.search(r"open relay", last.get("nmap") or ""))
    nmap_pps = benchlib.ratio(16, med["nmap_mx"]) if nmap_done else None
    figures = {
        "name": args.name or ("fake" if fake else args.lab_host or address),
        "target": "fake host %s (%s)" % (FAKE_ADDRESS, ports) if fake else "%s %s (%s)" % (args.lab_host or "", address, ports),
        "kind": "fake" if fake else "lab" if args.lab_host else "address",
        "ports": [item["port"] for item in target["listeners"]],
        "runs": args.runs,
        "pause_s": args.pause,
        "loadavg_1m_per_run": loads,
        "engine_all": {
            "median_s": med["engine_all"],
            "walls": rows["engine_all"],
            "cases": cases_all,
            "probes_per_s": benchlib.ratio(cases_all, med["engine_all"]),
            "verdicts": verdicts(last["all"]),
        },
        "engine_mx": {
            "median_s": med["engine_mx"],
            "walls": rows["engine_mx"],
            "cases": cases_mx,
            "probes_per_s": engine_pps_mx,
            "verdicts": verdicts(last["mx"]),
        },
        "nmap_mx": {
            "median_s": med["nmap_mx"],
            "walls": rows["nmap_mx"],
            "port": nmap_port,
            "cases": 16 if nmap_done else 0 if nmap_ran else None,
            "completed": nmap_done,
            "probes_per_s": nmap_pps,
            "verdict": last.get("nmap"),
            "version": benchlib.tool_version([NMAP, "--version"]) if nmap_ran else None,
        },
        "ratio_nmap_over_engine_mx": benchlib.ratio(med["nmap_mx"], med["engine_mx"]) if nmap_done else None,
        "ratio_probes_per_s_engine_mx_over_nmap": benchlib.ratio(engine_pps_mx, nmap_pps),
        "ratio_probes_per_s_engine_all_over_nmap": benchlib.ratio(benchlib.ratio(cases_all, med["engine_all"]), nmap_pps),
        "slowest_all": slowest(last["all"]),
        "quit_all": last["all"].get("bench_quit"),
        "quit_mx": last["mx"].get("bench_quit"),
        "machine": benchlib.machine_facts(),
    }
    if "no_t08" in last:
        cases = last["no_t08"]["summary"]["results"]
        figures["engine_all_no_t08"] = {
            "median_s": med["engine_all_no_t08"],
            "walls": rows["engine_all_no_t08"],
            "cases": cases,
            "left_out": NO_PROBE,
            "probes_per_s": benchlib.ratio(cases, med["engine_all_no_t08"]),
            "verdicts": verdicts(last["no_t08"]),
            "slowest": slowest(last["no_t08"]),
        }
        figures["ratio_engine_all_over_no_t08"] = benchlib.ratio(med["engine_all"], med["engine_all_no_t08"])
        figures["t08_cost_s"] = med["engine_all"] - med["engine_all_no_t08"] if None not in (med["engine_all"], med["engine_all_no_t08"]) else None
    if args.compare_modes:
        figures["reference_all"] = {
            "median_s": med["reference_all"],
            "verdicts": {k: v for k, v in last["reference"]["summary"].items() if k.isupper()},
            "differences_per_run": [len(d) for d in differences],
        }
    print("probe bench: %s, %d runs (median)" % (figures["target"], args.runs))
    print("  %-34s %9s %7s %9s" % ("", "wall", "cases", "cases/s"))
    table = [
        ("engine, all listeners", "engine_all"),
        ("engine, all listeners without T08", "engine_all_no_t08"),
        ("engine, port 25 only", "engine_mx"),
        ("nmap smtp-open-relay, 25", "nmap_mx"),
    ]
    for label, key in table:
        row = figures.get(key)
        if row is None:
            continue
        print("  %-34s %9s %7s %9s" % (label, benchlib.fmt(row["median_s"], 3, " s"), benchlib.fmt(row["cases"]), benchlib.fmt(row["probes_per_s"], 0)))
    if args.compare_modes:
        print("  %-34s %9s %7s" % ("reference mode (reuse: false), all", benchlib.fmt(med["reference_all"], 3, " s"), last["reference"]["summary"]["results"]))
    print(
        "  nmap / engine wall (port 25): %sx; cases/s engine / nmap: %sx; nmap said: %s"
        % (
            benchlib.fmt(figures["ratio_nmap_over_engine_mx"], 1),
            benchlib.fmt(figures["ratio_probes_per_s_engine_mx_over_nmap"], 0),
            figures["nmap_mx"]["verdict"],
        )
    )
    if "engine_all_no_t08" in figures:
        print(
            "  all / without T08: %s x (T08 costs %s)"
            % (benchlib.fmt(figures["ratio_engine_all_over_no_t08"], 1), benchlib.fmt(figures["t08_cost_s"], 3, " s"))
        )
    print("  load average (1 min) per run: %s" % " ".join(str(x) for x in loads))
    for key, label in (("quit_all", "all listeners"), ("quit_mx", "port 25")):
        quits = figures.get(key) or {}
        if quits.get("quits"):
            print(
                "  QUIT exchanges (%s, last run): %d, median %s, %d over 0.1 s, %s in all"
                % (
                    label,
                    quits["quits"],
                    benchlib.fmt(quits["quit_wait_median_s"], 3, " s"),
                    quits["quits_over_100ms"],
                    benchlib.fmt(quits["quit_wait_sum_s"], 2, " s"),
                )
            )
    print("  engine verdicts (all listeners, last run): %s" % figures["engine_all"]["verdicts"])
    print(
        "  slowest cases (all listeners, last run): %s"
        % ", ".join("%s%s/%d %.3f s" % (c["probe"], "/" + c["case"] if c["case"] else "", c["port"], c["duration"]) for c in figures["slowest_all"])
    )
    if args.compare_modes:
        print("  reference verdicts (last run):            %s" % figures["reference_all"]["verdicts"])
        for run, found in enumerate(differences):
            for key, fast, slow in found:
                print("  DIFFERENT run %d %s: fast %s / reference %s" % (run + 1, "/".join(map(str, key)), fast, slow))
        print("  verdict differences per run: %s" % figures["reference_all"]["differences_per_run"])
    benchlib.write_json(args.json, figures)
    return 1 if any(differences) else 0


if __name__ == "__main__":
    sys.exit(main())
