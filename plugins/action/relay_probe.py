# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""relay_probe: where the prober is the controller itself, run the engine in this process.

On a local connection (``delegate_to: localhost``, the role's default prober) shipping the module
buys nothing: the probes leave from this machine either way. The module path costs an AnsiballZ
build, a second Python, the collection's imports and the whole result encoded to JSON and decoded
again; for a fleet that result is megabytes (issue 17). So on a local connection without become
and without async, the arguments are validated against the module's own spec
(module_utils/smtp/probe_args.py) and the same engine runs here, returning the same result, no_log
values masked as AnsibleModule masks them. Any other case (a remote prober, become, async) runs the
module as usual.
"""

from __future__ import annotations

import copy
import sys

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.mailsec.relay.plugins.module_utils.plain import plain
from ansible_collections.mailsec.relay.plugins.module_utils.smtp import probe_args
from ansible_collections.mailsec.relay.plugins.plugin_utils.local_first import LocalFirstAction


class ActionModule(LocalFirstAction):
    def run(self, tmp=None, task_vars=None):
        if not self.runs_here() or sys.version_info < (3, 11):
            return self.run_module(tmp, task_vars)  # the module says what Python it needs
        result = self.start_here(tmp, task_vars)
        # Imported here: the module path never needs the engine in this process.
        from ansible_collections.mailsec.relay.plugins.module_utils.smtp.engine import ConfigError, run

        # Plain Python types, as the module gets them from JSON: the engine works on the targets'
        # strings many times, and str subclasses miss CPython's exact-str fast paths (at N=1000 the
        # in-process run took 51.6 s with Ansible's tagged values and 49.4 s with plain ones).
        validated = ArgumentSpecValidator(copy.deepcopy(probe_args.ARGUMENT_SPEC)).validate(plain(self._task.args))
        no_log_values = validated._no_log_values
        if validated.error_messages:
            result.update(failed=True, msg=remove_values("; ".join(validated.error_messages), no_log_values))
            return result
        params = validated.validated_parameters
        invocation = {"module_args": remove_values(params, no_log_values) if no_log_values else params}
        try:
            outcome = run(probe_args.engine_params(params))
        except ConfigError as exc:
            result.update(failed=True, msg=remove_values(str(exc), no_log_values), invocation=invocation)
            return result
        found = {"changed": False, "results": outcome["results"], "summary": outcome["summary"]}
        if no_log_values:  # as AnsibleModule.exit_json: a secret never leaves in a result
            found = remove_values(found, no_log_values)
        result.update(found, invocation=invocation)
        return result
