# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read what is in place on a mail host with ONE remote command.

A module call costs a temporary directory, a file transfer, a chmod, the run and a cleanup: five
or six round trips on connections without pipelining (containers.podman, plain SSH without
pipelining). The reader is a small read-only script, so this action sends its source inline, as
``raw`` would, and parses the JSON it prints. Read-only, so it runs in check mode too.
"""

from __future__ import annotations

import functools
import json
import shlex

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.mailsec.relay.plugins.module_utils import host_state

_SPEC_KEYS = ("packages", "files", "commands", "versions", "records")


@functools.lru_cache(maxsize=1)
def reader_source():
    with open(host_state.__file__.replace(".pyc", ".py")) as handle:
        return handle.read()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True  # read-only
    _VALID_ARGS = frozenset(_SPEC_KEYS)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp

        spec = {}
        for key, kind in zip(_SPEC_KEYS, (list, list, dict, list, dict)):
            value = self._task.args.get(key) or kind()
            if not isinstance(value, kind):
                raise AnsibleActionFail("%s: expected a %s, got %s" % (key, kind.__name__, type(value).__name__))
            spec[key] = value
        unknown = sorted(set(spec["versions"]) - set(host_state.VERSION_COMMANDS))
        if unknown:
            raise AnsibleActionFail("versions: unknown daemon(s) %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(host_state.VERSION_COMMANDS))))
        for name, path in spec["records"].items():
            if not isinstance(path, str) or not path.startswith("/"):
                raise AnsibleActionFail("records.%s: expected an absolute path, got %r" % (name, path))
        for name, argv in spec["commands"].items():
            if not isinstance(argv, list) or not argv:
                raise AnsibleActionFail("commands.%s: expected an argv list, got %r" % (name, argv))

        command = " ".join(shlex.quote(part) for part in (self._interpreter(task_vars), "-c", reader_source(), json.dumps(spec)))
        out = self._low_level_execute_command(command, sudoable=True)
        if out["rc"] != 0:
            raise AnsibleActionFail("reading the host state failed (rc %s): %s" % (out["rc"], to_text(out["stderr"]).strip()[-2000:]))
        try:
            state = json.loads(out["stdout"])
        except ValueError:
            raise AnsibleActionFail("the host state reader printed no JSON: %r" % to_text(out["stdout"])[:500])
        result.update(state)
        result["changed"] = False
        return result

    def _interpreter(self, task_vars):
        # As the roles did before: the inventory's interpreter, else what discovery found, else python3.
        if task_vars.get("ansible_python_interpreter"):
            return to_text(self._templar.template(task_vars["ansible_python_interpreter"]))
        discovered = task_vars.get("ansible_facts", {}).get("discovered_interpreter_python")
        return to_text(discovered or "/usr/bin/python3")
