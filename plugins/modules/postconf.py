#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) mailsec.relay developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: postconf
short_description: Apply main.cf, master.cf and lookup tables to Postfix in one validated transaction
version_added: 0.1.0
description:
  - Reads the current state with C(postconf -n), C(postconf -M) and C(postconf -P), computes a per-key diff
    and changes only what differs. Settings not named in O(main) are left alone.
  - When something differs, copies the configuration directory to a staging directory, applies the edits
    there with C(postconf -c), runs C(postmap) for hashed tables, and validates the result
    (C(postconf -n) and C(postconf -M) with any warning treated as an error, C(postfix check), C(postmap -q)
    on cidr tables, certificate and key files exist).
  - Then swaps the changed files in (each one an atomic rename), reloads Postfix (stop and start when
    C(inet_interfaces) or C(inet_protocols) change, start when it was not running), and confirms that every
    smtpd listener greets with 220 and completes TLS where TLS is configured.
  - On any failure the previous files are restored, Postfix is reloaded again, and the task fails with the reason.
author:
  - mailsec.relay developers (@mailsec)
options:
  main:
    description:
      - main.cf parameters. A value of V(null) removes the parameter (C(postconf -X)).
      - Lists are joined with C(", "), booleans become C(yes)/C(no).
    type: dict
    default: {}
  master:
    description:
      - master.cf services. A managed service ends up with exactly the O(master[].overrides) given here.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Service name, for example V(smtp), V(submission) or V(203.0.113.10:smtp).
        type: str
        required: true
      type:
        description: Service type.
        type: str
        default: inet
        choices: [inet, unix, unix-dgram, fifo, pass]
      private:
        description: Private field (V(y), V(n) or V(-)).
        type: str
        default: '-'
      unpriv:
        description: Unprivileged field.
        type: str
        default: '-'
      chroot:
        description: Chroot field.
        type: str
        default: '-'
      wakeup:
        description: Wakeup field.
        type: str
        default: '-'
      maxproc:
        description: Process limit field.
        type: str
        default: '-'
      command:
        description: Command and its arguments other than C(-o). Required when O(master[].state=present).
        type: str
      overrides:
        description:
          - C(-o name=value) parameter overrides. Values with whitespace are written in the long
            form C(-o { name = value }); values containing braces are refused.
        type: dict
        default: {}
      state:
        description: Whether the service exists.
        type: str
        default: present
        choices: [present, absent]
      keep_front:
        description:
          - When the service exists and runs C(postscreen), keep postscreen as the front door and apply
            O(master[].command) and O(master[].overrides) to its C(smtpd pass) service instead.
        type: bool
        default: false
  master_purge_commands:
    description:
      - Remove every C(inet) service whose command is in this list and that O(master) does not declare,
        so that a stale listener (for example a stock submission entry) cannot survive.
    type: list
    elements: str
    default: []
  adopt:
    description:
      - Adopt mode, for hosts that carried mail before this module managed them (brownfield).
      - O(master_purge_commands) then removes only services that the ownership record (O(ownership_file))
        lists as written by an earlier run; without a record (a host never converged before) it removes nothing.
      - A service declared in O(master) that already exists keeps its C(-o) overrides that do not decide relaying,
        AUTH or TLS (for example C(content_filter), C(smtpd_milters), C(receive_override_options)).
      - Every service, override and filter, milter, map or domain setting that stays as found is listed in RV(kept)
        and, in diff mode, as C(kept:) lines.
    type: bool
    default: false
  ownership_file:
    description:
      - Path under O(config_dir) of the ownership record (JSON), which lists the master.cf services this module declared.
        It is read before the diff and rewritten in the same transaction, so a later run can tell its own
        listeners from the user's.
      - Unset, no record is kept and O(adopt) removes nothing.
    type: path
  files:
    description:
      - Lookup tables and other files under O(config_dir), written in the same transaction.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path under O(config_dir), or a path relative to it.
        type: str
        required: true
      content:
        description: File content.
        type: str
        required: true
      mode:
        description: Octal file mode.
        type: str
        default: '0644'
      map_type:
        description:
          - Lookup table type. Hashed types (V(hash), V(btree), V(lmdb), V(cdb)) are compiled with C(postmap);
            V(cidr) tables are syntax-checked with C(postmap -q).
        type: str
  config_dir:
    description: Postfix configuration directory.
    type: path
    default: /etc/postfix
  backup:
    description: Keep the files that were replaced; their directory is returned as RV(backup_path).
    type: bool
    default: true
  backup_dir:
    description: Where backups are kept, one timestamped directory per change.
    type: path
    default: /var/backups/postfix
  reload:
    description: Reload (or start) Postfix after a change and confirm its listeners answer.
    type: bool
    default: true
  confirm_timeout:
    description: Seconds to wait for every listener to greet after a reload.
    type: float
    default: 15
  record:
    description:
      - Path of the apply record, a root-only JSON file outside O(config_dir). Written (outside check mode) when
        the host is in sync with this call's input (nothing differed, or a change went live that a fresh plan
        finds complete). It holds O(record_digest) and a fingerprint (mode, owner, size, mtime, SHA-1) of every
        file the plan reads (main.cf, master.cf, the O(files), hashed maps' C(.db), the ownership record).
      - M(mailsec.relay.host_state) reports whether the record is still intact (option C(records)); a role whose
        input has the same digest on an intact record skips this call, since the plan would find nothing to do.
      - Removed before a change goes live. Unset, no record is kept.
    type: path
  record_digest:
    description: The caller's digest of this call's input, stored in O(record). Required with O(record).
    type: str
notes:
  - Supports check mode and diff mode. In check mode the configuration is still staged and validated in a
    temporary directory, but nothing under O(config_dir) is written.
  - On a host where Postfix is not installed yet, check mode reports every setting as a change instead of failing.
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: full
"""

EXAMPLES = r"""
- name: Relay policy on Postfix, one transaction
  mailsec.relay.postconf:
    main:
      compatibility_level: "3.6"
      mynetworks: "127.0.0.0/8 [::1]/128"
      relay_domains: ""
      smtpd_relay_restrictions: >-
        check_client_access cidr:/etc/postfix/mailsec/relay_never.cidr,
        permit_mynetworks, reject_unauth_destination
      smtpd_tls_cert_file: null   # remove
    master:
      - name: submission
        private: "n"
        chroot: "y"
        command: smtpd
        overrides:
          smtpd_tls_security_level: encrypt
          smtpd_sasl_auth_enable: "yes"
          smtpd_relay_restrictions: permit_sasl_authenticated, reject
    master_purge_commands: [smtpd, postscreen]
    # A host that carried mail before: remove only what an earlier run wrote, report the rest as kept.
    adopt: true
    ownership_file: /etc/postfix/mailsec/owned.json
    files:
      - path: /etc/postfix/mailsec/relay_never.cidr
        content: "203.0.113.51/32 reject_unauth_destination\n"
        map_type: cidr
"""

RETURN = r"""
changes:
  description: What changed (or would change), per main.cf key and master.cf service, and the files written.
  returned: always
  type: dict
  sample:
    main: {mynetworks: {before: "127.0.0.0/8", after: "127.0.0.0/8 203.0.113.48/28"}}
    master: {"submission/inet": {before: null, after: "submission inet n - y - - smtpd -o ..."}}
    files: [/etc/postfix/mailsec/relay_never.cidr]
    kept: ["postscreen smtp inet in front of smtpd pass", "smtpd 127.0.0.1:10025 inet (master.cf)"]
kept:
  description:
    - What exists, is not declared and stays as found, in words (services, kept overrides, filter, milter, map
      and domain settings of main.cf). In check mode on a host never converged before, this is what adopt mode keeps.
  returned: always
  type: list
  elements: str
  sample: ["smtpd 127.0.0.1:10025 inet (master.cf)", "smtpd_milters = inet:127.0.0.1:8891 (main.cf)"]
msg:
  description: One line saying how many settings change and what is kept.
  returned: always
  type: str
  sample: "would change 12 settings; kept: smtpd 127.0.0.1:10025 inet (master.cf)"
backup_path:
  description: Directory holding the files that were replaced.
  returned: when something was replaced and O(backup=true)
  type: str
  sample: /var/backups/postfix/20250101T120000-1234
service:
  description: What was done to the running Postfix (V(reloaded), V(restarted), V(started)).
  returned: when a change was applied and O(reload=true)
  type: str
  sample: reloaded
validation:
  description: Output of the validation steps (warnings from C(postfix check)).
  returned: when a change was applied
  type: str
  sample: ""
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mailsec.relay.plugins.module_utils.mta_backend import TransactionError
from ansible_collections.mailsec.relay.plugins.module_utils.postfix import compute_changes
from ansible_collections.mailsec.relay.plugins.module_utils.postfix_apply import PostfixTransaction


def main():
    module = AnsibleModule(
        argument_spec=dict(
            main=dict(type="dict", default={}),
            master=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    type=dict(type="str", default="inet", choices=["inet", "unix", "unix-dgram", "fifo", "pass"]),
                    private=dict(type="str", default="-"),
                    unpriv=dict(type="str", default="-"),
                    chroot=dict(type="str", default="-"),
                    wakeup=dict(type="str", default="-"),
                    maxproc=dict(type="str", default="-"),
                    command=dict(type="str"),
                    overrides=dict(type="dict", default={}),
                    state=dict(type="str", default="present", choices=["present", "absent"]),
                    keep_front=dict(type="bool", default=False),
                ),
                required_if=[("state", "present", ["command"])],
            ),
            master_purge_commands=dict(type="list", elements="str", default=[]),
            adopt=dict(type="bool", default=False),
            ownership_file=dict(type="path"),
            files=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    path=dict(type="str", required=True),
                    content=dict(type="str", required=True),
                    mode=dict(type="str", default="0644"),
                    map_type=dict(type="str"),
                ),
            ),
            config_dir=dict(type="path", default="/etc/postfix"),
            backup=dict(type="bool", default=True),
            backup_dir=dict(type="path", default="/var/backups/postfix"),
            reload=dict(type="bool", default=True),
            confirm_timeout=dict(type="float", default=15.0),
            record=dict(type="path"),
            record_digest=dict(type="str"),
        ),
        required_together=[("record", "record_digest")],
        supports_check_mode=True,
    )
    params = module.params
    postconf = module.get_bin_path("postconf")
    if postconf is None:
        if module.check_mode:
            # Fresh host in check mode: the package task only pretended to install Postfix.
            changes = compute_changes({}, {}, {}, params["main"], params["master"], params["files"])
            module.exit_json(
                changed=changes.changed, changes=changes.summary(), diff=changes.diff(), kept=[], msg="postfix is not installed; every setting would be written"
            )
        module.fail_json(msg="postconf not found: install postfix first")

    def run(cmd):
        return module.run_command(cmd, environ_update={"LANG": "C", "LC_ALL": "C"})

    desired = dict((key, params[key]) for key in ("main", "master", "master_purge_commands", "files", "adopt", "ownership_file"))
    transaction = PostfixTransaction(
        run,
        desired,
        reload=params["reload"],
        backup=params["backup"],
        config_dir=params["config_dir"],
        backup_dir=params["backup_dir"],
        postconf=postconf,
        postfix=module.get_bin_path("postfix", required=True),
        postmap=module.get_bin_path("postmap", required=True),
        confirm_timeout=params["confirm_timeout"],
    )
    try:
        record = (params["record"], params["record_digest"]) if params["record"] else None
        result = transaction.run(module.check_mode, diff=module._diff, record=record)
    except TransactionError as exc:  # the applier cleaned up its staging and rolled back
        module.fail_json(msg=exc.msg, **dict((k, v) for k, v in exc.result.items() if k != "msg"))
    for warning in transaction.warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
