# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench callback: the verdicts of the real lab MTAs in a relay_probe result, for bench/fleet_bench.py --mixed-lab."""

from __future__ import annotations

DOCUMENTATION = """
    name: fleet_real
    type: aggregate
    short_description: real-MTA verdicts of a relay_probe result for bench/fleet_bench.py
    description:
      - Writes [verdict, count] pairs of the results whose target is in FLEET_REAL_TARGETS (comma-separated)
        to the file named by FLEET_REAL_OUT, as JSON, after each relay_probe task.
      - A Jinja filter chain over every result did the same inside the measured playbook (about 1 s per
        13,000 results); this reads the result object the controller already holds.
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet_real"
    CALLBACK_NEEDS_ENABLED = True

    def v2_runner_on_ok(self, result):
        path = os.environ.get("FLEET_REAL_OUT")
        targets = set(filter(None, os.environ.get("FLEET_REAL_TARGETS", "").split(",")))
        if not path or not targets or not result._task.action.endswith("relay_probe"):
            return
        pairs = [[item.get("verdict"), item.get("count", 1)] for item in result._result.get("results") or [] if item.get("target") in targets]
        with open(path, "w") as handle:
            json.dump(pairs, handle)
