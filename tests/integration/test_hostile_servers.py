# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hostile SMTP servers probed through the real modules (issue 12, "Must show").

A playbook on localhost runs mailsec.relay.relay_probe (with -vvv and --diff) against a set of
hostile fake servers on 127.0.0.1 - an open relay, an open relay with a 10,000-line EHLO reply, an
open relay that greets 554 and then accepts every command, an open relay that answers every reply
just under the timeout, and submission listeners that echo the AUTH token back in pieces - then
writes the registered result to a file and the JSON/JUnit/Markdown reports (mailsec.relay.relay_report).
No open relay may be PASS, and no form of the password (plain, base64, or a 4-character piece of
either) may appear in stdout, stderr, the registered result, the reports, or any file the run
leaves in its temp directories. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "unit", "smtp"))
import hostilesmtp  # noqa: E402

from smtp_fakes import fakesmtp  # noqa: E402

# The password comes to the playbook through the environment: no file the test writes holds it.
USER, PASSWORD = "qa-user", "Qz9vK2wXr7TjLp5N"
TIMEOUT = 1.0
RELAYS = ("open_relay", "huge_ehlo", "greets_554", "slow_replies")


@pytest.fixture
def hostile_fleet(tmp_path):
    """{name: server} on 127.0.0.1, served from a background event loop."""
    (tmp_path / "cert").mkdir()
    context = fakesmtp.server_context(*fakesmtp.make_cert(str(tmp_path / "cert")))

    def server(role="mx", relay="accept", implicit=False, **hostility):
        behaviour = fakesmtp.Behaviour(role=role, relay=relay, users={USER: PASSWORD})
        return hostilesmtp.HostileSMTP(behaviour, context if implicit else None, implicit, hostilesmtp.Hostility(**hostility))

    fleet = {
        "open_relay": server(),
        "huge_ehlo": server(ehlo_lines=10000),
        "greets_554": server(greeting_code=554),
        "slow_replies": server(reply_delay=TIMEOUT * 0.7),
        "echo_auth": server(role="submission", relay="refuse", implicit=True, echo_auth=True),
        "echo_auth_2": server(role="submission", relay="refuse", implicit=True, echo_auth=True),
    }
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    for each in fleet.values():
        asyncio.run_coroutine_threadsafe(each.start("127.0.0.1"), loop).result(10)
    try:
        yield fleet
    finally:
        for each in fleet.values():
            asyncio.run_coroutine_threadsafe(each.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _listener(server, **extra):
    item = {"port": server.port, "role": server.b.role, "tls": "implicit" if server.implicit else "none"}
    item.update(extra)
    return item


def _target(name, listeners):
    return {
        "name": name,
        "addresses": ["127.0.0.1"],
        "hostname": "mx.example.test",
        "local_domains": ["example.test"],
        "listeners": listeners,
        "auth": {"username": USER, "password": "{{ lookup('ansible.builtin.env', 'HOSTILE_TEST_PASSWORD') }}"},
    }


def _playbook(fleet, out):
    fast = [_listener(fleet[name]) for name in ("open_relay", "huge_ehlo", "greets_554")]
    fast += [_listener(fleet[name]) for name in ("echo_auth", "echo_auth_2")]
    # results: full - every PASS in the registered result (compact would fold them into aggregates)
    common = {"retry_delay": 0.05, "transcripts": "all", "vantage": "loopback", "results": "full"}
    return [
        {
            "name": "Probe hostile servers",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Probe the fast hostile servers",
                    "mailsec.relay.relay_probe": dict(common, targets=[_target("hostile", fast)], timeout=3, greeting_timeout=3),
                    "register": "fast",
                },
                {
                    "name": "Probe the server that answers just under the timeout",
                    "mailsec.relay.relay_probe": dict(
                        common, targets=[_target("slow", [_listener(fleet["slow_replies"])])], timeout=TIMEOUT, greeting_timeout=TIMEOUT, probes=["T11", "T20"]
                    ),
                    "register": "slow",
                },
                {"name": "Show the result (-vvv prints it again)", "ansible.builtin.debug": {"var": "fast"}},
                {
                    "name": "Keep the registered results",
                    "ansible.builtin.copy": {
                        "content": "{{ {'fast': fast, 'slow': slow} | to_nice_json }}",
                        "dest": str(out / "registered.json"),
                        "mode": "0600",
                    },
                },
                {
                    "name": "Write the reports",
                    "mailsec.relay.relay_report": {"results": "{{ fast.results + slow.results }}", "dest_dir": str(out / "reports"), "name": "hostile"},
                },
            ],
        }
    ]


def test_hostile_servers_never_pass_and_never_leak(tmp_path, hostile_fleet):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "play.yml").write_text(yaml.safe_dump(_playbook(hostile_fleet, out), sort_keys=False))
    temps = {name: tmp_path / name for name in ("local-tmp", "remote-tmp")}
    for path in temps.values():
        path.mkdir()
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        HOSTILE_TEST_PASSWORD=PASSWORD,
        ANSIBLE_LOCAL_TEMP=str(temps["local-tmp"]),
        ANSIBLE_REMOTE_TEMP=str(temps["remote-tmp"]),
        ANSIBLE_LOG_PATH=str(tmp_path / "ansible.log"),
    )
    proc = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=%s" % sys.executable,
            "-vvv",
            "--diff",
            str(tmp_path / "play.yml"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]

    registered = json.loads((out / "registered.json").read_text())
    results = registered["fast"]["results"] + registered["slow"]["results"]
    port_of = {name: server.port for name, server in hostile_fleet.items()}
    for name in RELAYS:
        mine = [r for r in results if r["port"] == port_of[name]]
        relay = [r for r in mine if r["probe"] in ("T11", "T12", "T15", "T20")]
        assert relay, name
        assert [r for r in relay if r["verdict"] == "PASS"] == [], name  # an open relay is never PASS
        verdicts = {(r["probe"], r["case"]): r["verdict"] for r in mine}
        assert verdicts[("T11", "P02")] == "FAIL" and verdicts[("T20", "loopback")] == "FAIL", (name, verdicts)
    # the echoing servers were really hostile: they sent pieces back, and got real credentials (T09)
    assert hostile_fleet["echo_auth"].echoed and hostile_fleet["echo_auth_2"].echoed
    t09 = [r for r in results if r["probe"] == "T09"]
    assert len(t09) == 2 and all(r["verdict"] == "PASS" for r in t09)

    whole, pieces = hostilesmtp.secret_forms(USER, PASSWORD)
    assert len(pieces) > 20
    texts = {"stdout": proc.stdout, "stderr": proc.stderr}
    for root, unused_dirs, files in os.walk(tmp_path):
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".pem"):
                continue  # the fake servers' certificate and key
            with open(path, "rb") as handle:
                texts[os.path.relpath(path, tmp_path)] = handle.read().decode("latin-1")
    assert {"out/registered.json", "out/reports/hostile.json", "out/reports/hostile.xml", "out/reports/hostile.md", "ansible.log"} <= set(texts)
    leaks = [(where, form) for where, text in texts.items() for form in whole + pieces if form in text]
    assert leaks == []
    assert "(reply text to AUTH not stored)" in texts["out/registered.json"]
