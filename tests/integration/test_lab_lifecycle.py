# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The demo lab: up (twice: the second start is timed), smoke over SMTP, down leaves nothing behind.

This cycles the shared demo lab (tests/lab/lab.sh); a lab that is already up (a demo, a bench) is
left alone and the test is skipped.
"""

import os
import re
import shutil
import subprocess
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LAB = os.path.join(ROOT, "tests", "lab", "lab.sh")

pytestmark = pytest.mark.skipif(shutil.which("podman") is None or os.geteuid() != 0, reason="needs rootful podman (make setup installs it)")


def lab(*args, timeout=900):
    proc = subprocess.run([LAB] + list(args), capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, "lab.sh %s\n%s\n%s" % (" ".join(args), proc.stdout, proc.stderr)
    return proc.stdout + proc.stderr


def fleet_names():
    with open(LAB) as handle:
        block = re.search(r"^FLEET=\((.*?)^\)", handle.read(), re.S | re.M).group(1)
    return re.findall(r'^\s*"(\S+) ', block, re.M)


def podman_lines(*args):
    out = subprocess.run(["podman"] + list(args), capture_output=True, text=True, check=True).stdout
    return set(out.split())


def lab_sink_pids():
    """Host PIDs of the canary sink processes in this lab's prober container."""
    out = subprocess.run(["podman", "top", "prober", "hpid", "args"], capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 1) for line in out.splitlines()[1:]]
    return [int(pid) for pid, args in rows if pid.isdigit() and "canary" in args]


def test_lab_up_smoke_down_leaves_nothing():
    names = fleet_names()
    assert {"prober", "mx1", "exim1", "legacy1"} <= set(names)
    running = set(names) & podman_lines("ps", "-a", "--format", "{{.Names}}")
    if running:
        # Somebody's lab (make demo, a bench): this test would replace and remove it. Stop only what you started.
        pytest.skip("the demo lab is up (%s), started by someone else: not cycled" % ", ".join(sorted(running)))
    lab("up")
    started = time.monotonic()
    lab("up")  # images cached, containers replaced
    second = time.monotonic() - started
    print("second lab start with cached images: %.1f s (target < 15 s)" % second)

    smoke = lab("smoke")
    for name in names:
        if name != "prober":
            assert name in smoke, smoke

    sink_pids = lab_sink_pids()
    assert sink_pids, "the lab's prober runs no canary sink"
    lab("down", "lab")
    assert not set(names) & podman_lines("ps", "-a", "--format", "{{.Names}}")
    assert "mailsec-lab" not in podman_lines("network", "ls", "--format", "{{.Name}}")
    # The canary sink ran inside the lab's prober: none of its processes may survive on the host. Only
    # this lab's own processes count (the zoo and Molecule run canary sinks of their own).
    assert not [pid for pid in sink_pids if os.path.exists("/proc/%d" % pid)], sink_pids
