# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""relay_report: where the report directory is on the controller itself, write it from here.

Reports are written on the controller (``delegate_to: localhost``) from every result of a run. The
module path would encode those results to JSON for a second Python that only renders them and
writes files here anyway. On a local connection without become and without async, with a numeric
``mode``, the same renderers and the same file logic (module_utils/report_files.py) run in this
process; anything else (a remote host, become, a symbolic mode) runs the module as usual.
"""

from __future__ import annotations

import copy

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.mailsec.relay.plugins.module_utils import report_files
from ansible_collections.mailsec.relay.plugins.module_utils.plain import plain
from ansible_collections.mailsec.relay.plugins.plugin_utils.local_first import LocalFirstAction


class ActionModule(LocalFirstAction):
    def run(self, tmp=None, task_vars=None):
        mode = report_files.octal_mode(self._task.args.get("mode", report_files.ARGUMENT_SPEC["mode"]["default"]))
        if mode is None or not self.runs_here():
            return self.run_module(tmp, task_vars)
        result = self.start_here(tmp, task_vars)
        validated = ArgumentSpecValidator(copy.deepcopy(report_files.ARGUMENT_SPEC)).validate(plain(self._task.args))  # plain types, as the module gets them
        if validated.error_messages:
            result.update(failed=True, msg="; ".join(validated.error_messages))
            return result
        check_mode = bool(self._task.check_mode)
        set_mode = report_files.os_set_mode(mode, check_mode)
        try:
            result.update(report_files.write_reports(validated.validated_parameters, check_mode, bool(self._task.diff), report_files.os_replace, set_mode))
        except report_files.ReportError as exc:
            result.update(failed=True, msg=to_text(exc))
        return result
