# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/benchlib.TreeMemory: the tree's summed RSS peak is seen, and PSS stays within it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import benchlib  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux /proc")

# A child that holds 64 MiB of touched memory, says so, then waits to be told to go.
HOLDER = "import sys; b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); print('ok', flush=True); sys.stdin.read()"


def test_tree_peak_includes_a_child_and_pss_stays_within_rss():
    runner = "import subprocess, sys; subprocess.run([sys.executable, '-c', sys.argv[1]])"
    parent = subprocess.Popen([sys.executable, "-c", runner, HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert parent.stdout.readline().strip() == b"ok"  # the child holds its memory now
        memory = benchlib.TreeMemory(parent.pid)
        memory.sample()
        figures = memory.figures()
    finally:
        parent.stdin.close()
        parent.wait(timeout=30)
    assert figures["tree_processes"] == 2  # the root and the child holding the memory
    assert figures["tree_rss_mib"] >= 64
    assert 64 <= figures["tree_pss_mib"] <= figures["tree_rss_mib"]


def test_pss_is_read_again_only_at_a_new_rss_peak(monkeypatch):
    memory = benchlib.TreeMemory(os.getpid())
    memory.sample()
    first_pss = memory.peak_pss
    assert first_pss > 0
    memory.peak_rss *= 4  # pretend an earlier sample saw far more: this one is no new peak
    opened = []
    real_open = open

    def spying_open(path, *args, **kwargs):
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spying_open)
    memory.sample()
    assert not [path for path in opened if path.endswith("smaps_rollup")]
    assert [path for path in opened if path.endswith("statm")]
    assert memory.samples == 2 and memory.peak_pss == first_pss
