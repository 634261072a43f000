# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/verify end to end: a tiny playbook on localhost probes an in-process fake SMTP server.

The same policy (relay refused from 127.0.0.1: loopback not trusted) is verified against the probe
tests' fake server refusing foreign recipients (the role must pass) and accepting every recipient
(the role must fail the host, naming the probe, the port and the reply). Only 127.0.0.1 is contacted.
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
if not os.path.exists(os.path.join(REPO, "plugins", "modules", "relay_probe.py")):
    pytest.skip("mailsec.relay.relay_probe is not there yet", allow_module_level=True)

# The probe engine's fake SMTP server (tests/unit/smtp/fakesmtp.py, owned by the probe tests).
sys.path.insert(0, os.path.join(REPO, "tests", "unit", "smtp"))
import fakesmtp  # noqa: E402


@pytest.fixture
def fake_smtp(request, tmp_path):
    """An MX listener (STARTTLS offered) on 127.0.0.1 in a background event loop; yields its port."""
    context = fakesmtp.server_context(*fakesmtp.make_cert(str(tmp_path)))
    server = fakesmtp.FakeSMTP(fakesmtp.Behaviour(relay=request.param, local_domains=("example.test",)), context)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start("127.0.0.1"), loop).result(10)
    try:
        yield server.port
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def run_verify(tmp_path, port):
    inventory = {
        "all": {
            "hosts": {
                "fake": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "mailsec_relay_profile": "mx",
                    "mailsec_relay_hostname": "mx.example.test",
                    "mailsec_relay_local_domains": ["example.test"],
                    "mailsec_relay_trust_loopback": False,
                    "mailsec_relay_tls_selfsigned": True,
                    "mailsec_relay_listeners": [
                        {"name": "smtp", "address": "*", "port": port, "role": "mx", "tls": "starttls"}
                    ],
                    "verify_addresses": ["127.0.0.1"],
                }
            }
        }
    }
    playbook = [
        {
            "name": "Verify the fake server",
            "hosts": "fake",
            "gather_facts": False,
            "roles": [
                {
                    "role": "mailsec.relay.verify",
                    "vars": {
                        "verify_prober": "localhost",
                        "verify_vantages": [{"name": "loopback", "source_address": "127.0.0.1"}],
                        "verify_probes": ["T01", "T11", "T13"],
                        "verify_timeout": 3,
                        "verify_retries": 0,
                        "verify_report_dir": str(tmp_path / "reports"),
                    },
                }
            ],
        }
    ]
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "verify.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
         str(tmp_path / "verify.yml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    reports = tmp_path / "reports"
    report = json.loads((reports / "verify.json").read_text()) if (reports / "verify.json").exists() else None
    plan = json.loads((reports / "verify-plan.json").read_text()) if (reports / "verify-plan.json").exists() else None
    return proc, report, plan


@pytest.mark.parametrize("fake_smtp", ["refuse"], indirect=True)
def test_role_passes_a_closed_relay(tmp_path, fake_smtp):
    proc, report, plan = run_verify(tmp_path, fake_smtp)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert report["hosts"]["fake"]["PASS"] > 0 and report["hosts"]["fake"]["FAIL"] == 0
    assert {row["probe"] for row in report["findings"]} >= {"T01", "T11", "T13"}
    assert (tmp_path / "reports" / "verify.xml").exists() and (tmp_path / "reports" / "verify.md").exists()
    # Loopback is not trusted by this policy: the prober at 127.0.0.1 must be refused.
    assert plan["plan"][0]["targets"][0]["listeners"][0]["relay"] == "refused"
    assert plan["hosts"]["fake"]["counts"].get("FAIL", 0) == 0


@pytest.mark.parametrize("fake_smtp", ["accept"], indirect=True)
def test_role_fails_an_open_relay_and_names_the_finding(tmp_path, fake_smtp):
    proc, report, plan = run_verify(tmp_path, fake_smtp)
    assert proc.returncode != 0
    assert "fake: " in proc.stdout and "FAIL verdict(s) from live SMTP probes" in proc.stdout, proc.stdout[-4000:]
    assert "FAIL T11/P02" in proc.stdout and "port %d: RCPT reply 250" % fake_smtp in proc.stdout
    assert report["hosts"]["fake"]["FAIL"] > 0
    assert plan["hosts"]["fake"]["worst"].startswith("T11/")
