# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wall time of roles/verify over N fake MX hosts on 127.0.0.1 (test_verify_role.py's fake server).

Not a test (pytest does not collect it): `python tests/integration/measure_verify_role.py [hosts] [runs]`
prints the playbook's wall time, the engine's seconds (relay_probe summary) and the difference, the
controller's overhead. Two vantages (127.0.0.1, 127.0.0.2), all probes, no canary. Only loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The fake SMTP hosts shared by tests and benches (smtp_fakes/).
sys.path.insert(0, REPO)
from smtp_fakes import fakesmtp  # noqa: E402


def start_servers(count, workdir):
    context = fakesmtp.server_context(*fakesmtp.make_cert(workdir))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers = []
    for unused in range(count):
        server = fakesmtp.FakeSMTP(fakesmtp.Behaviour(relay="refuse", local_domains=("example.test",)), context)
        asyncio.run_coroutine_threadsafe(server.start("127.0.0.1"), loop).result(10)
        servers.append(server)
    return loop, thread, servers


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    workdir = tempfile.mkdtemp(prefix="verify-measure.")
    loop, thread, servers = start_servers(count, workdir)
    hosts = {}
    for index, server in enumerate(servers):
        hosts["fake%02d" % index] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "mailsec_relay_profile": "mx",
            "mailsec_relay_hostname": "mx%02d.example.test" % index,
            "mailsec_relay_local_domains": ["example.test"],
            "mailsec_relay_trust_loopback": False,
            "mailsec_relay_tls_selfsigned": True,
            "mailsec_relay_listeners": [{"name": "smtp", "address": "*", "port": server.port, "role": "mx", "tls": "starttls"}],
            "verify_addresses": ["127.0.0.1"],
        }
    playbook = [
        {
            "name": "Verify",
            "hosts": "all",
            "gather_facts": False,
            "roles": [
                {
                    "role": "mailsec.relay.verify",
                    "vars": {
                        "verify_prober": "localhost",
                        "verify_vantages": [{"name": "lo1", "source_address": "127.0.0.1"}, {"name": "lo2", "source_address": "127.0.0.2"}],
                        "verify_timeout": 3,
                        "verify_retries": 0,
                        "verify_report_dir": os.path.join(workdir, "reports"),
                    },
                }
            ],
        }
    ]
    with open(os.path.join(workdir, "inventory.yml"), "w") as handle:
        yaml.safe_dump({"all": {"hosts": hosts}}, handle)
    with open(os.path.join(workdir, "verify.yml"), "w") as handle:
        yaml.safe_dump(playbook, handle, sort_keys=False)
    env = dict(os.environ, **json.loads(os.environ.get("MEASURE_ENV", "{}")), ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    for run in range(runs):
        start = time.monotonic()
        proc = subprocess.run(
            [
                os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                "-i",
                os.path.join(workdir, "inventory.yml"),
                os.path.join(workdir, "verify.yml"),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - start
        engine = [float(s) for s in re.findall(r"results in ([0-9.]+) s", proc.stdout)]
        with open(os.path.join(workdir, "reports", "verify.json")) as handle:
            totals = json.load(handle)["totals"]
        print(
            "run %d: rc %d, %d hosts, wall %.2f s, engine per vantage %s s, overhead %.2f s, checks %d PASS %d FAIL %d"
            % (run, proc.returncode, count, wall, engine, wall - max(engine or [0]), totals["checks"], totals["PASS"], totals["FAIL"])
        )
        if proc.returncode or os.environ.get("MEASURE_SHOW"):
            print(proc.stdout[-3000:])
    for server in servers:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)


if __name__ == "__main__":
    main()
