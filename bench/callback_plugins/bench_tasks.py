# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench callback: one JSON line per task and host (name, action, status, start, end) to $BENCH_TASK_LOG."""

from __future__ import annotations

DOCUMENTATION = """
    name: bench_tasks
    type: aggregate
    short_description: per-task timings for bench/converge_bench.py
    description: Appends one JSON line per task result to the file named by BENCH_TASK_LOG.
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_tasks"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.path = os.environ.get("BENCH_TASK_LOG")
        self.started = {}

    def v2_runner_on_start(self, host, task):
        self.started[(host.get_name(), task._uuid)] = time.time()

    def _log(self, result, status):
        host, task = result._host.get_name(), result._task
        start = self.started.pop((host, task._uuid), None)
        if not self.path:
            return
        changed = bool(result._result.get("changed")) if status == "ok" else False
        with open(self.path, "a") as handle:
            handle.write(
                json.dumps(
                    {
                        "host": host,
                        "task": task.get_name(),
                        "action": task.action,
                        "status": "changed" if changed else status,
                        "start": start,
                        "end": time.time(),
                        "delegate_to": task.delegate_to,
                    }
                )
                + "\n"
            )

    def v2_runner_on_ok(self, result):
        self._log(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._log(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._log(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._log(result, "unreachable")
