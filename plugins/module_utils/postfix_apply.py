# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Postfix's apply piece: PostfixApplier (postfix.py) behind the shared Transaction sequence.

The postconf module builds one ``PostfixTransaction`` and runs it; what each step does is
PostfixApplier's (plan, stage + validate, apply with rollback), unchanged.
"""

from __future__ import annotations

import os
import shutil

from ansible_collections.mailsec.relay.plugins.module_utils.mta_backend import Transaction, TransactionError
from ansible_collections.mailsec.relay.plugins.module_utils.postfix import HASHED_MAP_TYPES, PostfixApplier, PostfixError


class PostfixTransaction(Transaction):
    """``desired``: the postconf module's main, master, master_purge_commands, files, adopt, ownership_file."""

    def __init__(self, run, desired, reload=True, backup=True, **applier_options):
        super().__init__()
        self.applier = PostfixApplier(run, **applier_options)
        self.desired = desired
        self.files_in = [dict(spec) for spec in desired["files"]]  # plan() appends the ownership record to desired's
        self.reload = reload
        self.backup = backup
        self.changes = None

    def plan(self, check_mode, diff):
        d = self.desired
        try:
            self.changes = changes = self.applier.plan(
                d["main"], d["master"], d["files"], d["master_purge_commands"], adopt=d["adopt"], ownership_file=d["ownership_file"]
            )
        except PostfixError as exc:
            raise TransactionError(str(exc))
        count = len(changes.main) + len(changes.master) + len(changes.files)
        kept = "; kept: " + ", ".join(changes.kept) if changes.kept else ""
        done = "would change" if check_mode else "changed"
        result = dict(changed=changes.changed, changes=changes.summary(), kept=list(changes.kept), msg="%s %d setting(s)%s" % (done, count, kept))
        if diff:
            result["diff"] = changes.diff()
        return result

    def read_paths(self):
        # plan() reads main.cf and master.cf (postconf -n, -M, -P), every managed file (content, mode; the .db's
        # mtime for hashed maps) and the ownership record (among desired["files"] once plan() ran).
        applier = self.applier
        paths = [os.path.join(applier.config_dir, "main.cf"), os.path.join(applier.config_dir, "master.cf")]
        for spec in self.desired["files"]:
            path = applier._abs(spec["path"])
            paths.append(path)
            if spec.get("map_type") in HASHED_MAP_TYPES:
                paths.append(path + ".db")
        return sorted(set(paths))

    def settled(self):
        d = self.desired
        try:
            again = self.applier.plan(
                d["main"], d["master"], [dict(spec) for spec in self.files_in], d["master_purge_commands"], adopt=d["adopt"], ownership_file=d["ownership_file"]
            )
        except PostfixError:
            return False
        return not again.changed

    def validate(self, check_mode, result):
        if not check_mode:
            return  # the real run validates inside PostfixApplier.apply, on the same staged copy it commits
        # Stage and validate without touching config_dir, so --check catches what the real run would reject.
        d = self.desired
        try:
            stage, target, dummy = self.applier.stage(self.changes, d["files"])
            try:
                # Files such as a certificate may come from an earlier task that check mode only pretended to run.
                result["validation"] = self.applier.validate(target, d["main"], d["master"], d["files"], missing_files_fatal=False)
                self.warnings.extend("would fail unless created first: %s" % warning for warning in self.applier.warnings)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
        except (PostfixError, OSError) as exc:  # stage() has removed its copy already
            result["msg"] = "the change would be rejected: %s" % exc
            raise TransactionError(result["msg"], result)

    def install(self, result):
        d = self.desired
        try:
            result.update(self.applier.apply(self.changes, d["main"], d["master"], d["files"], reload=self.reload, backup=self.backup))
        except (PostfixError, OSError) as exc:  # the applier cleaned up its staging and rolled back
            result["msg"] = str(exc)
            raise TransactionError(result["msg"], result)
