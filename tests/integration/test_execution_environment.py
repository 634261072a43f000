# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""execution-environment.yml: `ansible-builder create` writes a build context (no registry needed)
with a configurable base image, netaddr, and this collection installed from its built tarball."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)


def tool(name):
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else shutil.which(name)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    if not tool("ansible-builder"):
        pytest.skip("ansible-builder is not installed (requirements/test.txt)")
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(os.path.join(ROOT, "execution-environment.yml"), str(work))
    shutil.copytree(os.path.join(ROOT, "requirements"), str(work / "requirements"))
    subprocess.run(
        [tool("ansible-galaxy"), "collection", "build", "--output-path", str(work / "build"), "--force", ROOT],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    proc = subprocess.run(
        [tool("ansible-builder"), "create", "--file", "execution-environment.yml", "--context", str(work / "context"), "--output-filename", "Containerfile"],
        cwd=str(work),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work / "context"


def test_base_image_is_a_build_argument(context):
    text = (context / "Containerfile").read_text()
    assert "ARG EE_BASE_IMAGE=" in text
    assert "FROM $EE_BASE_IMAGE" in text


def test_python_requirements_carry_netaddr(context):
    assert "netaddr>=1.3,<1.4" in (context / "_build" / "requirements.txt").read_text()


def test_collection_installed_from_the_built_tarball(context):
    tarballs = list((context / "_build" / "collections").glob("mailsec-relay-*.tar.gz"))
    assert len(tarballs) == 1
    with tarfile.open(str(tarballs[0])) as archive:
        names = set(archive.getnames())
    assert {"plugins/modules/mta_facts.py", "plugins/callback/fleet_report.py", "playbooks/drift.yml"} <= names
    assert not any(name.startswith((".venv/", ".cache/")) for name in names)
    text = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install --offline /tmp/mailsec-collections/mailsec-relay-" in text
