# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The contract every MTA backend fulfils: render, parse (readback) and apply, as separate pieces.

- render:  effective policy -> this MTA's desired configuration (postfix.render_postfix, exim.settings)
- parse:   collect the MTA's effective configuration, then interpret it in the effective-policy
           shape drift compares (postfix_readback, exim_readback)
- apply:   a ``Transaction``: plan -> validate a staged candidate -> install (commit, reload,
           confirm the listeners answer), rolled back when going live fails (postfix_apply,
           exim_apply adapt PostfixApplier and EximConfig to it)

backends.py lists the backends. A third MTA (OpenSMTPD, see the roadmap) is one renderer, one
readback, one ``Transaction`` subclass and one ``MTABackend`` entry there; the verifier never
changes (it speaks SMTP). Standard library only, no Ansible imports.
"""

from __future__ import annotations

from ansible_collections.mailsec.relay.plugins.module_utils.host_state import check_record, remove_record, write_record


class TransactionError(Exception):
    """The transaction stopped: ``msg`` for the user, ``result`` the module's result so far."""

    def __init__(self, msg, result=None):
        super().__init__(msg)
        self.msg = msg
        self.result = dict(result or {})


class Transaction(object):
    """One configuration change on one host, the same sequence for every MTA.

    Subclasses implement the steps; ``run`` is the order both appliers keep: nothing is staged
    when nothing changes, check mode stops after validating the candidate, and only ``install``
    touches the live configuration (and restores it when going live fails). Steps raise
    ``TransactionError`` with the result to fail with.
    """

    def __init__(self):
        self.warnings = []  # for module.warn, in order

    def plan(self, check_mode, diff):
        """The changes as a result dict with at least ``changed`` (and ``diff`` when asked)."""
        raise NotImplementedError

    def prepare(self, check_mode, result):
        """Can the candidate be built on this host? False: stop here with ``result`` (check mode)."""
        return True

    def validate(self, check_mode, result):
        """Build and check the candidate without going live; updates ``result``."""
        raise NotImplementedError

    def install(self, result):
        """Go live (commit, reload, confirm), rolling back on failure; updates ``result``."""
        raise NotImplementedError

    def read_paths(self):
        """Every file whose content, mode or presence the plan depends on (for the apply record)."""
        raise NotImplementedError

    def settled(self):
        """A fresh plan against what is live now finds nothing to change."""
        raise NotImplementedError

    def run(self, check_mode, diff=False, record=None):
        """``record``: (path, digest of the caller's input) of the apply record, or None.

        The record (host_state.write_record) says "with exactly these files, input ``digest`` needs no
        change": written only outside check mode, when the plan found nothing to do or when a fresh plan
        after going live finds nothing left (so a change that does not hold is reported again next time,
        never hidden). It is removed before anything goes live; a role reads it with host_state and skips
        this call while its digest matches and every recorded file is untouched.
        """
        result = self.plan(check_mode, diff)
        if not result["changed"] or not self.prepare(check_mode, result):
            if record and not check_mode and not result["changed"]:
                self._record(record)
            return result
        if record and not check_mode:
            remove_record(record[0])
        self.validate(check_mode, result)
        if not check_mode:
            self.install(result)
            if record:
                if self.settled():
                    self._record(record)
                else:
                    self.warnings.append("a fresh plan after the change still finds differences: no apply record written, the next run plans again")
        return result

    def _record(self, record):
        path, digest = record
        current = check_record(path)
        if current["intact"] and current["digest"] == digest:
            return  # nothing to rewrite
        try:
            write_record(path, digest, self.read_paths())
        except (IOError, OSError) as exc:  # only an optimisation: the next run plans in full
            remove_record(path)
            self.warnings.append("apply record %s not written: %s" % (path, exc))


class MTABackend(object):
    """One MTA: its name, and its render, parse and apply pieces (functions it already has)."""

    name = None
    readback_error = Exception  # what collect/interpret raise when the host cannot be read

    def render(self, effective, **options):
        raise NotImplementedError

    def collect(self, run, **options):
        raise NotImplementedError

    def parse(self, raw, desired=None):
        raise NotImplementedError

    def transaction(self, run, **options):
        raise NotImplementedError
