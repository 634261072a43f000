#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify a fleet of N emulated SMTP endpoints on loopback with ONE probe-engine run.

Each endpoint is a hardened MTA on its own 127.77.x.y address: port 25 (mx, STARTTLS, foreign
RCPT 554 5.7.1, local domain accepted), 587 (STARTTLS required, AUTH only after TLS) and 465
(implicit TLS), self-signed ECDSA P-256 cert (smtp_fakes/hardened_host.make_cert; certbot's default key
type; an RSA-2048 key would cost each full handshake a much dearer signature). --endpoint lean (default) emulates it with bench/lean_smtp.py
(one asyncio.Protocol per connection; replies as smtp_fakes/fakesmtp.FakeHost's defaults, from the
same smtp_fakes/hardened_host.py, checked case by case by tests/unit/smtp/test_lean_smtp.py); --endpoint fake uses FakeHost itself.
One or two server processes hold all endpoints; every measured probe run is a fresh process,
so its ru_maxrss is that run's peak.

Paths measured for N in --sizes (median of --repeat runs each; at each N the paths alternate run
by run, so that the shared machine's load weighs on both alike):
  engine    plugins/module_utils/smtp engine.run in a fresh Python process
  module    ansible-playbook, one mailsec.relay.relay_probe task on localhost (the playbook's overhead: on
            this local connection relay_probe's action plugin runs the engine in ansible-playbook's
            worker, as for the verify role's default prober; a remote prober would run the module)
  lab       (--with-lab) the real lab MTAs, probed from the lab's prober container (a separate run)

--mixed-lab puts the real lab MTAs (mx1, hub1, legacy1 Postfix, exim1 Exim: listeners and
expectations from the lab inventory's policy, as from the prober's external address) into the SAME
engine and module runs as the N emulated endpoints. The whole bench (endpoint servers, engine,
ansible-playbook) then re-executes itself inside the prober container's network namespace
(nsenter -n, as bench/probe_bench.py --netns): its loopback holds the 127.77.x.y endpoints, the lab
hosts are on-link, and every probe binds the vantage 198.51.100.100. A lab address this namespace
would reach through a gateway is refused. Verdicts are counted apart for real and emulated targets.

Run: .venv/bin/python bench/fleet_bench.py [--sizes 10,100,1000] [--repeat 3] [--mixed-lab] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

ADDRESS_BASE = "127.77"  # 127/8 is all routed to lo on Linux: no setup needed
LAB_PROBER = "prober"
LAB_SOURCE = "198.51.100.100"  # the prober's "external" vantage (outside every relay network)
IN_NETNS = "MAILSEC_FLEET_BENCH_NETNS"
MIXED_PORTS = "2525,587,465"
VERDICTS = ("PASS", "FAIL", "WARN", "INCONCLUSIVE", "SKIP")


def endpoint_address(index):
    return "%s.%d.%d" % (ADDRESS_BASE, index // 250, index % 250 + 1)


# -- server process ----------------------------------------------------------------------------
async def serve(args):
    benchlib.raise_nofile()
    benchlib.import_paths()
    from smtp_fakes.fakesmtp import FakeHost, make_cert, server_context
    from smtp_fakes.lean_smtp import LeanHost

    certdir = os.path.join(args.certdir, "cert-%d" % args.index)  # one per process: no write race
    os.makedirs(certdir, exist_ok=True)
    certfile, keyfile = make_cert(certdir, "fleet.example.test")
    context = server_context(certfile, keyfile)
    ports = [int(p) for p in args.ports.split(",")]
    hosts, targets = [], []
    for index in range(args.index, args.count, args.of):
        address = endpoint_address(index)
        name = "ep%04d" % index
        hostname = "%s.example.test" % name
        same = {"hostname": hostname}
        fake = FakeHost(context, mx=same, submission=same, submissions=same)
        # lean: same replies and real TLS, less CPU per connection (smtp_fakes/lean_smtp.py)
        host = fake if args.endpoint == "fake" else LeanHost(context, hostname)
        for server, port in zip(host.servers, ports):
            await server.start(address, port)
        for twin, server in zip(fake.servers, host.servers):
            twin.port = server.port
        target = fake.target()  # the listeners and expectations of the host
        target.update(name=name, addresses=[address], hostname=hostname)
        hosts.append(host)
        targets.append((index, target))
    with open(args.targets_out, "w") as handle:
        json.dump(targets, handle)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("READY %d" % len(hosts), flush=True)
    while True:
        line = await reader.readline()
        if not line:
            break
        if line.strip() == b"stats":
            connections = sum(s.connections for h in hosts for s in h.servers)
            handshakes = sum(getattr(s, "tls_handshakes", 0) for h in hosts for s in h.servers)
            resumed = sum(getattr(s, "tls_resumed", 0) for h in hosts for s in h.servers)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            print(
                json.dumps(
                    {
                        "connections": connections,
                        "cpu": usage.ru_utime + usage.ru_stime,
                        "user": usage.ru_utime,
                        "sys": usage.ru_stime,
                        "tls_handshakes": handshakes,
                        "tls_resumed": resumed,
                    }
                ),
                flush=True,
            )
    for host in hosts:
        await host.stop()


class ServerPool:
    """The endpoint processes: endpoint i lives in process i % count (small N still spreads)."""

    def __init__(self, size, processes, ports, workdir, endpoint="lean"):
        self.procs = []
        self.targets = {}
        for index in range(processes):
            out = os.path.join(workdir, "targets-%d.json" % index)
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                "_serve",
                "--index",
                str(index),
                "--of",
                str(processes),
                "--count",
                str(size),
                "--ports",
                ports,
                "--certdir",
                workdir,
                "--targets-out",
                out,
                "--endpoint",
                endpoint,
            ]
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=benchlib.env_with_paths())
            self.procs.append((proc, out))
        for proc, out in self.procs:
            line = proc.stdout.readline()
            if not line.startswith("READY"):
                self.stop()
                raise SystemExit("endpoint server failed to start (ports %s need root or free ports)" % ports)
            for index, target in json.load(open(out)):
                self.targets[index] = target

    def first(self, count):
        return [self.targets[i] for i in range(count)]

    def stats(self):
        """Cumulative (connections accepted, CPU seconds, TLS handshakes, of which resumed) over all
        endpoint processes."""
        connections, cpu, handshakes, resumed = 0, 0.0, 0, 0
        for proc, _ in self.procs:
            proc.stdin.write("stats\n")
            proc.stdin.flush()
            reply = json.loads(proc.stdout.readline())
            connections += reply["connections"]
            cpu += reply["cpu"]
            handshakes += reply.get("tls_handshakes") or 0
            resumed += reply.get("tls_resumed") or 0
        return connections, cpu, handshakes, resumed

    def measure(self, run_one):
        """``run_one()``'s run, with what the endpoints saw during it: connections, CPU seconds,
        TLS handshakes and how many of them resumed a session."""
        before = self.stats()
        run = run_one()
        after = self.stats()
        run["connections"], run["server_cpu"], run["tls_handshakes"], run["tls_resumed"] = (a - b for a, b in zip(after, before))
        return run

    def stop(self):
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.stdin.close()
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- probe process (engine path) ----------------------------------------------------------------
async def _fd_watch(peak):
    while True:
        peak[0] = max(peak[0], len(os.listdir("/proc/self/fd")))
        await asyncio.sleep(0.05)


async def _probe(params):
    from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine

    peak = [0]
    watcher = asyncio.ensure_future(_fd_watch(peak))
    try:
        return await engine.run_async(params), peak[0]
    finally:
        watcher.cancel()


def probe(args):
    nofile = benchlib.raise_nofile()
    benchlib.import_paths()
    with open(args.params) as handle:
        params = json.load(handle)
    real = set(params.pop("bench_real", None) or [])
    started = time.monotonic()
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.process_time)  # CPU time: under load a wall clock charges preemption to the C call that ran
        profiler.enable()
        out, fds = asyncio.run(_probe(params))
        profiler.disable()
        with open(args.profile + ".txt", "w") as handle:
            stats = pstats.Stats(profiler, stream=handle)
            stats.sort_stats("tottime").print_stats(45)
            stats.sort_stats("cumulative").print_stats(45)
    else:
        out, fds = asyncio.run(_probe(params))
    wall = time.monotonic() - started
    # The engine may shard over worker processes: count their CPU, and the largest one's RSS.
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "wall": wall,
                "maxrss_mib": max(me.ru_maxrss, kids.ru_maxrss) / 1024.0,
                "maxrss_parent_mib": me.ru_maxrss / 1024.0,
                "maxrss_worker_mib": kids.ru_maxrss / 1024.0,
                "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
                "workers": out["summary"].get("workers", 1),
                "fd_peak": fds,
                "nofile": nofile,
                "summary": out["summary"],
                **(split_verdicts(out["results"], real) if real else {}),
            }
        )
    )


def split_verdicts(results, real):
    """Verdict counts of the real and of the emulated targets, and every real result but PASS."""
    split = {"real": dict.fromkeys(VERDICTS, 0), "emulated": dict.fromkeys(VERDICTS, 0)}
    notable = []
    for result in results:
        group = "real" if result["target"] in real else "emulated"
        # a compact PASS aggregate stands for `count` checks
        split[group][result["verdict"]] = split[group].get(result["verdict"], 0) + int(result.get("count") or 1)
        if group == "real" and result["verdict"] != "PASS":
            row = {k: result.get(k) for k in ("target", "port", "probe", "case", "verdict")}
            row["reason"] = (result.get("reason") or "")[:200]
            notable.append(row)
    return {"split": split, "real_not_pass": sorted(notable, key=lambda r: (r["target"], r["port"], r["probe"], r["case"] or ""))}


# -- orchestration -------------------------------------------------------------------------------
def engine_run(targets, args, workdir, profile=None, real=None):
    # the same result shape as the module path (relay_probe's default results=compact), so the
    # ratio compares the same work
    params = {"targets": targets, "concurrency": args.concurrency, "timeout": args.timeout, "results": args.results}
    if real:
        params.update(source_address=[LAB_SOURCE], bench_real=real)
    if profile:
        # cProfile sees only its own process: profile the engine in-process (one worker) rather
        # than a parent that waits on its worker processes
        params["workers"] = 1
    path = os.path.join(workdir, "params.json")
    with open(path, "w") as handle:
        json.dump(params, handle)
    cmd = [sys.executable, os.path.abspath(__file__), "_probe", "--params", path]
    if profile:
        cmd += ["--profile", profile]
    load = round(os.getloadavg()[0], 1)
    tree = {}
    rc, out, err, wall, _ = benchlib.run_measured(cmd, env=benchlib.env_with_paths(), timeout=args.run_timeout, tree=tree)
    if rc != 0:
        return {"error": (err or out)[-2000:]}
    run = json.loads(out.strip().splitlines()[-1])
    run.update(tree)
    run["loadavg_1m"] = load
    run["loadavg_1m_end"] = round(os.getloadavg()[0], 1)  # other jobs may start during a run
    return run


PLAYBOOK = """\
- name: Fleet bench, one relay_probe call
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Probe the emulated fleet
      mailsec.relay.relay_probe:
        targets: "{{ bench_targets }}"
        source_address: "{{ bench_source if bench_source else omit }}"
        concurrency: "{{ bench_concurrency }}"
        timeout: "{{ bench_timeout }}"
        results: "{{ bench_results }}"
      register: bench_probe
    - name: Print the summary
      ansible.builtin.debug:
        msg: "BENCH_SUMMARY={{ bench_probe.summary | to_json }}"
"""
# With --mixed-lab the verdicts of the real MTAs come out through bench/callback_plugins/fleet_real.py,
# which reads the result the controller holds anyway: the bench's own bookkeeping stays out of the
# measured playbook (a Jinja filter chain over every result took about 1 s per 13,000 results).


def module_available():
    return os.path.exists(os.path.join(benchlib.ROOT, "plugins", "modules", "relay_probe.py"))


def module_run(targets, args, workdir, real=None):
    playbook = os.path.join(workdir, "fleet_probe.yml")
    with open(playbook, "w") as handle:
        handle.write(PLAYBOOK)
    extra = os.path.join(workdir, "extra.json")
    with open(extra, "w") as handle:
        json.dump(
            {
                "bench_targets": targets,
                "bench_concurrency": args.concurrency,
                "bench_timeout": args.timeout,
                "bench_results": args.results,
                "bench_source": [LAB_SOURCE] if real else [],
            },
            handle,
        )
    cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable, "-e", "@" + extra, playbook]
    real_out = os.path.join(workdir, "real-verdicts.json")
    if os.path.exists(real_out):
        os.unlink(real_out)
    env = {"FLEET_REAL_OUT": real_out, "FLEET_REAL_TARGETS": ",".join(real or [])}
    if real:
        env.update(ANSIBLE_CALLBACK_PLUGINS=os.path.join(benchlib.ROOT, "bench", "callback_plugins"), ANSIBLE_CALLBACKS_ENABLED="fleet_real")
    load = round(os.getloadavg()[0], 1)
    tree = {}
    rc, out, err, wall, rss = benchlib.run_measured(cmd, env=benchlib.env_with_paths(env), timeout=args.run_timeout, tree=tree)
    match = re.search(r"BENCH_SUMMARY=(\{.*?\})\"?$", out, re.M)
    if rc != 0 or not match:
        return {"error": "rc=%d %s" % (rc, (out + err)[-1500:])}
    summary = json.loads(match.group(1).replace('\\"', '"'))
    run = {"wall": wall, "maxrss_mib": rss, "summary": summary, "loadavg_1m": load, "loadavg_1m_end": round(os.getloadavg()[0], 1), **tree}
    run["cpu"] = tree.get("tree_cpu_s")  # the whole tree's CPU: comparable with the engine's under another load
    if real:
        if not os.path.exists(real_out):
            return {"error": "the fleet_real callback wrote no verdicts of the real MTAs"}
        with open(real_out) as handle:
            real_verdicts = json.load(handle)
        split = {"real": dict.fromkeys(VERDICTS, 0)}
        # [verdict, count] pairs: relay_probe's compact results stand for `count` PASS or SKIP checks each.
        for verdict, count in real_verdicts:
            split["real"][verdict] = split["real"].get(verdict, 0) + int(count)
        split["emulated"] = {k: (summary.get(k) or 0) - split["real"].get(k, 0) for k in VERDICTS}
        run["split"] = split
    return run


# -- lab (real MTAs, probed from the prober container) -------------------------------------------
def lab_targets():
    """relay_probe targets for the lab MTAs from their inventory policy, as seen from LAB_SOURCE."""
    import yaml

    benchlib.import_paths()
    from ansible_collections.mailsec.relay.plugins.module_utils import policy, verify_plan

    inventory = os.path.join(benchlib.ROOT, "tests", "lab", "inventory")
    hosts = yaml.safe_load(open(os.path.join(inventory, "hosts.yml")))
    group = yaml.safe_load(open(os.path.join(inventory, "group_vars", "mta.yml")))
    targets = []
    for mta_group in hosts["all"]["children"]["mta"]["children"].values():
        for name, hostvars in mta_group["hosts"].items():
            variables = dict(group)
            path = os.path.join(inventory, "host_vars", name + ".yml")
            if os.path.exists(path):
                variables.update(yaml.safe_load(open(path)) or {})
            variables.update(hostvars or {})
            # the only template in the lab vars: the shared SASL test user
            if variables.get("mailsec_relay_sasl_users") == "{{ lab_sasl_users }}":
                variables["mailsec_relay_sasl_users"] = group["lab_sasl_users"]
            effective = policy.build_policy(variables, name)
            target = verify_plan.build_target(name, effective, LAB_SOURCE, variables["verify_addresses"], variables.get("mailsec_relay_sasl_users"))
            if target:
                targets.append(target)
    return targets


def lab_kind(name):
    """postfix or exim, from the inventory group the host is in."""
    import yaml

    hosts = yaml.safe_load(open(os.path.join(benchlib.ROOT, "tests", "lab", "inventory", "hosts.yml")))
    for group, body in hosts["all"]["children"]["mta"]["children"].items():
        if name in (body.get("hosts") or {}):
            return group
    return None


def check_lab_netns(real):
    """Inside the prober's namespace: every lab address on-link there, the vantage ours, loopback ours."""
    if os.environ.get(IN_NETNS) != LAB_PROBER:
        raise SystemExit("--mixed-lab runs only inside the %s network namespace" % LAB_PROBER)
    for target in real:
        for address in target["addresses"]:
            benchlib.check_route(address, hint="not in the %s network namespace?" % LAB_PROBER)
    with __import__("socket").socket() as sock:
        try:
            sock.bind((LAB_SOURCE, 0))  # the vantage must be an address of this namespace
        except OSError as error:
            raise SystemExit("cannot bind the vantage %s here: %s" % (LAB_SOURCE, error))
    if benchlib.route_source(endpoint_address(0)) != LAB_SOURCE and not benchlib.route_source(endpoint_address(0)).startswith("127."):
        raise SystemExit("%s is not on this namespace's loopback" % endpoint_address(0))


def lab_up():
    try:
        out = subprocess.run(["podman", "ps", "--format", "{{.Names}}"], capture_output=True, text=True, timeout=30).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return False
    return all(name in out for name in ("mx1", "hub1", "legacy1", "exim1", LAB_PROBER))


def lab_run(args, workdir):
    """Copy the engine into the prober (a directory of this run, removed after) and probe from there."""
    targets = lab_targets()
    remote = "/tmp/mailsec-fleet-bench-%d" % os.getpid()
    stage = os.path.join(workdir, "lab")
    pkg = os.path.join(stage, "ansible_collections", "mailsec", "relay", "plugins", "module_utils")
    shutil.copytree(os.path.join(benchlib.ROOT, "plugins", "module_utils", "smtp"), os.path.join(pkg, "smtp"), ignore=shutil.ignore_patterns("__pycache__"))
    with open(os.path.join(stage, "params.json"), "w") as handle:
        json.dump({"targets": targets, "source_address": LAB_SOURCE, "concurrency": args.concurrency, "timeout": args.timeout}, handle)
    shutil.copy(os.path.abspath(__file__), os.path.join(stage, "fleet_bench.py"))
    shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchlib.py"), os.path.join(stage, "benchlib.py"))
    subprocess.run(["podman", "cp", stage, "%s:%s" % (LAB_PROBER, remote)], check=True, timeout=60)
    runs = []
    try:
        for _ in range(args.repeat):
            cmd = ["podman", "exec", "-e", "PYTHONPATH=" + remote, "-w", remote, LAB_PROBER, "python3", "fleet_bench.py", "_probe", "--params", "params.json"]
            rc, out, err, wall, _ = benchlib.run_measured(cmd, timeout=args.run_timeout)
            if rc != 0:
                runs.append({"error": (err or out)[-1500:]})
            else:
                runs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        subprocess.run(["podman", "exec", LAB_PROBER, "rm", "-rf", remote], timeout=60)
    return {"targets": [t["name"] for t in targets], "listeners": sum(len(t["listeners"]) * len(t["addresses"]) for t in targets), "runs": runs}


def summarize(runs):
    good = [r for r in runs if "error" not in r]
    if not good:
        return {"runs": len(runs), "errors": [r["error"] for r in runs]}
    wall = benchlib.median([r["wall"] for r in good])
    results = good[0]["summary"]["results"]
    return {
        "runs": len(good),
        "wall": wall,
        "walls": [round(r["wall"], 2) for r in good],
        # the engine's own time inside each run (its summary.seconds): wall minus this is the path's overhead
        "engine_seconds": [r["summary"].get("seconds") for r in good],
        "maxrss_mib": benchlib.median([r["maxrss_mib"] for r in good]),
        # the whole process tree at once (benchlib.TreeMemory): summed RSS and PSS, peak
        "tree_rss_mib": benchlib.median([r.get("tree_rss_mib") for r in good]),
        "tree_pss_mib": benchlib.median([r.get("tree_pss_mib") for r in good]),
        "tree_processes": max((r.get("tree_processes") or 0) for r in good) or None,
        "cpu": benchlib.median([r.get("cpu") for r in good]),
        "fd_peak": max((r.get("fd_peak") or 0) for r in good) or None,
        "server_cpu": benchlib.median([r.get("server_cpu") for r in good]),
        "workers": good[0].get("workers"),
        "loadavg_1m": [r.get("loadavg_1m") for r in good],
        "loadavg_1m_end": [r.get("loadavg_1m_end") for r in good],
        "results": results,
        "results_per_s": results / wall if wall else None,
        "verdicts": {k: good[0]["summary"].get(k) for k in VERDICTS},
        # real vs emulated (--mixed-lab), and whether every run gave the real MTAs the same counts
        "split": good[0].get("split"),
        "real_not_pass": good[0].get("real_not_pass"),
        "real_splits_agree": all(r.get("split", {}).get("real") == good[0].get("split", {}).get("real") for r in good) if good[0].get("split") else None,
        "errors": [r["error"] for r in runs if "error" in r],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--servers", type=int, default=2, help="endpoint server processes")
    parser.add_argument(
        "--ports",
        help="mx,submission,submissions ports of every endpoint (default 25,587,465; "
        "with --mixed-lab %s: the prober's canary sink holds *:25 in its namespace)" % MIXED_PORTS,
    )
    parser.add_argument(
        "--endpoint",
        choices=("lean", "fake"),
        default="lean",
        help="emulated MTA: lean (smtp_fakes/lean_smtp.py, protocol-based) or fake (smtp_fakes/fakesmtp.FakeHost); the same replies and real TLS either way",
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=5)
    parser.add_argument("--run-timeout", type=float, default=900)
    parser.add_argument(
        "--results",
        choices=("compact", "full"),
        default="compact",
        help="result shape of both paths (engine option and relay_probe's `results`; default compact, the module's default)",
    )
    parser.add_argument("--no-module", action="store_true", help="skip the ansible-playbook path")
    parser.add_argument("--no-engine", action="store_true", help="skip the engine path (measure the module path alone)")
    parser.add_argument("--module-sizes", default=None, help="sizes for the module path (default: --sizes)")
    parser.add_argument("--module-repeat", type=int, default=None, help="runs per size, module path (default: --repeat)")
    parser.add_argument("--with-lab", action="store_true", help="also probe the lab MTAs from the prober, in a separate run (podman exec)")
    parser.add_argument(
        "--mixed-lab",
        action="store_true",
        help="verify the real lab MTAs in the same engine/module runs as the emulated endpoints: the "
        "bench re-runs itself in the prober's network namespace (nsenter; root, lab up)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one engine run at the largest N (in-process: workers=1)")
    parser.add_argument("--profile-endpoints", metavar="PREFIX", help="cProfile the endpoint processes (all runs); PREFIX.<process>.txt each")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    if args.profile_endpoints:
        os.environ["MAILSEC_BENCH_PROFILE_ENDPOINTS"] = os.path.abspath(args.profile_endpoints)
    if args.mixed_lab and os.environ.get(IN_NETNS) != LAB_PROBER:
        if not lab_up():
            raise SystemExit("--mixed-lab: lab containers are not running (tests/lab/lab.sh up; make demo)")
        benchlib.exec_in_netns(LAB_PROBER, __file__, sys.argv[1:] if argv is None else argv, IN_NETNS)
    args.ports = args.ports or (MIXED_PORTS if args.mixed_lab else "25,587,465")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    module_sizes = sorted(int(s) for s in (args.module_sizes or args.sizes).split(","))

    nofile = benchlib.raise_nofile()
    # Endpoint processes hold 3 listeners per endpoint; the prober holds at most `concurrency`
    # client sockets (the engine's global bound) plus a handful of its own.
    if args.concurrency + 64 > nofile:
        raise SystemExit("concurrency %d too high for RLIMIT_NOFILE %d" % (args.concurrency, nofile))
    real, real_names = [], None
    if args.mixed_lab:
        real = lab_targets()
        real_names = [t["name"] for t in real]
        check_lab_netns(real)
    report = {"machine": benchlib.machine_facts(), "config": vars(args), "engine": {}, "module": {}, "lab": None, "mixed_lab": None}
    if args.mixed_lab:
        report["mixed_lab"] = {
            "real_targets": real_names,
            "netns": LAB_PROBER,
            "vantage": LAB_SOURCE,
            "real_listeners": sum(len(t["listeners"]) * len(t["addresses"]) for t in real),
            "kinds": {t["name"]: lab_kind(t["name"]) for t in real},
        }
        print(
            "mixed: %d real lab MTAs (%s, %d listeners) in every run, from %s in the %s network namespace"
            % (len(real), ", ".join(real_names), report["mixed_lab"]["real_listeners"], LAB_SOURCE, LAB_PROBER),
            flush=True,
        )
    workdir = tempfile.mkdtemp(prefix="fleet-bench-")
    pool = None
    try:
        started = time.monotonic()
        pool = ServerPool(max(sizes + module_sizes), args.servers, args.ports, workdir, args.endpoint)
        report["server_start_s"] = round(time.monotonic() - started, 2)
        print(
            "endpoints: %d on %s.x.y ports %s in %d processes (started in %.1f s); nofile %d"
            % (len(pool.targets), ADDRESS_BASE, args.ports, args.servers, report["server_start_s"], nofile),
            flush=True,
        )
        # The two paths alternate run by run at each size (engine, module, engine, ...): what the
        # shared machine does meanwhile weighs on both alike, so their ratio compares like with like.
        engine_sizes = [] if args.no_engine else sizes
        if args.no_module:
            report["module"] = "skipped (--no-module)"
            module_sizes = []
        elif not module_available():
            report["module"] = "skipped: plugins/modules/relay_probe.py does not exist yet"
            print(report["module"], flush=True)
            module_sizes = []
        engine_runs, module_runs = {}, {}
        module_repeat = args.module_repeat or args.repeat
        for size in sorted(set(engine_sizes) | set(module_sizes)):
            for index in range(max(args.repeat if size in engine_sizes else 0, module_repeat if size in module_sizes else 0)):
                if size in engine_sizes and index < args.repeat:
                    run = pool.measure(lambda: engine_run(real + pool.first(size), args, workdir, real=real_names))
                    engine_runs.setdefault(size, []).append(run)
                    print("  engine N=%d: %s" % (size, _brief(run)), flush=True)
                if size in module_sizes and index < module_repeat:
                    run = pool.measure(lambda: module_run(real + pool.first(size), args, workdir, real=real_names))
                    module_runs.setdefault(size, []).append(run)
                    print("  module N=%d: %s" % (size, _brief(run)), flush=True)
        for size, runs in engine_runs.items():
            report["engine"][size] = summarize(runs)
            report["engine"][size]["connections"] = runs[-1].get("connections")
        for size, runs in module_runs.items():
            report["module"][size] = summarize(runs)
        if args.profile:
            path = os.path.join(workdir, "engine.prof")
            engine_run(real + pool.first(max(sizes)), args, workdir, profile=path, real=real_names)
            with open(path + ".txt") as handle:
                report["profile"] = handle.read()
            print(report["profile"][:6000], flush=True)
    finally:
        if pool is not None:
            pool.stop()
        if not args.with_lab or args.mixed_lab:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.with_lab and args.mixed_lab:
        report["lab"] = "skipped: the lab MTAs were in every run (--mixed-lab)"
    elif args.with_lab:
        if lab_up():
            report["lab"] = lab_run(args, workdir)
            report["lab"].update(summarize(report["lab"]["runs"]))
            del report["lab"]["runs"]
        else:
            report["lab"] = "skipped: lab containers are not running (tests/lab/lab.sh up)"
        shutil.rmtree(workdir, ignore_errors=True)
    print_report(report)
    benchlib.write_json(args.json, report)
    return report


def _brief(run):
    if "error" in run:
        return "ERROR " + run["error"].strip().splitlines()[-1][:300] if run["error"].strip() else "ERROR"
    s = run["summary"]
    split = run.get("split")
    real = "; real %s / emulated %s" % (_counts(split["real"]), _counts(split["emulated"])) if split else ""
    return (
        "load %.1f: %.2f s (engine inside %.2f s), %d results (%s PASS, %s FAIL, %s INCONCLUSIVE), "
        "peak RSS %.0f MiB (largest process), process tree %s MiB RSS / %s MiB PSS%s"
        % (
            run.get("loadavg_1m") or 0.0,
            run["wall"],
            s.get("seconds") or 0.0,
            s["results"],
            s.get("PASS"),
            s.get("FAIL"),
            s.get("INCONCLUSIVE"),
            run["maxrss_mib"],
            benchlib.fmt(run.get("tree_rss_mib"), 0),
            benchlib.fmt(run.get("tree_pss_mib"), 0),
            ", CPU %.1f s prober (%s process%s) / %.1f s endpoints, fds %s (parent), connections %s"
            % (run.get("cpu"), run.get("workers"), "" if run.get("workers") == 1 else "es", run.get("server_cpu"), run.get("fd_peak"), run.get("connections"))
            if "fd_peak" in run
            else ", CPU %.1f s ansible-playbook tree / %.1f s endpoints" % (run.get("cpu") or 0.0, run.get("server_cpu") or 0.0),
        )
        + (", TLS handshakes %d (%d resumed)" % (run["tls_handshakes"], run["tls_resumed"]) if run.get("tls_handshakes") else "")
        + real
    )


def _counts(verdicts):
    return " ".join("%s %d" % (k, v) for k, v in verdicts.items() if v) or "none"


def print_report(report):
    f = benchlib.fmt
    print("\nFleet bench (median of %d runs)" % report["config"]["repeat"])
    print("%-8s %6s %9s %9s %9s %9s %10s %9s %8s %9s" % ("path", "N", "wall s", "RSS MiB", "tree RSS", "tree PSS", "results/s", "endpts/s", "fds", "CPU s"))
    for path in ("engine", "module"):
        rows = report[path]
        if not isinstance(rows, dict):
            continue
        for size, row in sorted(rows.items()):
            if "wall" not in row:
                print("%-8s %6d   errors: %s" % (path, size, row.get("errors")))
                continue
            print(
                "%-8s %6d %9s %9s %9s %9s %10s %9s %8s %9s"
                % (
                    path,
                    size,
                    f(row["wall"]),
                    f(row["maxrss_mib"], 0),
                    f(row.get("tree_rss_mib"), 0),
                    f(row.get("tree_pss_mib"), 0),
                    f(row["results_per_s"], 0),
                    f(size / row["wall"], 1),
                    f(row.get("fd_peak")),
                    f(row.get("cpu"), 1),
                )
            )
    for path in ("engine", "module"):
        rows = report[path]
        if isinstance(rows, dict) and 100 in rows and 1000 in rows and "wall" in rows[100] and "wall" in rows[1000]:
            print("%s t(1000)/t(100) = %s" % (path, f(benchlib.ratio(rows[1000]["wall"], rows[100]["wall"]))))
    eng, mod = report["engine"], report["module"]
    if isinstance(mod, dict):
        for size in sorted(set(eng) & set(mod)):
            if "wall" in eng[size] and "wall" in mod[size]:
                print(
                    "module/engine N=%d: wall %s (+%s s), CPU %s, RSS %s; module process tree peak %s MiB RSS / %s MiB PSS (target: ratio <= 1.2, < 300 MiB)"
                    % (
                        size,
                        f(benchlib.ratio(mod[size]["wall"], eng[size]["wall"])),
                        f(mod[size]["wall"] - eng[size]["wall"]),
                        f(benchlib.ratio(mod[size].get("cpu"), eng[size].get("cpu"))),
                        f(benchlib.ratio(mod[size]["maxrss_mib"], eng[size]["maxrss_mib"])),
                        f(mod[size].get("tree_rss_mib"), 0),
                        f(mod[size].get("tree_pss_mib"), 0),
                    )
                )
    mixed = report.get("mixed_lab")
    if mixed:
        print(
            "real lab MTAs in every run: %s (%d listeners, from %s in the %s namespace)"
            % (", ".join(mixed["real_targets"]), mixed["real_listeners"], mixed["vantage"], mixed["netns"])
        )
        for path in ("engine", "module"):
            rows = report[path]
            for size, row in sorted(rows.items()) if isinstance(rows, dict) else ():
                if row.get("split"):
                    print(
                        "  %s N=%d: real %s (same in every run: %s) / emulated %s"
                        % (path, size, _counts(row["split"]["real"]), row.get("real_splits_agree"), _counts(row["split"]["emulated"]))
                    )
        for row in (report["engine"].get(max(report["engine"])) or {}).get("real_not_pass") or [] if report["engine"] else []:
            print(
                "    %s/%s %s%s: %s - %s" % (row["target"], row["port"], row["probe"], "/" + row["case"] if row["case"] else "", row["verdict"], row["reason"])
            )
    if report.get("lab") is not None:
        lab = report["lab"]
        if isinstance(lab, str) or "wall" not in lab:
            print("lab: %s" % lab)
        else:
            print(
                "lab (%s, %d listeners, from %s): %s s, %d results, verdicts %s"
                % (", ".join(lab["targets"]), lab["listeners"], LAB_PROBER, f(lab["wall"]), lab["results"], lab["verdicts"])
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        p = argparse.ArgumentParser()
        for opt in ("--index", "--of", "--count"):
            p.add_argument(opt, type=int)
        for opt in ("--ports", "--certdir", "--targets-out", "--endpoint"):
            p.add_argument(opt)
        serve_args = p.parse_args(sys.argv[2:])
        profile_out = os.environ.get("MAILSEC_BENCH_PROFILE_ENDPOINTS")
        if profile_out:
            # --profile-endpoints: where the emulated endpoints' own CPU goes (one file per process)
            import cProfile
            import pstats

            profiler = cProfile.Profile(time.process_time)  # CPU time: under load a wall clock charges preemption to the C call that ran
            profiler.enable()
            asyncio.run(serve(serve_args))
            profiler.disable()
            with open("%s.%d.txt" % (profile_out, serve_args.index), "w") as handle:
                stats = pstats.Stats(profiler, stream=handle)
                stats.sort_stats("tottime").print_stats(40)
                stats.sort_stats("cumulative").print_stats(40)
        else:
            asyncio.run(serve(serve_args))
    elif len(sys.argv) > 1 and sys.argv[1] == "_probe":
        p = argparse.ArgumentParser()
        p.add_argument("--params")
        p.add_argument("--profile")
        probe(p.parse_args(sys.argv[2:]))
    else:
        main()
