# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side action: validate the relay policy and publish the effective policy as a fact."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.mailsec.relay.plugins.module_utils import policy as relay_policy


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # pure validation: the managed host is never contacted
    _supports_check_mode = True
    _VALID_ARGS = frozenset(("variables",))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp

        if "variables" in self._task.args:
            variables = self._templar.template(self._task.args["variables"])
            if not isinstance(variables, dict):
                raise AnsibleActionFail("variables: expected a mapping of mailsec_relay_* variables, got %s" % type(variables).__name__)
        else:
            # Only the policy's own names are templated: other vars may be undefined or slow. Near-misses of
            # the prefix (Mailsec_relay_..., mailsec-relay_...) are passed untemplated, only to be reported.
            names = [name for name in task_vars if relay_policy.is_policy_name(name)]
            variables = self._templar.template(dict((name, task_vars[name]) for name in names if name.startswith(relay_policy.PREFIX)))
            variables.update((name, None) for name in names if not name.startswith(relay_policy.PREFIX))

        inventory_hostname = task_vars.get("inventory_hostname", "localhost")
        if not relay_policy.HAS_NETADDR:
            result.update(failed=True, msg=relay_policy.MISSING_LIBRARY_MESSAGE)
            return result
        try:
            effective = relay_policy.build_policy(dict(variables), to_text(inventory_hostname))
        except relay_policy.PolicyErrors as errors:
            # Messages name variables and describe values; they never contain passwords.
            result.update(
                failed=True,
                msg="The mailsec.relay policy of %s has %d error(s):\n%s" % (inventory_hostname, len(errors), "\n".join(str(e) for e in errors)),
                errors=[e.as_dict() for e in errors],
            )
            return result

        result["changed"] = False
        result["ansible_facts"] = {relay_policy.EFFECTIVE_FACT: effective}
        if effective["warnings"]:
            result["warnings"] = list(effective["warnings"])
        return result
