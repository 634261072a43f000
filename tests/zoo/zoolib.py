# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zoo seen from Python: servers and their ground truth, the verifier run against them from
the zoo prober's network namespace, nmap beside it, and finding sets to compare.

Used by tests/integration/test_zoo.py, tests/zoo/render_table.py and bench/zoo_bench.py. The
probes run in a child process entered into zoo-prober's network namespace with nsenter (this
machine has no address on the zoo network; its own routes lead off the machine), and every
address is checked against a route guard before anything is sent (bench/benchlib.py).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time

import yaml

ZOO_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(ZOO_DIR))
ZOO_SH = os.path.join(ZOO_DIR, "zoo.sh")
PROBER = "zoo-prober"
V4_PREFIX = "198.51.100."
V6_PREFIX = "2001:db8:27::"
CANARY_DOMAIN = "canary.test"
# The zoo's canary wait (verify_canary.wait / the engine's canary.wait), shorter than the 10 s default:
# the sink runs on zoo-prober, on the zoo's own network beside every MTA, and each MTA hands its
# non-local mail straight to it (Postfix relayhost, Exim hubbed_hosts, OpenSMTPD relay host,
# Sendmail SMART_HOST; no DNS, no queue delay). Measured from the end of data to the file in the
# spool: at most 0.17 s over 186 delivered probe messages (tests/zoo/trace_verify.py, load 4.9;
# 0.18 s over 188 at load 20).
# 3 s is more than 15 times that. A message that never comes (postfix-accept-drop) is judged only
# after the whole wait, so the wait bounds the run from below. test_zoo.py and bench/zoo_bench.py
# both use it: the ground truth is checked with the same wait the bench measures with.
CANARY_WAIT = 3.0
NMAP = "/usr/bin/nmap"
# Findings of this severity say "no verdict, not required": listed, not compared.
IGNORED_SEVERITIES = ("info",)


def servers():
    """[(name, image, octet)] in zoo.sh's order."""
    out = subprocess.run([ZOO_SH, "servers"], capture_output=True, text=True, check=True, timeout=30).stdout
    return [tuple(line.split()) for line in out.splitlines() if line.strip()]


def server_names():
    return [entry[0] for entry in servers()]


def truth(name):
    with open(os.path.join(ZOO_DIR, name, "truth.yml")) as handle:
        return yaml.safe_load(handle)


def target(name, octet, spec=None):
    """The verifier's target for one zoo server, from its truth file: what an admin would state."""
    spec = spec or truth(name)
    result = {
        "name": name,
        "addresses": [V4_PREFIX + octet, V6_PREFIX + octet],
        "hostname": "mx.%s.zoo.test" % name,
        "local_domains": list(spec.get("local_domains") or []),
        "relay_domains": list(spec.get("relay_domains") or []),
        "listeners": [dict(item) for item in spec["listeners"]],
    }
    if spec.get("test_mailbox"):
        result["test_mailbox"] = spec["test_mailbox"]
    if spec.get("auth"):
        result["auth"] = dict(spec["auth"])
    return result


def prober_pid():
    return subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", PROBER], capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def canary_spool():
    root = subprocess.run(["podman", "mount", PROBER], capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    return os.path.join(root, "var", "spool", "canary")


def in_netns(argv, timeout):
    """Run argv (a host program) inside the zoo prober's network namespace."""
    return subprocess.run(["nsenter", "-t", prober_pid(), "-n"] + list(argv), capture_output=True, text=True, timeout=timeout, check=False)


def verify(names=None, params=None, timeout=600):
    """The verifier (engine.run) against the zoo from the prober's netns; returns its outcome dict
    plus ``wall`` (seconds, whole child process) and ``engine_seconds``."""
    chosen = [s for s in servers() if names is None or s[0] in names]
    request = {"targets": [target(name, octet) for name, _image, octet in chosen], "params": params or {}, "spool": canary_spool(), "wait": CANARY_WAIT}
    started = time.monotonic()
    proc = subprocess.run(
        ["nsenter", "-t", prober_pid(), "-n", sys.executable, os.path.join(ZOO_DIR, "run_verify.py")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError("run_verify.py failed (%d): %s" % (proc.returncode, proc.stderr[-3000:]))
    outcome = json.loads(proc.stdout)
    outcome["wall"] = wall
    return outcome


def findings_by_server(outcome):
    """{server: {"compared": set of finding ids, "ignored": set, "unlabelled": [(probe, case, port, verdict)]}}

    Every non-PASS, non-SKIP result must carry a finding id (plugins/module_utils/findings.py);
    one without is listed as ``?<probe>:<verdict>`` so the comparison shows it."""
    table = {}
    for result in outcome["results"]:
        entry = table.setdefault(result["target"], {"compared": set(), "ignored": set(), "results": []})
        if result["verdict"] in ("PASS", "SKIP"):
            continue
        entry["results"].append(result)
        finding = result.get("finding")
        if not finding:
            entry["compared"].add("?%s:%s" % (result["probe"], result["verdict"]))
        elif result.get("severity") in IGNORED_SEVERITIES:
            entry["ignored"].add(finding)
        else:
            entry["compared"].add(finding)
    return table


def truth_mismatches(outcome):
    """{server: (expected findings, reported findings)} for every server whose compared finding set
    differs from its truth file (empty: every server got exactly its ground truth)."""
    table = findings_by_server(outcome)
    wrong = {}
    for name in server_names():
        expected = set(truth(name)["findings"])
        seen = table.get(name, {"compared": set()})["compared"]
        if seen != expected:
            wrong[name] = (sorted(expected), sorted(seen))
    return wrong


def nmap_listeners(names=None):
    """(server, address, port) of every plaintext MX listener: what smtp-open-relay can test."""
    rows = []
    for name, _image, octet in servers():
        if names is not None and name not in names:
            continue
        for listener in truth(name)["listeners"]:
            if listener.get("role", "mx") == "mx" and listener.get("tls") != "implicit":
                for address in (V4_PREFIX + octet, V6_PREFIX + octet):
                    rows.append((name, address, int(listener["port"])))
    return rows


NMAP_PATTERNS = (
    r"Server is an open relay \(\d+/16 tests\)",
    r"Server doesn't seem to be an open relay.*",
    r"Server isn't an open relay.*",
    r"Couldn't .*",
    r"smtp-open-relay: (.*)",
)


def nmap_one(address, port, timeout=300):
    """nmap -n smtp-open-relay on one listener from the prober's netns: (verdict, seconds)."""
    import ipaddress

    family = ["-6"] if ipaddress.ip_address(address).version == 6 else []
    # smtp-open-relay runs on 25/465/587 or a port nmap identifies as SMTP: elsewhere (2525) it
    # needs service detection first.
    if port not in (25, 465, 587):
        family += ["-sV", "--version-light"]
    started = time.monotonic()
    proc = in_netns([NMAP, "-n", "-Pn"] + family + ["-p", str(port), "--script", "smtp-open-relay", address], timeout)
    verdict = "no verdict"
    for pattern in NMAP_PATTERNS:
        match = re.search(pattern, proc.stdout)
        if match:
            verdict = match.group(0).strip().rstrip(".")
            break
    return verdict, time.monotonic() - started


def nmap_all(rows, parallel=4):
    """{(server, address, port): (verdict, seconds)}, a few nmaps at a time; and the wall time."""
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        futures = {row: pool.submit(nmap_one, row[1], row[2]) for row in rows}
        verdicts = {row: future.result() for row, future in futures.items()}
    return verdicts, time.monotonic() - started


def zoo(*args, timeout=900):
    proc = subprocess.run([ZOO_SH] + list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError("zoo.sh %s failed:\n%s\n%s" % (" ".join(args), proc.stdout, proc.stderr))
    return proc.stdout + proc.stderr


def zoo_is_up():
    proc = subprocess.run(["podman", "container", "exists", PROBER], check=False)
    return proc.returncode == 0
