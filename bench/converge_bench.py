#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Converge cost of the hardening roles: first run, no-op rerun, drift check; round trips per task.

Hosts are fresh containers of this bench, per Debian suite (bench-mx1-<suite> from the lab's Postfix
image of that suite, bench-exim1-<suite> from its Exim image; both suites in one run by default,
--suites to choose; --network none: converging needs no network, the images hold every package), with
the policy of the lab's mx1 (mx_submission, Dovecot SASL) and exim1. The lab's own hosts are left
alone: other engineers run the demo on them.

Per run: wall time, PLAY RECAP, tasks by status, and the podman calls the connection made (every
call is a round trip to the container: `exec` runs a command, `mount` places files). podman is
wrapped by bench/podman_logged.sh; per-task times come from bench/callback_plugins/bench_tasks.py.
Calibration on the same host: a play that only gathers facts, and one `ping` (one module call).

Run: .venv/bin/python bench/converge_bench.py [--repeat 3] [--mitogen] [--json out.json] [--keep]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
LAB_INVENTORY = os.path.join(benchlib.ROOT, "tests", "lab", "inventory")
SUITES = ("bookworm", "trixie")
HOST_TEMPLATES = (  # bench host prefix, image, lab host whose policy it takes, playbook group
    ("bench-mx1", "postfix", "mx1", "postfix"),
    ("bench-exim1", "exim", "exim1", "exim"),
)
NOOP_BUDGET_S = 3.0  # a no-op rerun of harden.yml may take at most this per host, on each suite
HOSTS = {}  # bench host: (image, lab host, playbook group, suite); filled by use_suites()


def use_suites(suites):
    HOSTS.clear()
    for suite in suites:
        for prefix, image, lab_host, group in HOST_TEMPLATES:
            HOSTS["%s-%s" % (prefix, suite)] = (image, lab_host, group, suite)


LABEL = "io.mailsec.bench=converge"
# Controller-side actions: they never open a connection to the host.
CONTROLLER_ACTIONS = {
    "set_fact",
    "debug",
    "assert",
    "fail",
    "meta",
    "include_tasks",
    "import_tasks",
    "include_role",
    "import_role",
    "include_vars",
    "set_stats",
    "add_host",
    "group_by",
    "pause",
    "validate_argument_spec",
    "mailsec.relay.relay_policy",
}


def sh(cmd, check=True, timeout=300):
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout)


def start_hosts():
    for name, (image, _, _, suite) in HOSTS.items():
        sh(["podman", "rm", "-f", "--ignore", name])
        sh(
            [
                "podman",
                "run",
                "-d",
                "--name",
                name,
                "--hostname",
                name + ".example.test",
                "--network",
                "none",
                "--label",
                LABEL,
                "localhost/mailsec-%s:%s" % (image, suite),
                "sleep",
                "infinity",
            ]
        )
        # as lab.sh does: the stock daemon runs before hardening
        start = "hostname > /etc/mailname && postfix start" if image == "postfix" else "hostname > /etc/mailname && update-exim4.conf && service exim4 start"
        sh(["podman", "exec", name, "sh", "-c", start + " >/dev/null 2>&1"])


def stop_hosts():
    for name in HOSTS:
        sh(["podman", "rm", "-f", "-t", "2", "--ignore", name], check=False)


def write_inventory(workdir, connection="containers.podman.podman"):
    import yaml

    inv = os.path.join(workdir, "inventory")
    os.makedirs(os.path.join(inv, "host_vars"), exist_ok=True)
    shutil.copytree(os.path.join(LAB_INVENTORY, "group_vars"), os.path.join(inv, "group_vars"), dirs_exist_ok=True)
    groups = collections.defaultdict(dict)
    for name, (_, lab_host, group, _) in HOSTS.items():
        shutil.copy(os.path.join(LAB_INVENTORY, "host_vars", lab_host + ".yml"), os.path.join(inv, "host_vars", name + ".yml"))
        groups[group][name] = None
    hosts = {
        "all": {
            "vars": {
                "ansible_connection": connection,
                "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_podman_executable": os.path.join(BENCH, "podman_logged.sh"),
            },
            "children": {"mta": {"children": {g: {"hosts": h} for g, h in groups.items()}}},
        }
    }
    with open(os.path.join(inv, "hosts.yml"), "w") as handle:
        yaml.safe_dump(hosts, handle)
    return inv


CALIBRATE = """\
- name: Facts only
  hosts: all
  gather_facts: true
  tasks: []
- name: One module call
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""


def run_playbook(playbook, inventory, limit, workdir, tag, extra_env=None, extra_args=()):
    tasks_log = os.path.join(workdir, tag + ".tasks.jsonl")
    podman_log = os.path.join(workdir, tag + ".podman.log")
    for path in (tasks_log, podman_log):
        if os.path.exists(path):
            os.unlink(path)
    env = benchlib.env_with_paths(
        {
            "ANSIBLE_CALLBACK_PLUGINS": os.path.join(BENCH, "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "bench_tasks",
            "BENCH_TASK_LOG": tasks_log,
            "BENCH_PODMAN_LOG": podman_log,
            "ANSIBLE_NOCOLOR": "1",
        }
    )
    env.update(extra_env or {})
    cmd = ["ansible-playbook", "-i", inventory, "--limit", limit, playbook] + list(extra_args)
    load = round(os.getloadavg()[0], 1)
    rc, out, err, wall, rss = benchlib.run_measured(cmd, env=env, timeout=1800)
    tasks = [json.loads(line) for line in open(tasks_log)] if os.path.exists(tasks_log) else []
    calls = []
    if os.path.exists(podman_log):
        for line in open(podman_log):
            start, end, verb = line.split()
            calls.append((float(start), float(end), verb))
    run = analyse(rc, out, err, wall, rss, tasks, calls)
    run["loadavg_1m"] = load
    run["host_recap"] = run["recap"].get(limit, {})
    return run


def analyse(rc, out, err, wall, rss, tasks, calls):
    recap = {}
    for match in re.finditer(
        r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+"
        r"skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)",
        out,
        re.M,
    ):
        recap[match.group(1)] = dict(zip(("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"), map(int, match.groups()[1:])))
    per_task = []
    for task in tasks:
        start, end = task["start"] or task["end"], task["end"]
        mine = [c for c in calls if c[0] >= start - 0.01 and c[1] <= end + 0.01]
        per_task.append(
            {
                "task": task["task"],
                "action": task["action"],
                "status": task["status"],
                "seconds": round(end - start, 2),
                "podman_calls": len(mine),
                "remote": bool(mine) or task["action"].split(".")[-1] not in {a.split(".")[-1] for a in CONTROLLER_ACTIONS},
            }
        )
    status = collections.Counter(t["status"] for t in tasks)
    ran = [t for t in per_task if t["status"] != "skipped"]
    return {
        "rc": rc,
        "wall": round(wall, 2),
        "peak_rss_mib": round(rss, 1),
        "recap": recap,
        "tasks": len(tasks),
        "by_status": dict(status),
        "remote_tasks": sum(1 for t in ran if t["podman_calls"]),
        "controller_tasks": sum(1 for t in ran if not t["podman_calls"]),
        "podman_calls": len(calls),
        "podman_seconds": round(sum(c[1] - c[0] for c in calls), 2),
        "podman_verbs": dict(collections.Counter(c[2] for c in calls)),
        "costliest": sorted(per_task, key=lambda t: -t["seconds"])[:8],
        "changed_tasks": [t["task"] for t in per_task if t["status"] == "changed"],
        "error": None if rc in (0, 2) and recap else (out + err)[-2500:],
    }


def median_run(runs):
    good = [r for r in runs if not r["error"]] or runs
    mid = sorted(good, key=lambda r: r["wall"])[len(good) // 2]
    summary = dict(mid)
    summary["walls"] = [r["wall"] for r in runs]
    summary["wall"] = benchlib.median([r["wall"] for r in good])
    return summary


def mitogen_env():
    """ANSIBLE_STRATEGY settings for mitogen, or (None, reason)."""
    try:
        import ansible_mitogen
    except ImportError:
        return None, "mitogen is not installed in the venv (pip install mitogen)"
    strategy = os.path.join(os.path.dirname(ansible_mitogen.__file__), "plugins", "strategy")
    return {"ANSIBLE_STRATEGY_PLUGINS": strategy, "ANSIBLE_STRATEGY": "mitogen_linear"}, None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="no-op reruns / drift runs per host")
    parser.add_argument("--mitogen", action="store_true", help="also converge with the mitogen strategy")
    parser.add_argument("--keep", action="store_true", help="leave the bench containers running")
    parser.add_argument("--suites", nargs="+", choices=SUITES, default=list(SUITES), help="Debian suites to measure")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    use_suites(args.suites)

    for image, suite in sorted({(image, suite) for image, _, _, suite in HOSTS.values()}):
        if sh(["podman", "image", "exists", "localhost/mailsec-%s:%s" % (image, suite)], check=False).returncode:
            raise SystemExit("image localhost/mailsec-%s:%s missing: run tests/lab/lab.sh images %s" % (image, suite, suite))
    report = {"machine": benchlib.machine_facts(), "config": vars(args), "hosts": {}, "calibration": {}}
    workdir = tempfile.mkdtemp(prefix="converge-bench-")
    harden = os.path.join(benchlib.ROOT, "playbooks", "harden.yml")
    drift = os.path.join(benchlib.ROOT, "playbooks", "drift.yml")
    calibrate = os.path.join(workdir, "calibrate.yml")
    with open(calibrate, "w") as handle:
        handle.write(CALIBRATE)
    try:
        start_hosts()
        inventory = write_inventory(workdir)
        for name, (image, lab_host, _, suite) in HOSTS.items():
            print("== %s (%s on %s, policy of %s)" % (name, image, suite, lab_host), flush=True)
            host = report["hosts"][name] = {}
            host["first"] = run_playbook(harden, inventory, name, workdir, name + "-first")
            print("  first run: %s" % brief(host["first"]), flush=True)
            reruns = []
            for index in range(args.repeat):
                reruns.append(run_playbook(harden, inventory, name, workdir, "%s-rerun%d" % (name, index)))
                print("  no-op rerun: %s" % brief(reruns[-1]), flush=True)
            host["rerun"] = median_run(reruns)
            if os.path.exists(drift):
                runs = []
                for index in range(args.repeat):
                    runs.append(run_playbook(drift, inventory, name, workdir, "%s-drift%d" % (name, index)))
                    print("  drift.yml: %s" % brief(runs[-1]), flush=True)
                host["drift"] = median_run(runs)
            else:
                host["drift"] = "playbooks/drift.yml does not exist yet"
        first = next(iter(HOSTS))
        runs = [run_playbook(calibrate, inventory, first, workdir, "calibrate%d" % i) for i in range(args.repeat)]
        calib = median_run(runs)
        facts = [t for t in calib["costliest"] if t["action"].endswith("gather_facts") or t["task"] == "Gathering Facts"]
        ping = [t for t in calib["costliest"] if t["action"].endswith("ping")]
        report["calibration"] = {
            "wall": calib["wall"],
            "gather_facts_s": facts[0]["seconds"] if facts else None,
            "gather_facts_podman_calls": facts[0]["podman_calls"] if facts else None,
            "module_call_s": ping[0]["seconds"] if ping else None,
            "module_call_podman_calls": ping[0]["podman_calls"] if ping else None,
            "podman_call_s": round(calib["podman_seconds"] / calib["podman_calls"], 3) if calib["podman_calls"] else None,
        }
        print("calibration: %s" % report["calibration"], flush=True)
        if args.mitogen:
            report["mitogen"] = run_mitogen(workdir, harden, args)
            try:
                from importlib.metadata import version

                report["mitogen_version"] = "mitogen " + version("mitogen")
            except Exception:  # noqa: BLE001 - not installed: run_mitogen said so
                pass
    finally:
        if not args.keep:
            stop_hosts()
        shutil.rmtree(workdir, ignore_errors=True)
    print_report(report)
    benchlib.write_json(args.json, report)
    return report


def run_mitogen(workdir, harden, args):
    env, reason = mitogen_env()
    if env is None:
        return {"status": reason}
    # mitogen accelerates the connection it knows by its short name ("podman"), not the FQCN.
    inventory = write_inventory(os.path.join(workdir, "mitogen"), connection="podman")
    result = {"status": "ran", "hosts": {}}
    stop_hosts()
    start_hosts()
    for name in HOSTS:
        first = run_playbook(harden, inventory, name, workdir, name + "-mitogen-first", extra_env=env)
        print("  mitogen %s first run: %s" % (name, brief(first)), flush=True)
        if first["error"]:
            result["status"] = "failed"
            result["error"] = first["error"][-1500:]
            return result
        reruns = [run_playbook(harden, inventory, name, workdir, "%s-mitogen-rerun%d" % (name, i), extra_env=env) for i in range(args.repeat)]
        for run in reruns:
            print("  mitogen %s no-op rerun: %s" % (name, brief(run)), flush=True)
        result["hosts"][name] = {"first": first, "rerun": median_run(reruns)}
    return result


def brief(run):
    if run["error"]:
        return "rc=%s ERROR %s" % (run["rc"], run["error"].strip().splitlines()[-1][:300] if run["error"].strip() else "")
    recap = run["host_recap"]
    return "load %.1f: %.1f s, %d tasks (%s), changed=%s %s, %d podman calls (%.1f s), controller RSS %.0f MiB" % (
        run["loadavg_1m"],
        run["wall"],
        run["tasks"],
        ", ".join("%s %d" % kv for kv in sorted(run["by_status"].items())),
        recap.get("changed"),
        run["changed_tasks"],
        run["podman_calls"],
        run["podman_seconds"],
        run["peak_rss_mib"],
    )


def print_report(report):
    f = benchlib.fmt
    print("\nConverge bench (median of %d reruns)" % report["config"]["repeat"])
    print("%-12s %-7s %8s %6s %8s %8s %8s %8s" % ("host", "run", "wall s", "tasks", "changed", "remote", "podman", "podman s"))
    for name, host in report["hosts"].items():
        for kind in ("first", "rerun", "drift"):
            run = host.get(kind)
            if not isinstance(run, dict):
                print("%-12s %-7s %s" % (name, kind, run))
                continue
            recap = run["host_recap"]
            print(
                "%-12s %-7s %8s %6d %8s %8d %8d %8s"
                % (name, kind, f(run["wall"], 1), run["tasks"], recap.get("changed"), run["remote_tasks"], run["podman_calls"], f(run["podman_seconds"], 1))
            )
        rerun = host.get("rerun")
        if isinstance(rerun, dict):
            print("  costliest tasks of the no-op rerun:")
            for task in rerun["costliest"][:6]:
                print("    %5.2f s  %2d podman  %-8s %s (%s)" % (task["seconds"], task["podman_calls"], task["status"], task["task"], task["action"]))
    calib = report.get("calibration") or {}
    if calib:
        print(
            "calibration here: gather_facts %s s (%s podman calls), one module call %s s (%s podman calls), "
            "one podman call %s s; issue's peers: 2 s, 0.85 s"
            % (
                f(calib.get("gather_facts_s")),
                calib.get("gather_facts_podman_calls"),
                f(calib.get("module_call_s")),
                calib.get("module_call_podman_calls"),
                f(calib.get("podman_call_s"), 3),
            )
        )
        for name, host in report["hosts"].items():
            rerun = host.get("rerun")
            if isinstance(rerun, dict) and calib.get("module_call_s"):
                print(
                    "%s no-op rerun = %s module-call equivalents; %s of its wall time is podman round trips"
                    % (name, f(benchlib.ratio(rerun["wall"], calib["module_call_s"]), 1), f(benchlib.ratio(rerun["podman_seconds"], rerun["wall"])))
                )
    print("no-op rerun of harden.yml, budget %.0f s per host on each suite:" % NOOP_BUDGET_S)
    for name, host in report["hosts"].items():
        rerun = host.get("rerun")
        if isinstance(rerun, dict):
            changed = rerun["host_recap"].get("changed")
            ok = not rerun["error"] and changed == 0 and rerun["wall"] <= NOOP_BUDGET_S
            print(
                "  %-22s %-8s wall %s s (runs %s), changed=%s: %s"
                % (name, HOSTS[name][3], f(rerun["wall"], 2), rerun["walls"], changed, "OK" if ok else "OVER BUDGET OR CHANGED")
            )
    if "mitogen" in report:
        mit = report["mitogen"]
        print("mitogen: %s" % mit.get("status"))
        for name, host in (mit.get("hosts") or {}).items():
            plain = report["hosts"][name]["rerun"]["wall"]
            print(
                "  %s no-op rerun %s s with mitogen vs %s s without (ratio %s)"
                % (name, f(host["rerun"]["wall"], 1), f(plain, 1), f(benchlib.ratio(host["rerun"]["wall"], plain)))
            )
        if mit.get("error"):
            print("  error: %s" % mit["error"][-600:])


if __name__ == "__main__":
    main()
