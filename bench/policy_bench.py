#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Policy validation time for large network lists (issue 12): prints the figure, never gates CI.

    .venv/bin/python bench/policy_bench.py [--relay 10000] [--never 10000] [--repeat 3] [--json out.json]

Builds a policy with N relay networks (distinct private /28s, IPv4 and IPv6 alternating) and M
never-relay entries (one host inside each relay network: the normal carve-out), and times
policy.build_policy (parse, normalize, broadness/public checks, merge, never-relay overlap check).
The goal is under 1 s for 10,000 + 10,000 (the pairwise overlap check it replaced needed ~15 s for
5,000 + 5,000). Pure CPU, no network.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

benchlib.import_paths()
from ansible_collections.mailsec.relay.plugins.module_utils import policy  # noqa: E402


def networks(count_relay, count_never):
    relay, never = [], []
    for index in range(count_relay):
        high, low = divmod(index, 256)
        if index % 2:
            relay.append("fd00:%x:%x::/64" % (high, low))
        else:
            relay.append("10.%d.%d.0/28" % (high, low))
    for index in range(count_never):
        high, low = divmod(index % max(count_relay, 1), 256)
        if (index % max(count_relay, 1)) % 2:
            never.append("fd00:%x:%x::5" % (high, low))
        else:
            never.append("10.%d.%d.5" % (high, low))
    return relay, never


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--relay", type=int, default=10000)
    parser.add_argument("--never", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    relay, never = networks(args.relay, args.never)
    variables = {"mailsec_relay_profile": "relay_hub", "mailsec_relay_networks": relay, "mailsec_relay_never_networks": never}
    walls = []
    for unused in range(max(args.repeat, 1)):
        start = time.perf_counter()
        effective = policy.build_policy(variables, "hub.example.test")
        walls.append(time.perf_counter() - start)
    median = statistics.median(walls)
    print(
        "policy validation: %d relay + %d never-relay networks -> %d + %d effective: median %.3f s over %d runs (min %.3f s, max %.3f s; goal < 1 s)"
        % (len(relay), len(never), len(effective["relay_networks"]), len(effective["never_relay_networks"]), median, len(walls), min(walls), max(walls))
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"relay": len(relay), "never": len(never), "walls": walls, "median": median, "load": os.getloadavg()}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
