# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers of the benches: paths, timing a child process, medians, machine facts.

Benches print figures and never gate anything; they talk only to loopback or to the lab's own
containers.
"""

from __future__ import annotations

import ipaddress
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")


def import_paths():
    """Make the engine (as mailsec.relay) and the fake SMTP hosts (smtp_fakes, at the root) importable."""
    for path in (COLLECTIONS, ROOT):
        if path not in sys.path:
            sys.path.insert(0, path)


def env_with_paths(extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([COLLECTIONS, ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if os.path.isdir(VENV_BIN) and not env.get("PATH", "").startswith(VENV_BIN):
        env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 65536)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class TreeMemory:
    """Peak memory of a process and all its descendants together, sampled from /proc.

    ru_maxrss only gives the largest single process; ansible-playbook runs a controller, a forked
    worker, the module and the engine's worker processes at once. Each sample sums the resident
    set (RSS: shared pages counted in every process, an upper bound) and the proportional set
    (PSS: shared pages split among their users) of the whole tree. Parents are read once per new
    pid. RSS comes from /proc/<pid>/statm (~0.01 ms a process); PSS needs smaps_rollup, which walks
    the page tables (~3 ms a sample for ansible-playbook's tree: 10 % of a core at 10 samples a
    second, taken from the run it measures), so PSS is read only when the summed RSS is at a new
    peak: PSS never exceeds RSS, and the tree's PSS peaks where its RSS does."""

    def __init__(self, root):
        self.root = root
        self.parent = {}
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_processes = 0
        self.samples = 0

    def _ppid(self, pid):
        if pid not in self.parent:
            try:
                with open("/proc/%d/stat" % pid) as handle:
                    self.parent[pid] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                self.parent[pid] = None
        return self.parent[pid]

    def sample(self):
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
        alive = set(pids)
        for gone in [pid for pid in self.parent if pid not in alive]:
            del self.parent[gone]  # a reused pid gets its parent read again
        tree = {self.root}
        changed = True
        while changed:  # descendants at any depth (pids are not ordered by ancestry)
            changed = False
            for pid in pids:
                if pid not in tree and self._ppid(pid) in tree:
                    tree.add(pid)
                    changed = True
        rss = 0
        for pid in tree:
            try:
                with open("/proc/%d/statm" % pid) as handle:
                    rss += int(handle.read().split()[1]) * PAGE_KIB
            except (OSError, IndexError, ValueError):
                continue
        self.samples += 1
        self.peak_processes = max(self.peak_processes, len(tree))
        if rss < self.peak_rss:
            return
        self.peak_rss = rss
        pss = 0
        for pid in tree:
            try:
                with open("/proc/%d/smaps_rollup" % pid) as handle:
                    for line in handle:
                        if line.startswith("Pss:"):
                            pss += int(line.split()[1])
                            break
            except OSError:
                continue
        self.peak_pss = max(self.peak_pss, pss)

    def figures(self):
        """Peaks in MiB (None when nothing could be sampled)."""
        if not self.samples:
            return {"tree_rss_mib": None, "tree_pss_mib": None, "tree_processes": None}
        return {"tree_rss_mib": self.peak_rss / 1024.0, "tree_pss_mib": self.peak_pss / 1024.0, "tree_processes": self.peak_processes}


def run_measured(cmd, cwd=ROOT, env=None, timeout=None, stdin=None, tree=None):
    """Run cmd; return (rc, stdout, stderr, wall seconds, peak RSS in MiB of the process tree).

    os.wait4 reports the child's ru_maxrss folded with that of every descendant it reaped:
    for ansible-playbook that is the largest of controller, worker and module process. Pass a
    dict as ``tree`` to also get the whole tree's summed peaks (TreeMemory.figures) into it,
    sampled every 0.1 s.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL if stdin is None else stdin)
        memory = TreeMemory(proc.pid) if tree is not None else None
        deadline = None if timeout is None else started + timeout
        next_sample = started
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            if memory is not None and time.monotonic() >= next_sample:
                memory.sample()
                next_sample = time.monotonic() + 0.1
            time.sleep(0.02)
        wall = time.monotonic() - started
        if memory is not None:
            tree.update(memory.figures())
            # CPU of the process and every descendant it reaped (ansible-playbook: controller, worker, module, engine)
            tree["tree_cpu_s"] = usage.ru_utime + usage.ru_stime
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"), wall, usage.ru_maxrss / 1024.0)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def fmt(value, digits=2, unit=""):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return ("%." + str(digits) + "f%s") % (value, unit)
    return "%s%s" % (value, unit)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env_with_paths()).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def machine_facts():
    facts = {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "nofile": "%d/%d" % resource.getrlimit(resource.RLIMIT_NOFILE),
        "ansible_core": None,
        "podman": tool_version(["podman", "--version"]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        from importlib.metadata import version

        facts["ansible_core"] = version("ansible-core")
    except Exception:  # noqa: BLE001 - a fact, not a requirement
        pass
    return facts


# -- the lab network, reached only from inside the prober container's network namespace ----------
LAB_NETS = [ipaddress.ip_network(n) for n in ("198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]


def allowed_target(address):
    """Loopback or one of the lab's documentation ranges: the only addresses a bench may probe."""
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or any(ip.version == net.version and ip in net for net in LAB_NETS)


def route_source(address):
    """The source address the kernel would use for ``address`` (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((address, 9))
        return sock.getsockname()[0]


def check_route(address, hint="run with --netns prober"):
    """Refuse a lab address this namespace would reach through a gateway (off the machine)."""
    if not allowed_target(address):
        raise SystemExit("%s is neither loopback nor a lab address: refused" % address)
    source = route_source(address)
    if ipaddress.ip_address(address).is_loopback or allowed_target(source):
        return source
    raise SystemExit("%s would be reached from %s, not from the lab network: %s" % (address, source, hint))


def container_pid(name):
    return subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", name], capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def container_root(name):
    """The container's root file system on this machine (podman mount; needs root)."""
    return subprocess.run(["podman", "mount", name], capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def exec_in_netns(container, script, argv, marker):
    """Replace this process with ``script argv`` run inside ``container``'s network namespace.

    Host binaries, venv and file system stay; only the network is the container's (nsenter -n).
    ``marker`` is set in the environment to the container's name, so the script knows it is in."""
    pid = container_pid(container)
    env = dict(os.environ, **{marker: container})
    os.execvpe("nsenter", ["nsenter", "-t", pid, "-n", sys.executable, os.path.abspath(script)] + list(argv), env)


def write_json(path, data):
    if not path:
        return
    with open(path, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.write("\n")
