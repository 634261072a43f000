#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole zoo (tests/zoo) verified, wall time (target < 10 s), and nmap smtp-open-relay beside
it on the same MX endpoints; the ratio printed. Never gates anything.

Both run from the zoo prober's network namespace (nsenter; route guard in tests/zoo/run_verify.py).
nmap runs 4 listeners at a time (-n -Pn, the 16 relay tests per listener). The zoo is (re)started
first (Debian's sendmail allows a client 10 connections per 10 minutes: an earlier run would skew
this one) and stopped afterwards unless --keep-up.

Run (root): .venv/bin/python bench/zoo_bench.py [--runs 1] [--json out.json]
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "zoo"))
import benchlib  # noqa: E402
import zoolib  # noqa: E402

TARGET_S = 10.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs after the first meet sendmail's rate limit")
    parser.add_argument("--no-nmap", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--keep-up", action="store_true", help="leave the zoo running afterwards")
    args = parser.parse_args()
    zoolib.zoo("up")
    walls, engine, nmap_walls = [], [], []
    try:
        for _ in range(args.runs):
            outcome = zoolib.verify()
            walls.append(outcome["wall"])
            engine.append(outcome["summary"]["seconds"])
            if not args.no_nmap:
                verdicts, wall = zoolib.nmap_all(zoolib.nmap_listeners())
                nmap_walls.append(wall)
    finally:
        if not args.keep_up:
            zoolib.zoo("down")
    servers = len(zoolib.servers())
    listeners = sum(len(zoolib.truth(name)["listeners"]) * 2 for name in zoolib.server_names())
    med, med_engine, med_nmap = benchlib.median(walls), benchlib.median(engine), benchlib.median(nmap_walls)
    figures = {
        "servers": servers,
        "listener_addresses": listeners,
        "results": outcome["summary"]["results"],
        "verifier_wall_s": med,
        "engine_s": med_engine,
        "target_s": TARGET_S,
        "nmap_wall_s": med_nmap,
        "nmap_endpoints": len(zoolib.nmap_listeners()),
        "ratio_nmap_over_verifier": benchlib.ratio(med_nmap, med),
        "runs": args.runs,
        "verdicts": {k: v for k, v in outcome["summary"].items() if k.isupper()},
        "machine": benchlib.machine_facts(),
    }
    print("zoo bench: %d servers, %d listener addresses, %d results, %d run(s), median" % (servers, listeners, figures["results"], args.runs))
    print(
        "  verifier (whole zoo, one engine run): %s wall (engine %s), target < %.0f s: %s"
        % (benchlib.fmt(med, 2, " s"), benchlib.fmt(med_engine, 2, " s"), TARGET_S, "met" if med is not None and med < TARGET_S else "NOT met")
    )
    if med_nmap is not None:
        print("  nmap smtp-open-relay on the %d MX endpoints (4 at a time): %s wall" % (figures["nmap_endpoints"], benchlib.fmt(med_nmap, 2, " s")))
        print("  ratio nmap / verifier: %sx" % benchlib.fmt(figures["ratio_nmap_over_verifier"], 2))
    print("  verdicts: %s" % figures["verdicts"])
    # Where the wall time goes: each server's longest case (cases of one server run concurrently).
    longest = {}
    for result in outcome["results"]:
        best = longest.get(result["target"])
        if best is None or (result.get("duration") or 0) > (best.get("duration") or 0):
            longest[result["target"]] = result
    figures["longest_case_per_server"] = {
        name: {"probe": r["probe"], "case": r["case"], "port": r["port"], "duration": r.get("duration"), "verdict": r["verdict"]} for name, r in longest.items()
    }
    print(
        "  longest case per server: %s"
        % ", ".join(
            "%s %s%s/%d %.1f s" % (name, r["probe"], "/" + r["case"] if r["case"] else "", r["port"], r.get("duration") or 0)
            for name, r in sorted(longest.items(), key=lambda item: -(item[1].get("duration") or 0))
        )
    )
    benchlib.write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
