#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mta_facts
short_description: Read back the relay policy a Postfix or Exim host really enforces
version_added: "0.1.0"
description:
  - Detects which MTA runs (Postfix or Exim), its version and its SMTP listeners (address, port,
    TLS mode, AUTH offered), and reads back the B(effective) relay policy, normalized into the
    effective-policy shape of C(docs/policy-model.md).
  - "Postfix: C(postconf -n), C(postconf -x), C(postconf -M), C(postconf -Px) and the cidr tables the
    restrictions reference; the relay and recipient restriction lists are evaluated over address sets."
  - "Exim: C(exim4 -bV), C(exim4 -bP) (options, named lists, authenticators), one C(exim4 -be) per
    listener for STARTTLS/AUTH advertisement and optional C(exim4 -bh) spot checks through the live ACLs."
  - With O(policy) (the desired effective policy, fact C(mailsec_relay_effective)) it also compares
    both and returns drift findings; with C(--diff) it shows every drifted setting from what to what.
  - Read-only; never changes the host. Sets C(ansible_facts.mailsec_relay_readback).
author:
  - mailsec.relay developers (@mailsec)
options:
  mta:
    description: Which MTA to read; V(auto) picks the one installed (the running one if both are).
    type: str
    choices: [auto, postfix, exim]
    default: auto
  policy:
    description:
      - Desired effective policy (C(mailsec_relay_effective) from M(mailsec.relay.relay_policy)).
      - When given, the module returns O(policy) drift C(findings) and the Exim spot checks use its
        sample clients and expectations.
    type: dict
  spot_checks:
    description: Run C(exim -bh) relay spot checks (Exim only; they neither log nor send anything).
    type: bool
    default: true
  postfix_config_dir:
    description: Postfix configuration directory (C(postconf -c)); default is Postfix's own.
    type: path
  exim_binary:
    description: Exim binary name or path; default C(exim4), else C(exim).
    type: str
  host_label:
    description: Name of this host in findings (pass C(inventory_hostname)); default the policy's hostname.
    type: str
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Runs the same read-only commands as without check mode.
  diff_mode:
    support: full
    details: With O(policy), every drifted setting as desired (before) and read back (after).
  platform:
    platforms: posix
notes:
  - "The managed host needs Python 3 only (no netaddr): address sets use the standard library."
"""

EXAMPLES = r"""
- name: Read back the relay policy
  mailsec.relay.mta_facts:

- name: Read back and compare with the desired policy
  mailsec.relay.mta_facts:
    policy: "{{ mailsec_relay_effective }}"
  register: drift

- name: Fail on drift
  ansible.builtin.fail:
    msg: "{{ drift.findings | selectattr('verdict', 'eq', 'FAIL') | map(attribute='detail') | list }}"
  when: drift.drifted
"""

RETURN = r"""
ansible_facts:
  description: Facts set by this module.
  returned: always
  type: dict
  contains:
    mailsec_relay_readback:
      description: "C({mta, version, running, policy, notes, spot_checks})"
      type: dict
      sample:
        mta: postfix
        version: 3.7.11
        running: true
        policy:
          hostname: mx1.example.test
          relay_networks: [198.51.100.48/28]
          listeners:
            - {name: smtp, address: '*', port: 25, role: mx, tls: starttls, auth: false}
          smarthost: '[smarthost.example.test]:587'
          smarthost_tls: verify
          # The credentials file: user name, owner, group and mode; the password is never read back.
          smarthost_auth:
            username: app1@example.test
            file: {path: /etc/postfix/sasl/mailsec_smarthost_passwd, exists: true, owner: root, group: root, mode: '0600', username: app1@example.test}
        notes: []
findings:
  description: Drift findings C({host, check, verdict, expected, actual, detail}), one per setting.
  returned: when O(policy) is given
  type: list
  elements: dict
summary:
  description: C({PASS, FAIL, drifted, failed_checks}).
  returned: when O(policy) is given
  type: dict
drift_lines:
  description: "One line per drifted setting: C(check: expected -> actual (detail))."
  returned: when O(policy) is given
  type: list
  elements: str
drifted:
  description: True when any finding is FAIL.
  returned: always
  type: bool
"""

import grp
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mailsec.relay.plugins.module_utils import drift, exim_readback, postfix_readback

EXIM_PID_FILES = ("/run/exim4/exim.pid", "/var/run/exim4/exim.pid", "/run/exim.pid", "/var/spool/exim/exim-daemon.pid")


def _read_file(path):
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _stat_file(path):
    """Owner, group and mode of a file (the smarthost credentials), or None when it is missing."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return {"owner": owner, "group": group, "mode": "%04o" % stat.S_IMODE(info.st_mode)}


def _pid_alive(paths):
    for path in paths:
        text = _read_file(path)
        try:
            os.kill(int((text or "").split()[0]), 0)
            return True
        except (ValueError, IndexError, OSError):
            continue
    return False


def main():
    module = AnsibleModule(
        argument_spec=dict(
            mta=dict(type="str", default="auto", choices=["auto", "postfix", "exim"]),
            policy=dict(type="dict"),
            spot_checks=dict(type="bool", default=True),
            postfix_config_dir=dict(type="path"),
            exim_binary=dict(type="str"),
            host_label=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params

    def run(argv, data=None):
        return module.run_command(argv, data=data, binary_data=False, environ_update={"LANG": "C", "LC_ALL": "C"})

    postconf = module.get_bin_path("postconf")
    exim = module.get_bin_path(params["exim_binary"] or "exim4") or module.get_bin_path("exim")
    postfix_running = False
    if postconf:
        postfix_bin = module.get_bin_path("postfix")
        if postfix_bin:
            argv = [postfix_bin] + (["-c", params["postfix_config_dir"]] if params["postfix_config_dir"] else []) + ["status"]
            postfix_running = run(argv)[0] == 0
    exim_running = bool(exim) and _pid_alive(EXIM_PID_FILES)

    mta = params["mta"]
    if mta == "auto":
        if postconf and exim:
            mta = "exim" if exim_running and not postfix_running else "postfix"
        else:
            mta = "postfix" if postconf else "exim" if exim else None

    try:
        if mta == "postfix":
            if not postconf:
                module.fail_json(msg="mta=postfix but postconf was not found on this host")
            raw = postfix_readback.collect(run, _read_file, postconf, params["postfix_config_dir"], stat_file=_stat_file)
            readback = postfix_readback.interpret(raw)
            readback["running"] = postfix_running
        elif mta == "exim":
            if not exim:
                module.fail_json(msg="mta=exim but neither exim4 nor exim was found on this host")
            raw = exim_readback.collect(run, exim, desired=params["policy"], run_spot_checks=params["spot_checks"], read_file=_read_file, stat_file=_stat_file)
            readback = exim_readback.interpret(raw, params["policy"])
            readback["running"] = exim_running
        else:
            readback = {
                "mta": None,
                "version": None,
                "running": False,
                "policy": None,
                "notes": ["neither Postfix (postconf) nor Exim (exim4/exim) is installed"],
            }
    except (postfix_readback.ReadbackError, exim_readback.ReadbackError) as exc:
        module.fail_json(msg=str(exc))

    result = {"changed": False, "ansible_facts": {"mailsec_relay_readback": readback}, "drifted": False}
    if params["policy"] is not None:
        host = params["host_label"] or params["policy"].get("hostname") or "localhost"
        findings = drift.compare(params["policy"], readback.get("policy"), host)
        if readback.get("policy") is not None:
            findings.append(
                drift.finding(
                    host,
                    "mta running",
                    readback["running"],
                    True,
                    readback["running"],
                    "" if readback["running"] else "%s is installed but not running" % readback["mta"],
                )
            )
        findings += drift.spot_check_findings(host, readback.get("spot_checks"))
        summary = drift.summarize(findings)
        result.update(findings=findings, summary=summary, drifted=summary["drifted"], drift_lines=drift.lines(findings))
        if module._diff:
            result["diff"] = drift.diff(findings)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
