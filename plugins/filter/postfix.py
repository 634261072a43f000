# -*- coding: utf-8 -*-
# Copyright (c) mailsec.relay developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters of the Postfix role: policy -> Postfix settings, and Dovecot password hashes."""

from __future__ import annotations

import base64
import hashlib

from ansible.errors import AnsibleFilterError

from ansible_collections.mailsec.relay.plugins.module_utils.postfix import PostfixError, render_postfix


def postfix_settings(effective, postfix_version=None, table_dir=None, chroot=None, extra_main=None, compatibility_level=None, sender_rate_service=None):
    try:
        return render_postfix(
            dict(effective),
            postfix_version=postfix_version,
            table_dir=table_dir,
            chroot=chroot,
            extra_main=extra_main,
            compatibility_level=compatibility_level,
            sender_rate_service=sender_rate_service,
        )
    except (PostfixError, KeyError, ValueError) as exc:
        raise AnsibleFilterError("postfix_settings: %s" % exc)


def dovecot_ssha512(password, salt_seed):
    """Dovecot {SSHA512} hash with a salt derived from salt_seed (host + user): stable across runs,
    so the passwd-file only changes when the password does, yet differs between hosts and users."""
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError("dovecot_ssha512: the password must be a non-empty string")
    salt = hashlib.sha256(("mailsec.relay:%s" % salt_seed).encode("utf-8")).digest()[:8]
    digest = hashlib.sha512(password.encode("utf-8") + salt).digest()
    return "{SSHA512}" + base64.b64encode(digest + salt).decode("ascii")


class FilterModule(object):
    def filters(self):
        return {"postfix_settings": postfix_settings, "dovecot_ssha512": dovecot_ssha512}
