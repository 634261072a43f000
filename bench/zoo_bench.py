#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole zoo (tests/zoo) verified by the verify playbook (target: under 10 s wall), with the
engine's own time and nmap smtp-open-relay beside it, all from ONE run; never gates anything.

What a user runs: ``ansible-playbook playbooks/verify.yml`` over an inventory of the zoo servers in
verify-only mode (``verify_listeners`` and friends from each server's truth file: what an admin
would state), from the prober (``localhost``, connection local), one vantage, the canary sink of
zoo-prober, reports written. ``verify_fail_on: []`` and ``verify_unverified: warn`` (a survey: the zoo's
servers have findings by design; the gate would only add a failed task per host). ansible-playbook itself runs inside
zoo-prober's network namespace (nsenter -n; every zoo address passes the route guard of
bench/benchlib.py first). Per task times come from bench/callback_plugins/bench_tasks.py.

Printed (and written with --json): playbook wall, the engine's seconds (relay_probe's summary, as
the role prints it), the controller's share (wall - engine) split into ansible-playbook's start and
each task's time beyond the engine, nmap's wall on the same MX endpoints, and the ratios. nmap runs
4 listeners at a time (-n -Pn, the 16 relay tests per listener). ``--direct`` also times the engine
alone (tests/zoo/run_verify.py), as test_zoo.py runs it.

The zoo lock (/run/lock/mailsec-zoo.lock, as zoo.sh takes it) is held for the whole bench. A zoo
that is not running is started (and stopped afterwards unless --keep-up); one that runs already
is used as it is and left running (it is not this bench's to stop). Debian's sendmail allows a
client 10 connections per 10 minutes: runs after the first within 10 minutes meet that limit
(--runs > 1 says so beside the figures).

Run (root): .venv/bin/python bench/zoo_bench.py [--runs 1] [--direct] [--no-nmap] [--json out.json]
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "zoo"))
import benchlib  # noqa: E402
import zoolib  # noqa: E402

TARGET_S = 10.0
LOCK_FILE = "/run/lock/mailsec-zoo.lock"
ZOO_NETS = ("198.51.100.128/25", "2001:db8:27::/64")
RUN_LINE = re.compile(r"(\S+): (\d+) targets, (\d+) results in ([0-9.]+) s")


def inventory(names_octets):
    """Verify-only inventory of the zoo servers from their truth files, and the prober (localhost)."""
    hosts = {}
    for name, _image, octet in names_octets:
        spec = zoolib.truth(name)
        target = zoolib.target(name, octet, spec)
        host = {
            "ansible_connection": "local",  # never used: the role speaks only SMTP to these hosts
            "verify_addresses": target["addresses"],
            "verify_hostname": target["hostname"],
            "verify_local_domains": target["local_domains"],
            "verify_relay_domains": target["relay_domains"],
            "verify_listeners": [dict(item) for item in spec["listeners"]],
        }
        if target.get("test_mailbox"):
            host["verify_test_mailbox"] = target["test_mailbox"]
        if target.get("auth"):
            host["verify_auth"] = target["auth"]
        hosts[name] = host
    prober = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    return {"all": {"children": {"zoo": {"hosts": hosts}, "probers": {"hosts": {"localhost": prober}}}}}


def check_routes(addresses):
    """Inside the prober's namespace: every address reached from the zoo network, never a gateway."""
    import ipaddress

    nets = [ipaddress.ip_network(n) for n in ZOO_NETS]
    for address in addresses:
        source = ipaddress.ip_address(benchlib.check_route(address, hint="run inside zoo-prober's network namespace"))
        if not any(source in net for net in nets if net.version == source.version):
            raise SystemExit("%s would be reached from %s, not from the zoo network: refused" % (address, source))


def task_times(path, process_start):
    """bench_tasks lines -> [(task, action, seconds)] in order, and the first task's start offset."""
    rows, first = [], None
    if not os.path.exists(path):
        return rows, None
    with open(path) as handle:
        for line in handle:
            item = json.loads(line)
            if item.get("start") is None:
                continue
            first = item["start"] if first is None else min(first, item["start"])
            rows.append((item["task"], item["action"], item["end"] - item["start"], item["status"], item["host"]))
    # one line per task: a per-host task (the gate) counts once, with its longest host
    merged = {}
    for task, action, seconds, status, _host in rows:
        entry = merged.setdefault(task, {"task": task, "action": action, "seconds": 0.0, "hosts": 0, "statuses": set()})
        entry["seconds"] = max(entry["seconds"], seconds)
        entry["hosts"] += 1
        entry["statuses"].add(status)
    for entry in merged.values():
        entry["statuses"] = sorted(entry["statuses"])
    return list(merged.values()), (first - process_start if first is not None else None)


def playbook_run(chosen, workdir, pid, canary_wait):
    """One ansible-playbook verify.yml over the zoo, in the prober's namespace: figures dict."""
    inv = os.path.join(workdir, "inventory.json")
    with open(inv, "w") as handle:
        json.dump(inventory(chosen), handle)
    reports = os.path.join(workdir, "reports")
    shutil.rmtree(reports, ignore_errors=True)
    extra = {
        "verify_group": "zoo",
        "verify_vantages": [{"name": "zoo"}],
        "verify_canary": {"domain": zoolib.CANARY_DOMAIN, "spool": zoolib.canary_spool(), "wait": canary_wait},
        "verify_fail_on": [],
        "verify_unverified": "warn",  # sendmail's rate limit can leave a listener unverified
        "verify_report_dir": reports,
        "verify_report_name": "zoo",
    }
    extra_path = os.path.join(workdir, "extra.json")
    with open(extra_path, "w") as handle:
        json.dump(extra, handle)
    tasks_log = os.path.join(workdir, "tasks.jsonl")
    if os.path.exists(tasks_log):
        os.unlink(tasks_log)
    env = benchlib.env_with_paths(
        {
            "ANSIBLE_CALLBACK_PLUGINS": os.path.join(HERE, "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "bench_tasks",
            "BENCH_TASK_LOG": tasks_log,
        }
    )
    playbook = os.path.join(ROOT, "playbooks", "verify.yml")
    cmd = ["nsenter", "-t", pid, "-n", "ansible-playbook", "-i", inv, "-e", "@" + extra_path, playbook]
    load = round(os.getloadavg()[0], 2)
    started_at = time.time()
    tree = {}
    rc, out, err, wall, rss = benchlib.run_measured(cmd, env=env, timeout=600, tree=tree)
    if rc != 0:
        raise RuntimeError("verify.yml failed (rc %d):\n%s\n%s" % (rc, out[-4000:], err[-2000:]))
    engine = [float(m.group(4)) for m in RUN_LINE.finditer(out)]
    results = [int(m.group(3)) for m in RUN_LINE.finditer(out)]
    tasks, start_offset = task_times(tasks_log, started_at)
    with open(os.path.join(reports, "zoo.json")) as handle:
        report = json.load(handle)
    totals = report.get("totals") or {}
    rows = [dict(row, target=row.get("host")) for row in report.get("findings") or [] if row.get("source", "probe") == "probe"]
    return {
        "truth_mismatches": zoolib.truth_mismatches({"results": rows}),
        "wall": wall,
        "engine_s": max(engine) if engine else None,
        "results": sum(results) if results else None,
        "loadavg_1m": load,
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
        "peak_rss_mib": rss,
        **tree,
        "start_to_first_task_s": start_offset,
        "tasks": tasks,
        "verdicts": {k: totals.get(k) for k in ("PASS", "FAIL", "WARN", "INCONCLUSIVE", "SKIP")},
        # which checks could not decide, per server and probe: the count moves with load and timing
        "inconclusive": _inconclusive(report.get("findings") or []),
        "findings": totals.get("findings"),
        "report_files": sorted(os.listdir(reports)),
    }


def _inconclusive(rows):
    """``{"host probe": count}`` of the INCONCLUSIVE rows of a report."""
    counts = {}
    for row in rows:
        if row.get("verdict") == "INCONCLUSIVE":
            key = "%s %s" % (row.get("host"), row.get("probe") or row.get("check"))
            counts[key] = counts.get(key, 0) + int(row.get("count") or 1)
    return dict(sorted(counts.items()))


def describe_mismatches(wrong):
    """The playbook's findings per server against tests/zoo/*/truth.yml, in one line."""
    if not wrong:
        return "every server exactly its truth"
    return "MISMATCH " + "; ".join("%s expected %s, got %s" % (name, exp or "none", seen or "none") for name, (exp, seen) in sorted(wrong.items()))


def overhead(run):
    """Where the playbook's wall time goes beyond the engine's own seconds."""
    parts = [("ansible-playbook start to the first task", run["start_to_first_task_s"] or 0.0)]
    accounted = parts[0][1]
    for task in run["tasks"]:
        seconds = task["seconds"]
        if task["action"] == "mailsec.relay.relay_probe" and run["engine_s"] is not None:
            parts.append(("relay_probe beyond the engine (arguments, start, results back)", max(0.0, seconds - run["engine_s"])))
        else:
            parts.append(("%s (%s)" % (task["task"], task["action"]), seconds))
        accounted += seconds
    parts.append(("between tasks and after the last (strategy, callbacks, exit)", max(0.0, run["wall"] - accounted)))
    return parts


def lock():
    """Hold the zoo lock for the whole bench (zoo.sh sees MAILSEC_ZOO_LOCKED and does not wait for it)."""
    if os.environ.get("MAILSEC_ZOO_LOCKED"):
        return
    os.environ["MAILSEC_ZOO_LOCKED"] = "1"
    print("zoo bench: waiting for the zoo lock %s" % LOCK_FILE, flush=True)
    os.execvp("flock", ["flock", "-w", "900", "-E", "75", LOCK_FILE, sys.executable, os.path.abspath(__file__)] + sys.argv[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs after the first within 10 minutes meet sendmail's rate limit")
    parser.add_argument("--no-nmap", action="store_true")
    parser.add_argument("--direct", action="store_true", help="also time the engine alone (tests/zoo/run_verify.py)")
    parser.add_argument(
        "--canary-wait",
        type=float,
        default=zoolib.CANARY_WAIT,
        help="seconds a probe waits for its message at the canary (verify_canary.wait; default: the zoo's setting, "
        "tests/zoo/zoolib.py CANARY_WAIT, the wait test_zoo.py checks the ground truth with); a message that never comes "
        "(the accept-then-drop server) is only judged after the whole wait, so the engine cannot end before it",
    )
    parser.add_argument("--json")
    parser.add_argument("--keep-up", action="store_true", help="leave a zoo this bench started running afterwards")
    args = parser.parse_args()
    lock()
    started_here = not zoolib.zoo_is_up()
    if started_here:
        zoolib.zoo("up")
    print("zoo: %s" % ("started by this bench" if started_here else "already running: used as it is and left running"), flush=True)
    chosen = zoolib.servers()
    workdir = tempfile.mkdtemp(prefix="zoo-bench-")
    runs, direct, nmap_walls = [], [], []
    try:
        pid = zoolib.prober_pid()
        addresses = [a for name, _image, octet in chosen for a in zoolib.target(name, octet)["addresses"]]
        routes = zoolib.in_netns([sys.executable, os.path.abspath(__file__), "_routes"] + addresses, 60)
        if routes.returncode != 0:
            raise SystemExit("route guard: %s" % (routes.stderr or routes.stdout).strip())
        for index in range(args.runs):
            run = playbook_run(chosen, workdir, pid, args.canary_wait)
            runs.append(run)
            print(
                "  run %d (load %.2f): playbook %.2f s, engine %s s, %s results, ground truth: %s"
                % (
                    index + 1,
                    run["loadavg_1m"],
                    run["wall"],
                    benchlib.fmt(run["engine_s"]),
                    run["results"],
                    describe_mismatches(run["truth_mismatches"]),
                ),
                flush=True,
            )
            if args.direct:
                outcome = zoolib.verify()
                direct.append({"wall": outcome["wall"], "engine_s": outcome["summary"]["seconds"]})
            if not args.no_nmap:
                _verdicts, wall = zoolib.nmap_all(zoolib.nmap_listeners())
                nmap_walls.append(wall)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if started_here and not args.keep_up:
            zoolib.zoo("down")
    last = runs[-1]
    wall = benchlib.median([r["wall"] for r in runs])
    engine = benchlib.median([r["engine_s"] for r in runs])
    nmap_wall = benchlib.median(nmap_walls)
    listeners = sum(len(zoolib.truth(name)["listeners"]) * 2 for name in zoolib.server_names())
    figures = {
        "servers": len(chosen),
        "listener_addresses": listeners,
        "results": last["results"],
        "runs": args.runs,
        "playbook_wall_s": wall,
        "playbook_walls": [round(r["wall"], 2) for r in runs],
        "engine_s": engine,
        "controller_s": wall - engine if wall is not None and engine is not None else None,
        "ratio_playbook_over_engine": benchlib.ratio(wall, engine),
        "target_s": TARGET_S,
        # a wall under the target counts only when every server got exactly its ground truth
        "target_met": wall is not None and wall < TARGET_S and not any(r["truth_mismatches"] for r in runs),
        "truth_mismatches": [r["truth_mismatches"] for r in runs],
        "nmap_wall_s": nmap_wall,
        "nmap_endpoints": len(zoolib.nmap_listeners()),
        "ratio_nmap_over_playbook": benchlib.ratio(nmap_wall, wall),
        "ratio_nmap_over_engine": benchlib.ratio(nmap_wall, engine),
        "canary_wait_s": args.canary_wait,
        "loadavg_1m": [r["loadavg_1m"] for r in runs],
        "loadavg_1m_end": [r["loadavg_1m_end"] for r in runs],
        "tree_rss_mib": last.get("tree_rss_mib"),
        # CPU of ansible-playbook and everything it reaped (controller, module, engine processes)
        "tree_cpu_s": [round(r["tree_cpu_s"], 2) if r.get("tree_cpu_s") is not None else None for r in runs],
        "overhead": [(name, round(seconds, 2)) for name, seconds in overhead(last)],
        "verdicts": last["verdicts"],
        "inconclusive": last["inconclusive"],
        "findings": last["findings"],
        "report_files": last["report_files"],
        "direct": direct or None,
        "zoo_started_here": started_here,
        "machine": benchlib.machine_facts(),
    }
    f = benchlib.fmt
    print("\nzoo bench: %d servers, %d listener addresses, %s checks, %d run(s), median" % (len(chosen), listeners, last["results"], args.runs))
    print(
        "  PLAYBOOK wall (playbooks/verify.yml, verify-only inventory, one vantage, canary wait %s s, reports): %s at load %s (end %s), "
        "target < %.0f s, truth kept: %s"
        % (f(args.canary_wait), f(wall, 2, " s"), figures["loadavg_1m"], figures["loadavg_1m_end"], TARGET_S, "met" if figures["target_met"] else "NOT met")
    )
    print(
        "  ENGINE wall (relay_probe's own seconds in that run): %s; controller %s; playbook / engine %sx"
        % (f(engine, 2, " s"), f(figures["controller_s"], 2, " s"), f(figures["ratio_playbook_over_engine"], 2))
    )
    print("  CPU of ansible-playbook's whole tree (controller, relay_probe, engine): %s s per run" % figures["tree_cpu_s"])
    for name, seconds in figures["overhead"]:
        print("    %6.2f s  %s" % (seconds, name))
    if direct:
        print(
            "  engine alone (run_verify.py): %s wall, engine %s"
            % (f(benchlib.median([d["wall"] for d in direct]), 2, " s"), f(benchlib.median([d["engine_s"] for d in direct]), 2, " s"))
        )
    if nmap_wall is not None:
        print("  nmap smtp-open-relay on the %d MX endpoints (4 at a time): %s wall" % (figures["nmap_endpoints"], f(nmap_wall, 2, " s")))
        print("  ratio nmap / verify playbook: %sx; nmap / engine: %sx" % (f(figures["ratio_nmap_over_playbook"], 2), f(figures["ratio_nmap_over_engine"], 2)))
    print("  verdicts: %s; findings: %s; reports: %s" % (figures["verdicts"], figures["findings"], ", ".join(figures["report_files"])))
    print("  INCONCLUSIVE per server and probe: %s" % ", ".join("%s %d" % item for item in figures["inconclusive"].items()))
    benchlib.write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_routes":
        check_routes(sys.argv[2:])
        sys.exit(0)
    sys.exit(main())
