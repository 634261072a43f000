# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the zoo run's wall time goes: run_verify.py with a time line (development tool).

Runs the engine like run_verify.py (inside zoo-prober's network namespace, route guard first) and
stamps, relative to the run's start: every connection (asked for, slot granted, greeting read), every
result (start and end), every canary wait (start, end, found or not). Prints each listener's last
result and what it waited on, the slowest results, and the waits; stdout of run_verify.py is not
produced (the engine's outcome goes to --json if asked).

  nsenter -t $(podman inspect -f '{{.State.Pid}}' zoo-prober) -n .venv/bin/python tests/zoo/trace_verify.py [--only a,b] [--json out]
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "bench"))
import benchlib  # noqa: E402
import zoolib  # noqa: E402

ZOO_NETS = ("198.51.100.128/25", "2001:db8:27::/64")


def zoo_cpu():
    """CPU seconds used so far by every zoo container (cgroup v1 cpuacct, or v2 cpu.stat)."""
    import glob
    import subprocess

    rows = subprocess.run(
        ["podman", "ps", "--no-trunc", "--filter", "label=io.mailsec.zoo=1", "--format", "{{.ID}} {{.Names}}"], capture_output=True, text=True, check=False
    ).stdout.split("\n")
    per = {}
    for row in rows:
        if not row.strip():
            continue
        ident, name = row.split()
        total = 0.0
        for path in glob.glob("/sys/fs/cgroup/cpuacct/*/libpod-%s*/cpuacct.usage" % ident):
            with open(path) as handle:
                total += int(handle.read()) / 1e9
        for path in glob.glob("/sys/fs/cgroup/*/libpod-%s*/cpu.stat" % ident) + glob.glob("/sys/fs/cgroup/*/*/libpod-%s*/cpu.stat" % ident):
            with open(path) as handle:
                for line in handle:
                    if line.startswith("usage_usec"):
                        total += int(line.split()[1]) / 1e6
        per[name] = total
    return per


def max_open(lives):
    points = sorted([(e[3], 1) for e in lives] + [(e[4], -1) for e in lives])
    level = peak = 0
    for unused_time, step in points:
        level += step
        peak = max(peak, level)
    return peak


def main():
    import ipaddress

    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="")
    parser.add_argument("--json")
    parser.add_argument("--spool", required=True)
    parser.add_argument("--wait", type=float, default=zoolib.CANARY_WAIT)
    parser.add_argument("--params", default="{}")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or None
    chosen = [s for s in zoolib.servers() if names is None or s[0] in names]
    targets = [zoolib.target(name, octet) for name, _image, octet in chosen]
    nets = [ipaddress.ip_network(n) for n in ZOO_NETS]
    for target in targets:
        for address in target["addresses"]:
            source = ipaddress.ip_address(benchlib.check_route(address, hint="run inside zoo-prober's network namespace"))
            if not any(source in net for net in nets if net.version == source.version):
                raise SystemExit("%s would be reached from %s: refused" % (address, source))
    benchlib.import_paths()
    from ansible_collections.mailsec.relay.plugins.module_utils.smtp import canary, client, engine

    t0 = [None]
    events = []

    def now():
        return time.monotonic() - t0[0]

    orig_record = engine.Runner._record

    def record(self, ctx, case, outcome, transcript, duration, cl):
        end = now()
        where = (ctx.target.name, ctx.address, ctx.listener.port, case.probe, case.case)
        events.append(("result",) + where + (end - duration, end, outcome.verdict, outcome.text[:90]))
        return orig_record(self, ctx, case, outcome, transcript, duration, cl)

    engine.Runner._record = record

    orig_wait = canary.CanaryWatcher.wait

    async def wait(self, token, seconds, unless=None):
        start = now()
        text = await orig_wait(self, token, seconds, unless)
        events.append(("canary", token, start, now(), text is not None))
        return text

    canary.CanaryWatcher.wait = wait

    orig_connect = client.SMTPClient.connect

    async def connect(self, implicit_tls=False, preface=None):
        start = now()
        self._trace_opened = start
        try:
            return await orig_connect(self, implicit_tls=implicit_tls, preface=preface)
        finally:
            code = self.banner.code if getattr(self, "banner", None) is not None else None
            events.append(("connect", self.host if hasattr(self, "host") else "?", getattr(self, "port", "?"), start, now(), code))

    client.SMTPClient.connect = connect

    orig_close = client.SMTPClient.close

    async def close(self):
        opened = getattr(self, "_trace_opened", None)
        await orig_close(self)
        if opened is not None:
            self._trace_opened = None
            events.append(("life", self.host, self.port, opened, now()))

    client.SMTPClient.close = close

    orig_acquire = engine.HostPlan.acquire

    async def acquire(self, priority):
        start = now()
        await orig_acquire(self, priority)
        if now() - start > 0.05:
            events.append(("slotwait", priority, start, now()))

    engine.HostPlan.acquire = acquire

    orig_run = engine.Runner.run
    parent = os.getpid()

    async def runner_run(self):
        try:
            return await orig_run(self)
        finally:
            if os.getpid() != parent:
                with open("/tmp/zoo-trace-%d.json" % os.getpid(), "w") as handle:
                    json.dump(events, handle)

    engine.Runner.run = runner_run
    for name in os.listdir("/tmp"):
        if name.startswith("zoo-trace-"):
            os.unlink(os.path.join("/tmp", name))

    params = {"vantage": "zoo", "transcripts": "failures", "canary": {"domain": "canary.test", "spool": args.spool, "wait": args.wait}}
    params.update(json.loads(args.params))
    params["targets"] = targets
    zoo_before = zoo_cpu()
    t0[0] = time.monotonic()
    outcome = engine.run(params)
    wall = now()
    zoo_after = zoo_cpu()
    zoo_per = {name: zoo_after[name] - zoo_before.get(name, 0.0) for name in zoo_after}
    zoo_used = sum(zoo_per.values())
    for name in os.listdir("/tmp"):
        if name.startswith("zoo-trace-"):
            with open(os.path.join("/tmp", name)) as handle:
                events.extend(tuple(e) for e in json.load(handle))
            os.unlink(os.path.join("/tmp", name))
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    print("engine: %.2f s wall, %.2f s CPU (engine processes), %.2f s CPU (zoo containers), summary %s" % (wall, cpu, zoo_used, outcome["summary"]))
    print("zoo CPU by container: " + ", ".join("%s %.2f" % (name[4:], cpu) for name, cpu in sorted(zoo_per.items(), key=lambda kv: -kv[1])))
    results = [e for e in events if e[0] == "result"]
    per_listener = {}
    for e in results:
        key = (e[1], e[2], e[3])
        if key not in per_listener or e[7] > per_listener[key][7]:
            per_listener[key] = e
    print("\nlast result per listener (end s, probe/case, start s, verdict, reason):")
    for key, e in sorted(per_listener.items(), key=lambda kv: -kv[1][7])[:30]:
        print("  %6.2f %-26s %-22s %5s %-8s start %5.2f %s" % (e[7], e[1], e[2], e[3], "%s/%s" % (e[4], e[5] or "-"), e[6], e[8] + " " + e[9]))
    print("\nslowest results (duration):")
    for e in sorted(results, key=lambda e: -(e[7] - e[6]))[: args.top]:
        print("  %5.2f s [%5.2f-%5.2f] %-24s %-20s %5s %s/%s %s %s" % (e[7] - e[6], e[6], e[7], e[1], e[2], e[3], e[4], e[5] or "-", e[8], e[9]))
    waits = [e for e in events if e[0] == "canary"]
    found = [e[3] - e[2] for e in waits if e[4]]
    print(
        "\ncanary waits: %d, %d found (longest from the wait's start to arrival %.3f s: the zoo's wait is %s s), %d never came; latest ends:"
        % (len(waits), len(found), max(found or [0.0]), args.wait, len(waits) - len(found))
    )
    for e in sorted(waits, key=lambda e: -e[3])[:10]:
        print("  %-28s %5.2f -> %5.2f found=%s" % (e[1], e[2], e[3], e[4]))
    conns = [e for e in events if e[0] == "connect"]
    print("\nconnections: %d; slowest greetings:" % len(conns))
    for e in sorted(conns, key=lambda e: -(e[4] - e[3]))[:15]:
        print("  %5.2f s [%5.2f-%5.2f] %s:%s code %s" % (e[4] - e[3], e[3], e[4], e[1], e[2], e[5]))
    lives = [e for e in events if e[0] == "life"]
    total = sum(e[4] - e[3] for e in lives)
    print(
        "\nconnection lifetimes: %d closed, %.1f connection-seconds, mean %.3f s; open at once (max): %d"
        % (len(lives), total, total / max(1, len(lives)), max_open(lives))
    )
    per = {}
    for e in lives:
        per.setdefault(e[1], []).append(e[4] - e[3])
    for address, items in sorted(per.items(), key=lambda kv: -sum(kv[1]))[:12]:
        print("  %-20s %4d connections, %6.1f connection-seconds, longest %.2f" % (address, len(items), sum(items), max(items)))
    slots = [e for e in events if e[0] == "slotwait"]
    print("\nslot waits over 50 ms: %d, longest:" % len(slots))
    for e in sorted(slots, key=lambda e: -(e[3] - e[2]))[:10]:
        print("  %5.2f s [%5.2f-%5.2f] priority %s" % (e[3] - e[2], e[2], e[3], e[1]))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"outcome": outcome, "events": events, "wall": wall}, handle)


if __name__ == "__main__":
    main()
