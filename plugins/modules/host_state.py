#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# The action plugin of the same name runs the reader with one remote command; this module is the
# documented interface and does the same work when called as a plain module.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_state
short_description: Read what a mail host already has in place, in one round trip
description:
  - Reports which packages are installed, the mode, owner, group and SHA-1 of files, the exit status and
    output of read-only commands, the operating system (from C(/etc/os-release)) and the IPv4 address of the
    default route's interface.
  - The C(mailsec.relay) roles read everything they need with one call of this module and skip every task
    whose work is already done; with O(records) the read also tells whether the configuration transaction
    would find nothing to do, so a no-op run costs this one round trip.
  - The action plugin sends the reader's source inline and runs it with one remote command, like
    M(ansible.builtin.raw), instead of transferring a module; no temporary directory is created on the host.
  - Read-only; never changes anything.
version_added: "0.1.0"
options:
  packages:
    description: Package names to look up with C(dpkg-query). Unknown packages count as not installed.
    type: list
    elements: str
    default: []
  files:
    description: Paths to stat and, for regular files, hash.
    type: list
    elements: path
    default: []
  commands:
    description:
      - Read-only commands by name, each an argv list. Their exit status is reported, never treated as an error.
    type: dict
    default: {}
  versions:
    description:
      - Daemons whose upstream version to report, each read with its own version command
        (C(postconf -d -h mail_version), C(exim4 -bV), C(dovecot --version)); never inferred from the OS release.
    type: list
    elements: str
    choices: [postfix, exim, dovecot]
    default: []
  records:
    description:
      - Apply records of M(mailsec.relay.postconf) and M(mailsec.relay.exim_config) (their O(mailsec.relay.postconf#module:record)
        option) by name, each a path. Per name, RV(records) reports the digest the record holds and whether every
        file it fingerprints is still exactly as recorded.
    type: dict
    default: {}
extends_documentation_fragment:
  - action_common_attributes
  - action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - mailsec.relay developers (@mailsec)
"""

EXAMPLES = r"""
- name: Read what is already in place
  mailsec.relay.host_state:
    packages: [postfix, dovecot-core]
    files: [/etc/postfix/main.cf]
    commands:
      status: [postfix, status]
    versions: [postfix, dovecot]
  register: state

- name: Install Postfix only when it is missing
  ansible.builtin.apt:
    name: postfix
  when: not state.packages.postfix
"""

RETURN = r"""
packages:
  description: Whether each package of O(packages) is installed.
  returned: always
  type: dict
  sample: {"postfix": true, "dovecot-core": false}
files:
  description:
    - Per path of O(files), C(exists); for existing paths C(mode), C(owner), C(group); for regular files also
      C(sha1) and C(lines).
  returned: always
  type: dict
  sample: {"/etc/postfix/main.cf": {"exists": true, "mode": "0644", "owner": "root", "group": "root",
           "sha1": "0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33", "lines": 42}}
commands:
  description: Per name of O(commands), C(rc) and the stripped C(stdout); C(rc=127) when the command does not exist.
  returned: always
  type: dict
  sample: {"status": {"rc": 0, "stdout": ""}}
os:
  description:
    - C(distribution), C(major_version) and C(family), named as Ansible's facts name them, and C(codename)
      (C(VERSION_CODENAME) of C(/etc/os-release), null when absent).
  returned: always
  type: dict
  sample: {"distribution": "Debian", "major_version": "13", "family": "Debian", "codename": "trixie"}
versions:
  description: Per daemon of O(versions), its upstream version; null when it is not installed.
  returned: always
  type: dict
  sample: {"postfix": "3.10.5", "dovecot": "2.4.1"}
records:
  description:
    - Per name of O(records), C(digest) (null without a readable record) and C(intact) (every recorded file
      unchanged, with the same mode, owner, size, mtime and content, or still absent).
  returned: always
  type: dict
  sample: {"postconf": {"digest": "0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33", "intact": true}}
default_ipv4:
  description: The IPv4 address of the interface holding the default route; null when there is none.
  returned: always
  type: str
  sample: 198.51.100.11
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mailsec.relay.plugins.module_utils.host_state import read


def main():
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type="list", elements="str", default=[]),
            files=dict(type="list", elements="path", default=[]),
            commands=dict(type="dict", default={}),
            versions=dict(type="list", elements="str", default=[], choices=["postfix", "exim", "dovecot"]),
            records=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    module.exit_json(changed=False, **read(module.params))


if __name__ == "__main__":
    main()
