# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection installs the normal way: build a tarball, install it offline, list its plugins."""

import os
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)
MODULES = {"postconf", "exim_config", "relay_probe", "relay_policy", "relay_report", "mta_facts"}
FILTERS = {"postfix_settings", "exim_settings", "probe_targets"}


def run(argv, cwd, env=None):
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, "%s\n%s\n%s" % (" ".join(argv), proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collection")
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp), ROOT], cwd=ROOT)
    tarballs = sorted(tmp.glob("mailsec-relay-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    dest = tmp / "installed"
    # An empty ansible.cfg, not the checkout's (whose collections_path is the symlinked tree):
    # only what the tarball installs is found.
    cfg = tmp / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(dest), ANSIBLE_CONFIG=str(cfg))
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "-p", str(dest), str(tarballs[0])], cwd=str(tmp), env=env)
    return tarballs[0], dest, env


def test_tarball_holds_collection_content_only(installed):
    tarball = installed[0]
    with tarfile.open(str(tarball)) as archive:
        names = archive.getnames()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    for wanted in ("plugins/modules/postconf.py", "roles/postfix/meta/argument_specs.yml", "playbooks/site.yml", "meta/runtime.yml"):
        assert wanted in names
    for unwanted in (".venv/", ".cache/", "tests/lab/", "molecule/", "bench/", ".git/"):
        assert not [n for n in names if n.startswith(unwanted)], unwanted


def test_installed_collection_lists_its_plugins(installed):
    _tarball, dest, env = installed
    assert (dest / "ansible_collections" / "mailsec" / "relay" / "MANIFEST.json").is_file()
    doc = os.path.join(BIN, "ansible-doc")
    listed = run([doc, "-l", "mailsec.relay"], cwd=str(dest), env=env)
    names = {line.split()[0].rsplit(".", 1)[-1] for line in listed.splitlines() if line.startswith("mailsec.relay.")}
    assert MODULES <= names, listed
    listed = run([doc, "-t", "filter", "-l", "mailsec.relay"], cwd=str(dest), env=env)
    names = {line.split()[0].rsplit(".", 1)[-1] for line in listed.splitlines() if line.startswith("mailsec.relay.")}
    assert FILTERS <= names, listed
    assert "mailsec.relay.fleet_report" in run([doc, "-t", "callback", "-l", "mailsec.relay"], cwd=str(dest), env=env)
    assert "mailsec_relay_networks" in run([doc, "-t", "role", "mailsec.relay.policy"], cwd=str(dest), env=env)
