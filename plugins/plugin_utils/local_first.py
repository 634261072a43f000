# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of action plugins that do their module's work in the controller's process when the
module would run on the controller anyway, and run the module everywhere else."""

from __future__ import annotations

from ansible.plugins.action.normal import ActionModule as NormalAction


class LocalFirstAction(NormalAction):
    """``run_module(tmp, task_vars)`` runs the module as ``ansible.builtin.normal`` would;
    ``start_here(tmp, task_vars)`` gives ActionBase's result dict for work done in this process."""

    def runs_here(self):
        """True when the module would run on this machine, as this user, in the foreground: a local
        connection without become and without async."""
        return getattr(self._connection, "transport", None) == "local" and not self._play_context.become and not self._task.async_val

    def run_module(self, tmp, task_vars):
        return super(LocalFirstAction, self).run(tmp, task_vars)

    def start_here(self, tmp, task_vars):
        return super(NormalAction, self).run(tmp, task_vars)  # ActionBase's checks, no module
