# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The MTA backends by name: each one's render, parse and apply pieces behind mta_backend's contract.

Thin on purpose: every method is a function the MTA's modules already have. Modules that run on
managed hosts import only the piece they need (postconf: postfix_apply, mta_facts: the readbacks),
so their payload stays small; this registry is for code that serves every MTA.
"""

from __future__ import annotations

from ansible_collections.mailsec.relay.plugins.module_utils import exim, exim_readback, postfix, postfix_readback
from ansible_collections.mailsec.relay.plugins.module_utils.exim_apply import EximTransaction
from ansible_collections.mailsec.relay.plugins.module_utils.mta_backend import MTABackend
from ansible_collections.mailsec.relay.plugins.module_utils.postfix_apply import PostfixTransaction


class PostfixBackend(MTABackend):
    name = "postfix"
    readback_error = postfix_readback.ReadbackError

    def render(self, effective, **options):
        return postfix.render_postfix(effective, **options)

    def collect(self, run, read_file=None, postconf="postconf", config_dir=None):
        return postfix_readback.collect(run, read_file, postconf, config_dir)

    def parse(self, raw, desired=None):
        return postfix_readback.interpret(raw)

    def transaction(self, run, desired=None, **options):
        return PostfixTransaction(run, desired, **options)


class EximBackend(MTABackend):
    name = "exim"
    readback_error = exim_readback.ReadbackError

    def render(self, effective, interface_address="127.0.0.1"):
        return exim.settings(effective, interface_address)

    def collect(self, run, exim_binary="exim4", desired=None, run_spot_checks=True):
        return exim_readback.collect(run, exim_binary, desired=desired, run_spot_checks=run_spot_checks)

    def parse(self, raw, desired=None):
        return exim_readback.interpret(raw, desired)

    def transaction(self, run, files=None, checks=(), **options):
        return EximTransaction(run, files, checks, **options)


BACKENDS = {backend.name: backend for backend in (PostfixBackend(), EximBackend())}
