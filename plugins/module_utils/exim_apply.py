# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exim's apply piece: EximConfig (exim.py) behind the shared Transaction sequence.

The exim_config module builds one ``EximTransaction`` and runs it; what each step does is
EximConfig's (plan, candidate + -bh matrix, install with rollback), unchanged.
"""

from __future__ import annotations

import os

from ansible_collections.mailsec.relay.plugins.module_utils.exim import EximConfig, EximError
from ansible_collections.mailsec.relay.plugins.module_utils.mta_backend import Transaction, TransactionError


class EximTransaction(Transaction):
    """``find_binary(name)`` returns a binary's path or None (AnsibleModule.get_bin_path)."""

    def __init__(self, run, files, checks=(), reload=True, backup=False, find_binary=None, **config_options):
        super().__init__()
        self.result = dict(changed=False, changed_files=[], reloaded=False)
        try:
            self.config = EximConfig(run, files, checks, **config_options)
        except EximError as exc:
            raise TransactionError(str(exc), self.result)
        self.reload = reload
        self.backup = backup
        self.find_binary = find_binary or (lambda name: None)
        self.changes = None

    def plan(self, check_mode, diff):
        result = self.result
        if self.config.live_override():
            raise TransactionError("%s/exim4.conf exists and replaces the whole Debian configuration: remove it first" % self.config.root, result)
        self.changes, diffs = self.config.plan()
        result["changed_files"] = self.changes
        result["changed"] = bool(self.changes)
        if diff:
            result["diff"] = diffs
        # Nothing changed: nothing would go live, so there is no candidate to test (as postconf does): whether
        # the live configuration still holds the policy is the readback's question (mta_facts, drift).
        return result

    def read_paths(self):
        # plan() reads every managed file (content, mode, presence); exim4.conf would override them all.
        return sorted(set(self.config.files) | {os.path.join(self.config.root, "exim4.conf")})

    def settled(self):
        return not self.config.live_override() and not self.config.plan()[0]

    def prepare(self, check_mode, result):
        exim_path, update_path = self.find_binary(self.config.exim), self.find_binary("update-exim4.conf")
        if not exim_path or not update_path or not os.path.isdir(self.config.root):
            if check_mode:
                # A fresh host in check mode: the package task did not really install Exim.
                self.warnings.append("Exim is not installed yet: the candidate could not be validated in check mode")
                return False
            raise TransactionError("Exim (%s and update-exim4.conf) is not installed" % self.config.exim, result)
        self.config.exim, self.config.update = exim_path, update_path
        return True

    def validate(self, check_mode, result):
        try:
            result["checks"] = self.config.validate()
        except EximError as exc:
            # Nothing went live: changed_files only says what would have changed.
            result["changed"] = False
            result.update(exc.details)
            raise TransactionError(str(exc), result)

    def install(self, result):
        try:
            result["reloaded"], backups = self.config.install(self.changes, reload=self.reload, backup=self.backup)
        except EximError as exc:
            result.update(exc.details)
            raise TransactionError(str(exc), result)
        if backups:
            result["backup_files"] = backups
