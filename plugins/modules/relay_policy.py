# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the work is done on the controller by the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: relay_policy
short_description: Validate the mailsec.relay relay policy and set the effective policy fact
description:
  - Reads every C(mailsec_relay_*) variable of the host (templated), or the mapping given in O(variables),
    and parses, normalizes and validates it as described in C(docs/policy-model.md).
  - On success sets the fact C(mailsec_relay_effective), the effective policy that the hardening roles
    render and the verifier derives its expectations from.
  - On any problem fails with every error at once, one per line, each naming the variable
    (for example C(mailsec_relay_listeners[1].tls)) and saying how to fix it.
  - Runs on the controller only and never connects to the managed host.
  - Passwords in C(mailsec_relay_sasl_users) never appear in the result, not even in error messages;
    the effective policy carries user names only.
version_added: "0.1.0"
options:
  variables:
    description:
      - The policy as a mapping of C(mailsec_relay_*) variables, instead of the host's variables.
      - Keys without the C(mailsec_relay_) prefix are ignored; unknown keys with it are errors.
    type: dict
requirements:
  - netaddr (on the controller)
extends_documentation_fragment:
  - action_common_attributes
  - action_common_attributes.conn
  - action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  become:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  connection:
    support: none
  delegation:
    support: none
    details: The action runs on the controller anyway; delegation has no effect.
  diff_mode:
    support: none
  platform:
    platforms: all
notes:
  - Unknown C(mailsec_relay_*) variables are errors (with a "did you mean" hint), so typos cannot silently
    weaken the policy. C(mailsec_relay_effective) is this action's output and is ignored as input.
  - The role C(mailsec.relay.policy) runs this action; the other roles of the collection depend on it.
seealso:
  - name: Relay policy model
    description: Variables, profile defaults, the effective policy and its errors.
    link: https://github.com/mailsec/relay/blob/main/docs/policy-model.md
author:
  - mailsec.relay developers (@mailsec)
"""

EXAMPLES = r"""
- name: Validate the relay policy of every host and set mailsec_relay_effective
  mailsec.relay.relay_policy:

- name: Validate a policy given explicitly
  mailsec.relay.relay_policy:
    variables:
      mailsec_relay_profile: mx_submission
      mailsec_relay_local_domains: [example.test]
      mailsec_relay_networks: [198.51.100.48/28]
      mailsec_relay_tls_selfsigned: true

- name: Show the effective policy
  ansible.builtin.debug:
    var: mailsec_relay_effective
"""

RETURN = r"""
ansible_facts:
  description: Facts set by the action.
  returned: success
  type: dict
  contains:
    mailsec_relay_effective:
      description:
        - The effective policy (see C(docs/policy-model.md)).
        - Networks are netaddr-normalized, merged and sorted (IPv4 first); domains lower-case, sorted, unique.
        - Every listener carries its resolved C(relay_networks), C(connect_allow) and C(connect_deny).
      returned: success
      type: dict
      sample:
        profile: mx_submission
        hostname: mx1.example.test
        local_domains: [example.test]
        relay_domains: []
        relay_networks: [198.51.100.48/28]
        never_relay_networks: [198.51.100.51/32]
        trust_loopback: true
        loopback_networks: [127.0.0.0/8, "::1/128"]
        connect_allow: []
        connect_deny: []
        auth_relay: true
        client_names: []
        listeners:
          - {name: smtp, address: "*", port: 25, role: mx, tls: starttls, auth: false,
             relay_networks: [198.51.100.48/28], connect_allow: [], connect_deny: []}
          - {name: submission, address: "*", port: 587, role: submission, tls: required, auth: true,
             relay_networks: [], connect_allow: [], connect_deny: []}
          - {name: submissions, address: "*", port: 465, role: submission, tls: implicit, auth: true,
             relay_networks: [], connect_allow: [], connect_deny: []}
        tls: {cert: /etc/ssl/mailsec/relay.crt, key: /etc/ssl/mailsec/relay.key, selfsigned: true}
        sasl: {backend: dovecot, users: [alice]}
        smarthost: "[198.51.100.100]:25"
        warnings: []
errors:
  description: Every policy error, structured (the same text is in C(msg), one error per line).
  returned: failure
  type: list
  elements: dict
  contains:
    variable:
      description: The variable at fault, with its index or key path.
      type: str
      sample: mailsec_relay_listeners[1].tls
    message:
      description: What is wrong.
      type: str
    fix:
      description: How to fix it.
      type: str
"""
