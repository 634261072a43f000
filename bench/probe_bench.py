#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The full probe matrix against one host, side by side with nmap's smtp-open-relay script.

Per run: the engine's whole matrix on the host's listeners (25, 587, 465), the engine's matrix on
port 25 alone, and ``nmap -n -p 25 --script smtp-open-relay <addr>`` (Debian nmap, 16 relay tests,
RCPT only; -n keeps nmap from asking DNS about the address). Median wall time of --runs runs,
probes per second, cases covered, and the ratio nmap / engine on port 25.

Targets: a hardened fake host (tests/unit/smtp/fakesmtp.py) on 127.25.0.1 ports 25/587/465 in a
separate process (default), or a lab host (``--target 198.51.100.11``, run on the lab's prober or a
host on the lab network). Talks to nothing else; never gates CI.

Run: .venv/bin/python bench/probe_bench.py [--runs 5] [--target ADDR] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
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


def allowed_target(address):
    ip = ipaddress.ip_address(address)
    lab = [ipaddress.ip_network(n) for n in ("198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]
    return ip.is_loopback or any(ip in net for net in lab)


def start_fake(spool):
    cmd = [sys.executable, os.path.join(benchlib.FAKESMTP_DIR, "fakesmtp.py"), "--full", "--listen", FAKE_ADDRESS,
           "--ports", "25,587,465", "--spool", spool]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=benchlib.env_with_paths(), text=True)
    line = proc.stdout.readline()
    if not line:
        proc.wait(5)
        raise SystemExit("fake SMTP host did not start (is %s port 25 free?)" % FAKE_ADDRESS)
    return proc, json.loads(line)["targets"][0]


def lab_target(args):
    return {"name": args.target, "addresses": [args.target], "hostname": args.hostname or args.target,
            "local_domains": args.local_domain or [],
            "listeners": [{"port": 25, "role": "mx", "tls": "starttls"},
                          {"port": 587, "role": "submission", "tls": "required"},
                          {"port": 465, "role": "submission", "tls": "implicit"}]}


def run_engine(engine, target, params):
    started = time.monotonic()
    outcome = asyncio.run(engine.run_async(dict(params, targets=[target])))
    return time.monotonic() - started, outcome


def run_nmap(address, port):
    cmd = [NMAP, "-n", "-p", str(port), "--script", "smtp-open-relay", address]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - started
    verdict = "?"
    for pattern in (r"Server is an open relay \((\d+)/16 tests\)", r"(Server doesn't seem to be an open relay.*)",
                    r"(Server isn't an open relay.*)", r"(Couldn't .*)"):
        match = re.search(pattern, proc.stdout)
        if match:
            verdict = match.group(0).strip()
            break
    return wall, verdict, proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--target", help="lab host address (default: a fake host on %s)" % FAKE_ADDRESS)
    parser.add_argument("--hostname")
    parser.add_argument("--local-domain", action="append")
    parser.add_argument("--source-address", help="vantage address to bind (lab runs)")
    parser.add_argument("--canary-spool", help="canary sink spool on this machine (lab runs)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    benchlib.import_paths()
    from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine

    workdir = tempfile.mkdtemp(prefix="probe-bench-")
    fake = None
    if args.target:
        if not allowed_target(args.target):
            raise SystemExit("--target must be loopback or a lab documentation address")
        target = lab_target(args)
        spool = args.canary_spool
    else:
        spool = os.path.join(workdir, "spool")
        os.makedirs(spool)
        fake, target = start_fake(spool)
    params = {"timeout": 5, "retry_delay": 1, "vantage": "bench"}
    if args.source_address:
        params["source_address"] = [args.source_address]
    if spool:
        params["canary"] = {"domain": "canary.test", "spool": spool, "wait": 10}
    address = target["addresses"][0]
    mx_target = dict(target, listeners=[item for item in target["listeners"] if item["port"] == 25 or
                                        (fake is not None and item is target["listeners"][0])])
    nmap_port = mx_target["listeners"][0]["port"]
    rows = {"engine_all": [], "engine_mx": [], "nmap_mx": []}
    last = {}
    try:
        for _ in range(args.runs):
            wall, outcome = run_engine(engine, target, params)
            rows["engine_all"].append(wall)
            last["all"] = outcome
            wall, outcome = run_engine(engine, mx_target, params)
            rows["engine_mx"].append(wall)
            last["mx"] = outcome
            if os.path.exists(NMAP):
                wall, verdict, _ = run_nmap(address, nmap_port)
                rows["nmap_mx"].append(wall)
                last["nmap"] = verdict
    finally:
        if fake is not None:
            fake.terminate()
            fake.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)

    med = {key: benchlib.median(values) for key, values in rows.items()}
    cases_all = last["all"]["summary"]["results"]
    cases_mx = last["mx"]["summary"]["results"]
    figures = {
        "target": "fake host %s (25/587/465)" % FAKE_ADDRESS if fake else args.target,
        "runs": args.runs,
        "engine_all": {"median_s": med["engine_all"], "cases": cases_all,
                       "probes_per_s": benchlib.ratio(cases_all, med["engine_all"]),
                       "verdicts": {k: v for k, v in last["all"]["summary"].items() if k.isupper()}},
        "engine_mx": {"median_s": med["engine_mx"], "cases": cases_mx,
                      "probes_per_s": benchlib.ratio(cases_mx, med["engine_mx"])},
        "nmap_mx": {"median_s": med["nmap_mx"], "cases": 16, "probes_per_s": benchlib.ratio(16, med["nmap_mx"]),
                    "verdict": last.get("nmap"), "version": benchlib.tool_version([NMAP, "--version"])},
        "ratio_nmap_over_engine_mx": benchlib.ratio(med["nmap_mx"], med["engine_mx"]),
        "machine": benchlib.machine_facts(),
    }
    print("probe bench: %s, %d runs (median)" % (figures["target"], args.runs))
    print("  %-28s %9s %7s %9s" % ("", "wall", "cases", "cases/s"))
    for label, key in (("engine, 3 listeners", "engine_all"), ("engine, port 25 only", "engine_mx"),
                       ("nmap smtp-open-relay, 25", "nmap_mx")):
        row = figures[key]
        print("  %-28s %9s %7s %9s" % (label, benchlib.fmt(row["median_s"], 3, " s"), row["cases"],
                                       benchlib.fmt(row["probes_per_s"], 0)))
    print("  nmap / engine (port 25): %s x;  nmap said: %s" % (benchlib.fmt(figures["ratio_nmap_over_engine_mx"], 1),
                                                             figures["nmap_mx"]["verdict"]))
    print("  engine verdicts (3 listeners, last run): %s" % figures["engine_all"]["verdicts"])
    if args.json:
        benchlib.write_json(args.json, figures)


if __name__ == "__main__":
    main()
