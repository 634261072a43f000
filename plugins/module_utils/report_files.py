# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""relay_report's arguments and file writing, decided once for the module and its action plugin.

The module writes with AnsibleModule (atomic_move, any mode AnsibleModule understands); the action
plugin, when the report directory is on the controller itself, writes here without a module run
(the reports are rendered from megabytes of results that would otherwise be encoded to JSON for a
second Python). Both go through :func:`sync_files`, so "changed", check mode and diff mean the same.
No Ansible imports.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile

from ansible_collections.mailsec.relay.plugins.module_utils import report

ARGUMENT_SPEC = dict(
    results=dict(type="list", elements="dict", default=[]),
    findings=dict(type="list", elements="dict", default=[]),
    hosts=dict(type="list", elements="str", default=[]),
    dest_dir=dict(type="path", required=True),
    name=dict(type="str", default="mailsec-relay"),
    formats=dict(type="list", elements="str", choices=["json", "junit", "markdown"], default=["json", "junit", "markdown"]),
    title=dict(type="str", default="mailsec.relay report"),
    plan=dict(type="dict"),
    mode=dict(type="raw", default="0644"),
)


class ReportError(Exception):
    """Why the reports could not be written: the task's failure message."""


def write_reports(params, check_mode, want_diff, replace, set_mode):
    """Render the reports of validated arguments and bring each file to its content (see
    :func:`sync_files` for ``replace`` and ``set_mode``); returns relay_report's result.
    Raises ReportError for a name that is not a plain file name or a file that cannot be written."""
    if not params["name"] or os.sep in params["name"]:
        raise ReportError("name must be a plain file name without '%s'" % os.sep)
    files, per_host, totals = plan_files(params)
    try:
        changed, changed_files, diffs = sync_files(files, params["dest_dir"], check_mode, want_diff, replace, set_mode)
    except OSError as exc:
        raise ReportError("cannot write the reports in %s: %s" % (params["dest_dir"], exc)) from None
    paths = dict((fmt, path) for fmt, (path, _content) in files.items())
    result = dict(changed=changed, files=paths, changed_files=changed_files, totals=totals, hosts=per_host)
    if diffs:
        result["diff"] = diffs
    return result


def plan_files(params):
    """Validated arguments -> ``({format: (path, content)}, per_host, totals)``."""
    rows = report.collect(params["results"], params["findings"])
    per_host, totals = report.summarize(rows, params["hosts"])
    rendered = report.render(rows, params["title"], formats=list(dict.fromkeys(params["formats"])), hosts=params["hosts"])
    if params["plan"] is not None:
        rendered["plan"] = ("-plan.json", json.dumps(params["plan"], indent=4, sort_keys=True) + "\n")
    files = dict((fmt, (os.path.join(params["dest_dir"], params["name"] + suffix), content)) for fmt, (suffix, content) in rendered.items())
    return files, per_host, totals


def octal_mode(value):
    """``0644``, ``"0644"`` or ``"644"`` -> 0o644; None for anything else (a symbolic mode)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value <= 0o7777 else None
    text = str(value or "")
    if text.startswith("0o"):
        text = text[2:]
    if text and len(text) <= 5 and all(ch in "01234567" for ch in text):
        return int(text, 8)
    return None


def current(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def sync_files(files, dest_dir, check_mode, want_diff, replace, set_mode):
    """Bring each file to its content; returns ``(changed, changed_files, diffs)``.

    ``replace(temp, path)`` moves a written temporary file into place; ``set_mode(path, changed)``
    returns ``changed`` or True when it changed (or in check mode would change) the file's mode.
    In check mode nothing is written and nothing is created.
    """
    changed_files, diffs = [], []
    changed = False
    if not os.path.isdir(dest_dir):
        changed = True
        if not check_mode:
            os.makedirs(dest_dir)
    for fmt, (path, content) in files.items():
        data = content.encode("utf-8", "surrogateescape")
        before = current(path)
        if before != data:
            changed = True
            changed_files.append(path)
            if want_diff:
                text = before.decode("utf-8", "replace") if before is not None else ""
                diffs.append({"before_header": path, "after_header": path, "before": text, "after": content})
            if not check_mode:
                handle, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=dest_dir)
                with os.fdopen(handle, "wb") as stream:
                    stream.write(data)
                replace(temp, path)
        if os.path.exists(path) or not check_mode:
            changed = set_mode(path, changed)
    return changed, changed_files, diffs


def os_replace(temp, path):
    os.replace(temp, path)


def os_set_mode(mode, check_mode):
    """A ``set_mode`` for :func:`sync_files` with a numeric mode and plain os calls."""

    def set_mode(path, changed):
        if stat.S_IMODE(os.stat(path).st_mode) == mode:
            return changed
        if not check_mode:
            os.chmod(path, mode)
        return True

    return set_mode
