# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared OS prelude (roles/platform): a caller role gets its own family and release
variables, and an unsupported platform is refused with one message naming the releases."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RELEASES = {"12": "Debian 12 (bookworm)", "13": "Debian 13 (trixie)"}


def caller_role(roles):
    """A role shaped like postfix/exim/dovecot: vars/Debian.yml, vars/Debian-12.yml, the two includes."""
    role = roles / "caller"
    (role / "vars").mkdir(parents=True)
    (role / "tasks").mkdir()
    (role / "vars" / "Debian.yml").write_text(yaml.safe_dump({"caller_vars_family": "Debian", "caller_supported_releases": RELEASES}))
    (role / "vars" / "Debian-12.yml").write_text(yaml.safe_dump({"caller_release_value": "bookworm-only"}))
    tasks = [
        {"name": "Family", "ansible.builtin.include_role": {"name": "mailsec.relay.platform", "tasks_from": "family"}},
        {
            "name": "Platform",
            "ansible.builtin.include_role": {"name": "mailsec.relay.platform"},
            "vars": {
                "platform_os": "{{ caller_os }}",
                "platform_family": "{{ caller_vars_family }}",
                "platform_releases": "{{ caller_supported_releases }}",
                "platform_role": "mailsec.relay.caller",
            },
        },
        {"name": "Show", "ansible.builtin.debug": {"msg": "release value {{ caller_release_value }}"}},
    ]
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump(tasks))


def test_platform_prelude_loads_the_callers_variables_and_refuses_others(tmp_path):
    ansible_playbook = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) or shutil.which("ansible-playbook")
    if not ansible_playbook:
        pytest.skip("ansible-playbook not installed")
    namespace = tmp_path / "collections" / "ansible_collections" / "mailsec"
    namespace.mkdir(parents=True)
    (namespace / "relay").symlink_to(REPO)
    caller_role(tmp_path / "roles")
    debian = {"family": "Debian", "distribution": "Debian", "major_version": "12"}
    inventory = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "hosts": {
                "bookworm.example.test": {"caller_os": debian},
                "ubuntu.example.test": {"caller_os": dict(debian, distribution="Ubuntu", major_version="24")},
                "buster.example.test": {"caller_os": dict(debian, major_version="10")},
            },
        }
    }
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{"name": "Caller", "hosts": "all", "gather_facts": False, "roles": ["caller"]}]))
    (tmp_path / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = False\nroles_path = %s\n" % (tmp_path / "roles"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"), ANSIBLE_NOCOLOR="1")
    run = subprocess.run([ansible_playbook, "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    output = run.stdout + run.stderr
    assert "release value bookworm-only" in output, output
    assert re.search(r"bookworm\.example\.test\s*:.*failed=0", output), output
    refusal = "mailsec.relay.caller supports Debian 12 (bookworm) and Debian 13 (trixie) only;"
    assert refusal in output, output
    assert "ubuntu.example.test runs Ubuntu 24 (Debian family)" in output and "buster.example.test runs Debian 10" in output
    assert re.search(r"ubuntu\.example\.test\s*:.*failed=1", output) and re.search(r"buster\.example\.test\s*:.*failed=1", output), output
