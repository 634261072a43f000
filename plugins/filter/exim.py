# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter of roles/exim: effective relay policy -> Exim files and the -bh test matrix.

All logic lives in module_utils/exim.py; this wrapper only adapts Ansible's data.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.mailsec.relay.plugins.module_utils import exim
from ansible_collections.mailsec.relay.plugins.module_utils.plain import plain as _plain


def exim_settings(effective, interface_address="127.0.0.1"):
    if not isinstance(effective, Mapping) or "listeners" not in effective:
        raise AnsibleFilterError("exim_settings expects the effective relay policy (fact mailsec_relay_effective)")
    try:
        return exim.settings(_plain(effective), str(interface_address or "127.0.0.1"))
    except (KeyError, TypeError, ValueError, exim.EximError) as exc:
        raise AnsibleFilterError("exim_settings: the effective policy is incomplete or malformed: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"exim_settings": exim_settings}
