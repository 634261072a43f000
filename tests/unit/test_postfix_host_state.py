# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/dovecot/files/host_state.py: the one read the postfix, exim and dovecot roles make per run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "dovecot", "files", "host_state.py")


def read_state(spec):
    proc = subprocess.run([sys.executable, SCRIPT, json.dumps(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=True)
    return json.loads(proc.stdout)


def test_files_and_commands(tmp_path):
    present = tmp_path / "main.cf"
    present.write_text("a = b\nc = d\n")
    present.chmod(0o640)
    state = read_state({"files": [str(present), str(tmp_path / "missing")],
                        "commands": {"ok": ["true"], "down": ["false"], "absent": [str(tmp_path / "no-such-binary")],
                                     "version": [sys.executable, "-c", "print(' 3.7.11 ')"]}})
    info = state["files"][str(present)]
    assert info["exists"] and info["mode"] == "0640" and info["lines"] == 2
    assert info["sha1"] == hashlib.sha1(b"a = b\nc = d\n").hexdigest()
    assert state["files"][str(tmp_path / "missing")] == {"exists": False}
    # A command's exit status is the answer (running or not), never an error of the read.
    assert state["commands"]["ok"]["rc"] == 0
    assert state["commands"]["down"]["rc"] == 1
    assert state["commands"]["absent"] == {"rc": 127, "stdout": ""}
    assert state["commands"]["version"]["stdout"] == "3.7.11"
    assert state["packages"] == {}


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg")
def test_unknown_packages_count_as_missing():
    state = read_state({"packages": ["mailsec-no-such-package"]})
    assert state["packages"] == {"mailsec-no-such-package": False}
