# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""relay_probe and relay_report run in the controller's process on a local connection (their action
plugins) and as modules otherwise. Both paths must give the same answer: each task runs once each
way in one playbook on localhost (``async`` sends relay_probe through the module, a symbolic
``mode`` sends relay_report through it), against the in-process fake SMTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, REPO)
from smtp_fakes import fakesmtp  # noqa: E402

SECRET = "never-in-a-result-7f3a"


@pytest.fixture
def open_relay(tmp_path):
    """An MX listener on 127.0.0.1 that accepts every recipient (findings to compare); yields its port."""
    context = fakesmtp.server_context(*fakesmtp.make_cert(str(tmp_path)))
    with fakesmtp.in_background(fakesmtp.FakeSMTP(fakesmtp.Behaviour(local_domains=("example.test",), relay="accept"), context)) as port:
        yield port


def playbook(port, out):
    probe_args = {
        "targets": [
            {
                "name": "fake",
                "addresses": ["127.0.0.1"],
                "hostname": "mx.example.test",
                "local_domains": ["example.test"],
                "listeners": [{"port": port, "role": "mx", "tls": "starttls"}],
                "auth": {"username": "probe", "password": SECRET},
            }
        ],
        "source_address": ["127.0.0.1"],
        "vantage": "loopback",
        "probes": ["T01", "T11", "T13"],
        "timeout": 3,
        "retries": 0,
        "results": "full",
    }
    report_args = {"results": "{{ here.results }}", "hosts": ["fake"], "name": "verify", "title": "paths"}
    return [
        {
            "name": "Both paths of relay_probe and relay_report",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": "In process", "mailsec.relay.relay_probe": probe_args, "register": "here"},
                {"name": "As a module", "mailsec.relay.relay_probe": probe_args, "async": 120, "poll": 1, "register": "shipped"},
                {
                    "name": "Report in process",
                    "mailsec.relay.relay_report": dict(report_args, dest_dir=out + "/here", mode="0640"),
                    "register": "report_here",
                },
                {
                    "name": "Report as a module",
                    "mailsec.relay.relay_report": dict(report_args, dest_dir=out + "/shipped", mode="u=rw,g=r,o="),
                    "register": "report_shipped",
                },
                {
                    "name": "Report in process again (nothing changed)",
                    "mailsec.relay.relay_report": dict(report_args, dest_dir=out + "/here", mode="0640"),
                    "register": "report_again",
                },
                {
                    "name": "Report in process, check mode, other title",
                    "mailsec.relay.relay_report": dict(report_args, dest_dir=out + "/here", mode="0640", title="other"),
                    "check_mode": True,
                    "register": "report_check",
                },
                {
                    "name": "Keep what each path returned",
                    "ansible.builtin.copy": {
                        "dest": out + "/returned.json",
                        "content": "{{ {'here': here, 'shipped': shipped, 'report_here': report_here, 'report_shipped': report_shipped, "
                        "'report_again': report_again, 'report_check': report_check} | to_json }}",
                    },
                },
            ],
        }
    ]


def verdicts(result):
    return sorted((r["target"], r["port"], r["probe"], r.get("case") or "", r["verdict"], r.get("finding") or "") for r in result["results"])


def test_in_process_and_module_paths_agree(tmp_path, open_relay):
    out = str(tmp_path)
    (tmp_path / "play.yml").write_text(yaml.safe_dump(playbook(open_relay, out), sort_keys=False))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            *("-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable),
            str(tmp_path / "play.yml"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (tmp_path / "returned.json").read_text()
    assert SECRET not in text and SECRET not in proc.stdout
    got = json.loads(text)
    here, shipped = got["here"], got["shipped"]
    assert "ansible_job_id" in shipped and "ansible_job_id" not in here  # the two paths really differ
    assert verdicts(here) == verdicts(shipped)
    assert any(row[4] == "FAIL" for row in verdicts(here))  # the open relay is found on both paths
    for key in ("targets", "results", "PASS", "FAIL", "WARN", "INCONCLUSIVE", "SKIP"):
        assert here["summary"][key] == shipped["summary"][key], key

    # relay_report: same files and mode either way; idempotent; check mode writes nothing
    for name in ("verify.json", "verify.xml", "verify.md"):
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "shipped" / name).read_bytes(), name
        for side in ("here", "shipped"):
            assert stat.S_IMODE(os.stat(tmp_path / side / name).st_mode) == 0o640, (side, name)
    assert got["report_here"]["changed"] and got["report_shipped"]["changed"]
    assert got["report_here"]["totals"] == got["report_shipped"]["totals"]
    assert got["report_again"]["changed"] is False and got["report_again"]["changed_files"] == []
    assert got["report_check"]["changed"] and "paths" in (tmp_path / "here" / "verify.md").read_text()
