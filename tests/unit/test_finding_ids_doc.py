# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/verify.md documents every finding id of findings.CATALOG (the ids are a stable interface)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "tests", "docs", "finding_ids.py")
sys.path.insert(0, os.path.join(ROOT, "tests", "docs"))
import finding_ids  # noqa: E402


def test_doc_table_is_generated_from_the_catalogue():
    proc = subprocess.run([sys.executable, SCRIPT, "--check"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_id_and_severity_in_the_doc():
    with open(finding_ids.DOC, encoding="utf-8") as handle:
        text = handle.read()
    section = text.split(finding_ids.START, 1)[1].split(finding_ids.END, 1)[0]
    for name, (severity, unused) in finding_ids.findings.CATALOG.items():
        assert "| `%s` | %s |" % (name, severity) in section
    assert section.count("| `") == len(finding_ids.findings.CATALOG)


def test_render_detects_drift_and_missing_markers():
    stale = "intro\n%s\n| `old` | low | gone |\n%s\nrest\n" % (finding_ids.START, finding_ids.END)
    rendered = finding_ids.render(stale)
    assert "`old`" not in rendered and "`open_relay`" in rendered and rendered.endswith("rest\n")
    with pytest.raises(ValueError):
        finding_ids.render("no markers here")
