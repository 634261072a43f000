# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/host_state.py: the one read the postfix, exim and dovecot roles make per run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from unittest import mock

import pytest

from ansible_collections.mailsec.relay.plugins.action import host_state as action

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "plugins", "module_utils", "host_state.py")


def read_state(spec):
    proc = subprocess.run([sys.executable, SCRIPT, json.dumps(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=True)
    return json.loads(proc.stdout)


def test_files_and_commands(tmp_path):
    present = tmp_path / "main.cf"
    present.write_text("a = b\nc = d\n")
    present.chmod(0o640)
    state = read_state(
        {
            "files": [str(present), str(tmp_path / "missing")],
            "commands": {
                "ok": ["true"],
                "down": ["false"],
                "absent": [str(tmp_path / "no-such-binary")],
                "version": [sys.executable, "-c", "print(' 3.7.11 ')"],
            },
        }
    )
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


# -- what replaces fact gathering ------------------------------------------------------------------
def _load():
    sys.path.insert(0, os.path.dirname(SCRIPT))
    try:
        import host_state
    finally:
        sys.path.pop(0)
    return host_state


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
            {"distribution": "Debian", "major_version": "12", "family": "Debian", "codename": None},
        ),
        (
            'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n',
            {"distribution": "Debian", "major_version": "13", "family": "Debian", "codename": "trixie"},
        ),
        ('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n', {"distribution": "Ubuntu", "major_version": "24", "family": "Debian", "codename": None}),
        ('ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n', {"distribution": "Rocky", "major_version": "9", "family": "RedHat", "codename": None}),
        ("ID=alpine\nVERSION_ID=3.20.1\n", {"distribution": "Alpine", "major_version": "3", "family": "Alpine", "codename": None}),
    ],
)
def test_os_release_names_the_platform_as_facts_would(tmp_path, text, expected):
    path = tmp_path / "os-release"
    path.write_text(text)
    assert _load().os_release(str(path)) == expected


def test_os_release_missing_file(tmp_path):
    assert _load().os_release(str(tmp_path / "none")) == {"distribution": None, "major_version": None, "family": None, "codename": None}


ROUTE_HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"


def test_default_ipv4_without_default_route_is_none(tmp_path):
    table = tmp_path / "route"
    table.write_text(ROUTE_HEADER + "eth0\t0064A8C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    assert _load().default_ipv4(str(table)) is None


def test_default_ipv4_takes_the_lowest_metric_default_route(tmp_path):
    # "lo" always has 127.0.0.1, so the interface lookup is real without touching the host's routes.
    table = tmp_path / "route"
    table.write_text(
        ROUTE_HEADER + "nosuch0\t00000000\t010264C6\t0003\t0\t0\t200\t00000000\t0\t0\t0\n" + "lo\t00000000\t010264C6\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    )
    assert _load().default_ipv4(str(table)) == "127.0.0.1"
    table.write_text(ROUTE_HEADER + "nosuch0\t00000000\t010264C6\t0003\t0\t0\t100\t00000000\t0\t0\t0\n")
    assert _load().default_ipv4(str(table)) is None


def test_read_reports_os_and_default_address():
    state = read_state({})
    assert set(state) == {"packages", "files", "commands", "os", "default_ipv4", "versions", "records"}
    assert state["os"]["family"]  # this machine has an /etc/os-release


def test_action_sends_the_reader_inline_in_one_command(monkeypatch):
    """One remote command, the reader's own source as -c, the spec as one argv word; parsed JSON back."""
    import shlex

    sent = []

    class Task:
        args = {"packages": ["postfix"], "files": ["/etc/postfix/main.cf"], "commands": {"status": ["postfix", "status"]}}
        check_mode = True
        async_val = 0

    plugin = action.ActionModule.__new__(action.ActionModule)
    plugin._task = Task()
    plugin._templar = type("T", (), {"template": staticmethod(lambda v: v)})()
    monkeypatch.setattr(action.ActionBase, "run", lambda self, tmp=None, task_vars=None: {})

    def execute(command, sudoable=False):
        sent.append(command)
        argv = shlex.split(command)
        # Run what would run on the host, here: proves the inline source is a working script.
        proc = subprocess.run([sys.executable] + argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
        return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}

    plugin._low_level_execute_command = execute
    result = plugin.run(task_vars={"ansible_python_interpreter": "/usr/bin/python3"})
    assert len(sent) == 1
    argv = shlex.split(sent[0])
    assert argv[:2] == ["/usr/bin/python3", "-c"] and json.loads(argv[3]) == dict(Task.args, versions=[], records={})
    assert result["changed"] is False
    assert result["files"]["/etc/postfix/main.cf"]["exists"] == os.path.exists("/etc/postfix/main.cf")
    assert result["commands"]["status"]["rc"] in (0, 1, 127) and "os" in result


def test_action_refuses_a_command_that_is_not_an_argv():
    from ansible.errors import AnsibleActionFail

    class Task:
        args = {"commands": {"status": "postfix status"}}

    plugin = action.ActionModule.__new__(action.ActionModule)
    plugin._task = Task()
    with pytest.raises(AnsibleActionFail, match="commands.status: expected an argv list"):
        with mock.patch.object(action.ActionBase, "run", lambda self, tmp=None, task_vars=None: {}):
            plugin.run(task_vars={})


# -- daemon versions: what the renderers gate on ---------------------------------------------------
def _fake_bin(directory, name, output):
    path = directory / name
    path.write_text("#!/bin/sh\nprintf '%s\\n' " + json.dumps(output).replace("$", "\\$") + "\n")
    path.chmod(0o755)


# Outputs as the stock Debian 12 and 13 packages print them.
@pytest.mark.parametrize(
    "fakes, expected",
    [
        (
            {
                "postconf": "3.7.11",
                "exim4": "Exim version 4.96 #2 built 21-Sep-2024 12:00:00\nCopyright (c) University of Cambridge",
                "dovecot": "2.3.19.1 (9b53102964)",
            },
            {"postfix": "3.7.11", "exim": "4.96", "dovecot": "2.3.19.1"},
        ),
        (
            {"postconf": "3.10.5", "exim4": "Exim version 4.98.2 #2 built 12-Jul-2025 10:00:00", "dovecot": "2.4.1-4 (7d8c0e5759)"},
            {"postfix": "3.10.5", "exim": "4.98.2", "dovecot": "2.4.1"},
        ),
    ],
)
def test_versions_are_read_from_the_daemons(tmp_path, monkeypatch, fakes, expected):
    for name, output in fakes.items():
        _fake_bin(tmp_path, name, output)
    monkeypatch.setenv("PATH", str(tmp_path))
    host_state = _load()
    assert host_state.read({"versions": ["postfix", "exim", "dovecot"]})["versions"] == expected


def test_versions_of_missing_daemons_are_none(tmp_path, monkeypatch):
    _fake_bin(tmp_path, "postconf", "postconf: fatal: no such thing")  # answers, but no version
    monkeypatch.setenv("PATH", str(tmp_path))
    assert _load().read({"versions": ["postfix", "exim", "dovecot"]})["versions"] == {"postfix": None, "exim": None, "dovecot": None}


def test_versions_refuse_an_unknown_daemon():
    with pytest.raises(ValueError, match="sendmail"):
        _load().read({"versions": ["sendmail"]})


def test_apply_record_is_intact_until_any_recorded_file_changes(tmp_path):
    """write_record/check_record: the digest comes back; content, mode, presence or a rewrite break it."""
    state = _load()
    main_cf, table, absent = tmp_path / "main.cf", tmp_path / "t.cidr", tmp_path / "exim4.conf"
    main_cf.write_text("a = b\n")
    table.write_text("203.0.113.1 REJECT\n")
    record = str(tmp_path / "lib" / "postconf.json")
    state.write_record(record, "d1", [str(main_cf), str(table), str(absent)])
    assert oct(os.stat(record).st_mode & 0o777) == "0o600"
    assert state.check_record(record) == {"digest": "d1", "intact": True}
    assert read_state({"records": {"postconf": record}})["records"] == {"postconf": {"digest": "d1", "intact": True}}
    table.chmod(0o600)
    assert state.check_record(record)["intact"] is False
    table.chmod(0o644)
    state.write_record(record, "d1", [str(main_cf), str(table), str(absent)])
    absent.write_text("")  # a file the plan reads appears
    assert state.check_record(record)["intact"] is False
    absent.unlink()
    assert state.check_record(record)["intact"] is True
    stat = os.stat(str(main_cf))
    main_cf.write_text("a = c\n")  # same size, other content, mtime put back
    os.utime(str(main_cf), ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert state.check_record(record)["intact"] is False
    main_cf.write_text("a = b\n")  # same bytes again, but rewritten: strict, never a false "unchanged"
    assert state.check_record(record)["intact"] is False
    state.remove_record(record)
    assert state.check_record(record) == {"digest": None, "intact": False}
    with open(record, "w") as handle:
        handle.write("{not json")
    assert state.check_record(record) == {"digest": None, "intact": False}


def test_action_refuses_a_relative_record_path():
    from ansible.errors import AnsibleActionFail

    class Task:
        args = {"records": {"postconf": "postconf.json"}}
        check_mode = False
        async_val = 0

    plugin = action.ActionModule.__new__(action.ActionModule)
    plugin._task = Task()
    with mock.patch.object(action.ActionBase, "run", lambda self, tmp=None, task_vars=None: {}):
        with pytest.raises(AnsibleActionFail, match="records.postconf"):
            plugin.run(task_vars={})
