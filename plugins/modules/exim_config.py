#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: exim_config
short_description: Install Exim configuration files only after the candidate passes exim -bV and an -bh test matrix
version_added: 0.1.0
description:
  - Manages files of the Debian split Exim configuration under C(/etc/exim4) in one transaction per host.
  - When no managed file differs, it stops there and reports no change (nothing is built or tested; whether the live
    configuration still holds the policy is a question for the readback, M(mailsec.relay.mta_facts)).
  - Otherwise copies C(/etc/exim4) to a temporary directory, writes the files there, builds the candidate with
    C(update-exim4.conf -d <stage> -o <stage>/candidate.conf), checks it with C(exim4 -C candidate -bV) and runs every
    entry of O(checks) as an C(exim4 -C candidate -bh) session. Any error or any verdict that differs from the
    expectation fails the task and nothing goes live.
  - If the candidate passes, the changed files are moved into place, C(update-exim4.conf) regenerates the live
    configuration, a running daemon gets SIGHUP and must answer on the confirm address again. On any failure the
    previous files are restored and the daemon is reloaded again.
  - Refuses to work when C(/etc/exim4/exim4.conf) exists, because that file silently replaces the Debian configuration.
author:
  - mailsec.relay developers (@mailsec)
options:
  files:
    description:
      - Files to manage, as a mapping of absolute path (under O(root)) to its desired state.
      - Each value is a dict with C(content) (the file text; required unless C(state=absent)), C(mode) (octal
        string, default C(0644)) and C(state) (C(present), the default, or C(absent)).
      - C(<root>/exim4.conf) is refused.
    type: dict
    required: true
  checks:
    description:
      - The C(-bh) test matrix; each entry is one simulated SMTP session (EHLO, MAIL, RCPT) against the candidate.
      - The filter P(mailsec.relay.exim_settings#filter) derives it from the effective relay policy.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Label used in results.
        type: str
      kind:
        description:
          - V(session) simulates an SMTP session with C(-bh); V(route) is an address test with C(-bt) (does the
            recipient route, via O(checks[].router) when given).
        type: str
        choices: [session, route]
        default: session
      router:
        description: For V(route) checks, the router that must accept the recipient.
        type: str
      client:
        description: Client IP address (C(-bh <client>)); required for V(session) checks.
        type: str
      interface:
        description: Local address the session arrives on (C(-oMi <interface>.<port>)); required for V(session) checks.
        type: str
      port:
        description: Local port the session arrives on; required for V(session) checks.
        type: int
      sender:
        description: Envelope sender.
        type: str
        default: mailsec-check@example.com
      recipient:
        description: Envelope recipient.
        type: str
        required: true
      authenticated:
        description: Simulate an authenticated session (C(-oMaa)/C(-oMai)).
        type: bool
        default: false
      user:
        description: The login of a simulated authenticated session (C(-oMai)); default C(mailsec-check). Sender identity checks set it.
        type: str
      expect:
        description:
          - The verdict at RCPT the policy demands; a refusal at connect or MAIL counts as V(deny).
          - For V(route) checks, V(accept) means the recipient routes.
        type: str
        choices: [accept, deny]
        required: true
  reload:
    description: Send SIGHUP to a running Exim daemon after installing, and require it to answer again.
    type: bool
    default: true
  backup:
    description: Keep a copy of each replaced file in C(<root>/.mailsec-backup/) (outside C(conf.d), which Exim reads).
    type: bool
    default: false
  confirm_address:
    description: Address on which the daemon must greet after a reload.
    type: str
    default: 127.0.0.1
  confirm_port:
    description: Port on which the daemon must greet after a reload.
    type: int
    default: 25
  root:
    description: The Exim configuration directory.
    type: path
    default: /etc/exim4
  exim_binary:
    description: The Exim binary.
    type: str
    default: exim4
  pid_file:
    description: PID file of the Exim daemon.
    type: path
    default: /run/exim4/exim.pid
  record:
    description:
      - Path of the apply record, a root-only JSON file outside O(root). Written (outside check mode) when the
        host is in sync with this call's input (nothing differed, or a change went live that a fresh plan finds
        complete). It holds O(record_digest) and a fingerprint (mode, owner, size, mtime, SHA-1) of every managed
        file and of C(exim4.conf).
      - M(mailsec.relay.host_state) reports whether the record is still intact (option C(records)); a role whose
        input has the same digest on an intact record skips this call, since the plan would find nothing to do.
      - Removed before a change goes live. Unset, no record is kept.
    type: path
  record_digest:
    description: The caller's digest of this call's input, stored in O(record). Required with O(record).
    type: str
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Validates the candidate (when Exim is installed) and reports the changes without making them.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: debian
notes:
  - Needs the Debian exim4 packages (C(update-exim4.conf)); C(exim4-daemon-heavy) for the Dovecot authenticator.
  - C(-bV) does not catch errors inside expansions, which is why O(checks) should never be empty.
seealso:
  - module: mailsec.relay.relay_probe
"""

EXAMPLES = r"""
- name: Install the relay policy for Exim (validated before it goes live)
  mailsec.relay.exim_config:
    files: "{{ (mailsec_relay_effective | mailsec.relay.exim_settings(ansible_default_ipv4.address)).files }}"
    checks: "{{ (mailsec_relay_effective | mailsec.relay.exim_settings(ansible_default_ipv4.address)).checks }}"

- name: A single hand-written check
  mailsec.relay.exim_config:
    files:
      /etc/exim4/conf.d/main/000_mailsec_relay:
        content: "MAIN_RELAY_NETS = <; 203.0.113.56/29\n"
    checks:
      - {client: 203.0.113.254, interface: 203.0.113.20, port: 25, recipient: x@example.net, expect: deny}
"""

RETURN = r"""
changed_files:
  description: Files that were (or in check mode would be) changed.
  returned: always
  type: list
  elements: str
checks:
  description: Result of each -bh check against the candidate.
  returned: when the candidate was built
  type: list
  elements: dict
  sample:
    - {name: "smtp: external client 203.0.113.254 -> foreign", verdict: deny, expect: deny, stage: RCPT,
       reply: "550 5.7.1 Relay not permitted", client: 203.0.113.254, port: 25, recipient: x@example.net,
       authenticated: false}
failed_checks:
  description: The checks whose verdict differed from the expectation (only on failure).
  returned: failure
  type: list
  elements: dict
reloaded:
  description: Whether a running daemon was sent SIGHUP and answered again.
  returned: always
  type: bool
backup_files:
  description: Copies of the replaced files.
  returned: when O(backup=true) and files were replaced
  type: list
  elements: str
rolled_back:
  description: Whether the previous configuration was restored after a failure while going live.
  returned: failure after files were installed
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mailsec.relay.plugins.module_utils.exim_apply import EximTransaction
from ansible_collections.mailsec.relay.plugins.module_utils.mta_backend import TransactionError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(
                type="dict",
                required=True,
            ),
            checks=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str"),
                    kind=dict(type="str", default="session", choices=["session", "route"]),
                    router=dict(type="str"),
                    client=dict(type="str"),
                    interface=dict(type="str"),
                    port=dict(type="int"),
                    sender=dict(type="str", default="mailsec-check@example.com"),
                    recipient=dict(type="str", required=True),
                    authenticated=dict(type="bool", default=False),
                    user=dict(type="str"),
                    expect=dict(type="str", required=True, choices=["accept", "deny"]),
                ),
            ),
            reload=dict(type="bool", default=True),
            backup=dict(type="bool", default=False),
            confirm_address=dict(type="str", default="127.0.0.1"),
            confirm_port=dict(type="int", default=25),
            root=dict(type="path", default="/etc/exim4"),
            exim_binary=dict(type="str", default="exim4"),
            pid_file=dict(type="path", default="/run/exim4/exim.pid"),
            record=dict(type="path"),
            record_digest=dict(type="str"),
        ),
        required_together=[("record", "record_digest")],
        supports_check_mode=True,
    )
    params = module.params

    def run(argv, data=None):
        return module.run_command(argv, data=data, binary_data=data is not None)

    try:
        transaction = EximTransaction(
            run,
            params["files"],
            params["checks"],
            reload=params["reload"],
            backup=params["backup"],
            find_binary=module.get_bin_path,
            exim=params["exim_binary"],
            root=params["root"],
            pid_file=params["pid_file"],
            confirm=(params["confirm_address"], params["confirm_port"]),
        )
        record = (params["record"], params["record_digest"]) if params["record"] else None
        result = transaction.run(module.check_mode, diff=module._diff, record=record)
    except TransactionError as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    for warning in transaction.warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
