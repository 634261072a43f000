# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every invalid policy of the unit suite is refused by the Postfix AND the Exim role, identically,
before the host is contacted (each host points at a port where nothing listens)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC = importlib.util.spec_from_file_location("policy_cases", os.path.join(ROOT, "tests", "unit", "test_policy.py"))


def invalid_cases():
    sys.path.insert(0, os.path.join(ROOT, "tests", "unit"))
    try:
        module = importlib.util.module_from_spec(SPEC)
        SPEC.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module.INVALID


def failures_for(role, cases, tmp_path):
    hosts = {}
    for case_id, variables, _variable, _text in cases:
        host = dict(variables)
        # Never contacted: the policy is refused on the controller first (port 1 refuses connections).
        host.update({"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1})
        hosts[case_id] = host
    inventory = tmp_path / ("%s.yml" % role)
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    play = tmp_path / ("%s-play.yml" % role)
    play.write_text(yaml.safe_dump([{"name": "Harden", "hosts": "all", "gather_facts": False, "roles": ["mailsec.relay.%s" % role]}]))
    env = dict(
        os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_PYTHON_INTERPRETER=sys.executable
    )
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory), str(play)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode != 0, proc.stdout[-2000:]
    report = json.loads(proc.stdout)
    stats = report["stats"]
    assert sorted(stats) == sorted(hosts)
    failed = {}
    for task in report["plays"][0]["tasks"]:
        for host, result in task["hosts"].items():
            assert not result.get("unreachable"), "%s was contacted by %s" % (host, task["task"]["name"])
            assert not result.get("changed"), host
            if result.get("failed"):
                # Ansible's own argument-spec message lists valid booleans in set order: cut it there.
                failed[host] = (task["task"]["name"], str(result.get("msg")).split("Valid booleans include")[0])
    return failed, stats


@pytest.mark.parametrize("roles", [("postfix", "exim")])
def test_invalid_policies_refused_identically_by_both_mtas(roles, tmp_path):
    cases = invalid_cases()
    assert len(cases) >= 30
    results = dict((role, failures_for(role, cases, tmp_path)) for role in roles)
    postfix_failed, postfix_stats = results["postfix"]
    exim_failed, _exim_stats = results["exim"]
    for case_id, _variables, variable, _text in cases:
        assert case_id in postfix_failed, "%s was not refused by the postfix role" % case_id
        assert postfix_failed[case_id] == exim_failed.get(case_id), case_id
        assert variable.split("[")[0] in str(postfix_failed[case_id][1]), postfix_failed[case_id]
        assert postfix_stats[case_id]["unreachable"] == 0 and postfix_stats[case_id]["changed"] == 0
