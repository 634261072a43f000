#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Record the state the lab was brought to before the lab figures (bench/run_all.sh).

Reads the log of ``ansible-playbook -i tests/lab/inventory playbooks/harden.yml`` and writes its
outcome (rc, wall time, PLAY RECAP per host, date, load) as JSON for bench/render_doc.py, so the
document says which figures were measured on hardened hosts.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)")


def parse_recap(text):
    """{host: {ok, changed, unreachable, failed, skipped}} from the PLAY RECAP of a playbook log."""
    recap = {}
    in_recap = False
    for line in text.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        match = RECAP.match(line) if in_recap else None
        if match:
            recap[match.group(1)] = dict(zip(("ok", "changed", "unreachable", "failed", "skipped"), (int(v) for v in match.groups()[1:])))
    return recap


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True)
    parser.add_argument("--rc", type=int, required=True)
    parser.add_argument("--start", type=float, required=True, help="epoch seconds when the playbook started")
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    with open(args.log, errors="replace") as handle:
        recap = parse_recap(handle.read())
    hardened = args.rc == 0 and bool(recap) and all(h["failed"] == 0 and h["unreachable"] == 0 for h in recap.values())
    state = {
        "state": "hardened" if hardened else "not hardened",
        "playbook": "playbooks/harden.yml",
        "inventory": "tests/lab/inventory",
        "rc": args.rc,
        "wall_s": round(time.time() - args.start, 1),
        "recap": recap,
        "machine": benchlib.machine_facts(),
    }
    benchlib.write_json(args.json, state)
    print(
        "lab: %s (harden.yml rc %d in %.1f s; changed %s)"
        % (state["state"], args.rc, state["wall_s"], ", ".join("%s=%d" % (host, r["changed"]) for host, r in sorted(recap.items())) or "no recap")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
