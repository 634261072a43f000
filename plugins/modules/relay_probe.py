#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: relay_probe
short_description: Probe SMTP listeners for open relaying, AUTH placement, STARTTLS and smuggling flaws
version_added: 0.1.0
description:
  - Speaks SMTP to every listener of every target and compares what it sees with what the caller says must
    happen (the probe matrix T01-T20 of C(docs/probe-contract.md)). It knows nothing about MTAs.
  - Every listener given is expected to exist. One that refuses the connection or never greets (after
    O(retries)) gets one FAIL, probe C(T00) "listener reachable"; its other cases are INCONCLUSIVE.
  - Many targets per call; connections run concurrently (bounded by O(concurrency) and O(per_host)) and are reused
    with RSET while their error count stays well under the servers' error limits.
  - Never fails on a FAIL verdict; a finding is a result. C(mailsec.relay.verify) decides what fails.
  - Safety rules enforced by the engine for every write - DATA only to recipients in the canary domain (or the
    target's O(targets[].test_mailbox) for smuggling probes on port 25), no DATA at all without O(canary), and real
    credentials only after TLS.
  - Run it where the vantage is (C(delegate_to) the prober) and once per vantage, passing that vantage's
    O(source_address) and O(vantage).
  - On a local connection (the prober is the controller) without become or async, its action plugin validates the
    arguments against this module's spec and runs the probe engine in the controller's process instead of shipping
    the module; the result is the same. A remote prober, become or async runs the module.
author:
  - mailsec.relay developers (@mailsec)
requirements:
  - Python 3.11 or later where the module runs (the probe engine bounds every read with C(asyncio.timeout)).
options:
  targets:
    description: Hosts to probe.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name used in results (the inventory name).
        type: str
        required: true
      addresses:
        description: Every address is probed (IPv4 and IPv6).
        type: list
        elements: str
        required: true
      hostname:
        description:
          - The server's own name, used in the hostname trick forms. Defaults to O(targets[].name) (then letters, digits,
            C(.), C(_), C(:) and C(-) as they are).
          - A domain name; a Unicode name is sent in A-labels (C(xn--)). A name mixing look-alike alphabets, with a character
            IDNA 2003 and 2008 encode differently, or with a line break is refused before anything connects.
        type: str
      local_domains:
        description:
          - Hosted domains; inbound mail for them must be accepted on MX listeners (T13/T14).
          - Domain names, checked and converted as O(targets[].hostname).
        type: list
        elements: str
        default: []
      relay_domains:
        description:
          - Domains accepted and forwarded (backup MX); inbound must be accepted.
          - Domain names, checked and converted as O(targets[].hostname).
        type: list
        elements: str
        default: []
      test_mailbox:
        description:
          - A real local mailbox (C(user@domain), a plain dot-atom local part and an A-label domain). Used for T13, as
            spoofed sender (T15), and as the only non-canary recipient allowed for DATA (smuggling probes T17/T18 on MX
            listeners).
        type: str
      refused_recipients:
        description:
          - Addresses that MX listeners must refuse at RCPT (T23) - an unknown recipient of a relay domain with recipient
            validation (O(targets[].refused_recipients[].kind=unknown)), any address of a blocked domain (V(blocked)).
            Only RCPT is sent, never DATA.
        type: list
        elements: dict
        default: []
        suboptions:
          address:
            description: The recipient address.
            type: str
            required: true
          kind:
            description: Why it must be refused.
            type: str
            required: true
            choices: [unknown, blocked]
      listeners:
        description: Listeners and what must happen on each for this vantage.
        type: list
        elements: dict
        required: true
        suboptions:
          port:
            description: TCP port.
            type: int
            required: true
          role:
            description: C(mx) (port 25 semantics, never AUTH) or C(submission) (AUTH after TLS).
            type: str
            choices: [mx, submission]
            default: mx
          tls:
            description: C(none), C(starttls) (offered), C(required) (before anything), C(implicit) (465).
            type: str
            choices: [none, starttls, required, implicit]
            default: none
          relay:
            description: May this vantage relay unauthenticated here (C(allowed)), or must it be refused.
            type: str
            choices: [refused, allowed]
            default: refused
          auth_relay:
            description: Authenticated clients may relay here (submission listeners).
            type: bool
          sender_login_match:
            description:
              - The policy binds the envelope sender to the login; with O(probes=all) T10 runs here (FAIL instead of WARN
                when the sender is not bound).
            type: bool
            default: false
          reachable:
            description:
              - V(false) where the policy does not let this vantage reach the listener (bound to loopback or to
                another address, or the vantage is outside its connect list); a closed port is then what is
                expected (T00 SKIP, not a finding), and an open one is probed as declared.
            type: bool
            default: true
      extra_ports:
        description:
          - More ports to probe when they accept a TCP connection (e.g. C(26), C(2525)), judged with MX semantics
            (must not relay, no AUTH before TLS; no inbound duty). A closed one is SKIP, not a finding.
        type: list
        elements: int
        default: []
      auth:
        description: Test account for authenticated probes (T09, T10, T17 on submission); used only after TLS.
        type: dict
        suboptions:
          username:
            description: Login name.
            type: str
            required: true
          password:
            description: Password; never appears in results.
            type: str
            required: true
      sender_rate_limit:
        description:
          - T24 (issue 14), on the first submission listener with TLS; needs O(canary). After AUTH with this
            DEDICATED login (its budget for the window is spent) up to O(targets[].sender_rate_limit.limit) + 1
            messages go to the canary; one must be refused.
          - Without a login or a canary, with limit 0 or above the ceiling, or with O(targets[].sender_rate_limit.skip),
            it sends nothing and is a SKIP that says why.
        type: dict
        suboptions:
          limit:
            description: The policy's messages per login per window (0 - none).
            type: int
            required: true
          ceiling:
            description: The most messages the probe may send; it runs only when limit <= ceiling (capped at 100).
            type: int
            default: 100
          username:
            description: The dedicated login.
            type: str
          password:
            description: Its password; never appears in results.
            type: str
          skip:
            description: Do not run; a SKIP with this reason (the caller's, e.g. "no dedicated login").
            type: str
      auth_attempt_limit:
        description:
          - T25 (issue 14), on the first submission listener with TLS, after every case with real credentials;
            one wrong password, then cancelled AUTH exchanges, up to limit + 1 + limit/10 (one must get a 4xx).
          - With limit 0, above the ceiling, or with O(targets[].auth_attempt_limit.skip), a SKIP that says why.
        type: dict
        suboptions:
          limit:
            description: The policy's AUTH commands per client per minute (0 - none).
            type: int
            required: true
          ceiling:
            description: The most AUTH commands the probe may send; it runs only when limit <= ceiling (capped at 100).
            type: int
            default: 100
          skip:
            description: Do not run; a SKIP with this reason.
            type: str
  source_address:
    description:
      - Address(es) to bind to (the vantage point); one per IP family. Addresses of a family with no source
        address here are reported as SKIP.
    type: list
    elements: str
  vantage:
    description: Name of the vantage point, copied into every result and used as the case of T20.
    type: str
  ehlo_name:
    description:
      - EHLO name (a name the verifier owns), a host name or an address literal such as C([198.51.100.7]).
    type: str
    default: prober.mailsec.test
  canary:
    description:
      - Canary sink the verifier controls. Without it no DATA is ever sent (RCPT-only probes).
    type: dict
    suboptions:
      domain:
        description: Canary domain (its mail reaches the sink).
        type: str
        required: true
      spool:
        description: Directory where the sink stores one file per message, on the host running the module.
        type: path
      wait:
        description: Seconds to wait for a message to arrive.
        type: float
        default: 10
  extra_forms:
    description:
      - Relay forms of your own, run beside P01-P23 on every listener as cases C(X01), C(X02) ... (T11; T12 for
        trick recipients where the canary confirms).
      - Placeholders C({canary}) (the canary domain, or C(example.net) without one), C({foreign}) (C(example.net)
        in the sender; the canary domain in the recipient), C({domain}) (each hosted domain), C({host}) (the
        target's host name), C({literal}) (each address literal), C({local}) (the probe's token).
      - Strictly validated - printable ASCII without spaces, at most 200 characters, known placeholders only; the
        recipient must contain C({local}) and C({canary}) or C({foreign}). At most 32 forms.
    type: list
    elements: dict
    suboptions:
      sender:
        description: MAIL FROM argument, e.g. C(<probe@{literal}>).
        type: str
        required: true
      rcpt:
        description: RCPT TO argument, e.g. C(<{local}%{canary}@{domain}>).
        type: str
        required: true
      name:
        description: A name for reports.
        type: str
  probes:
    description:
      - C(all) or probe IDs C(T01) ... C(T25). C(all) runs T10 only on listeners with
        O(targets[].listeners[].sender_login_match); T24/T25 run only where a target names the limit.
      - C(T00) (listener reachable) always runs.
    type: list
    elements: str
    default: [all]
  concurrency:
    description: Most connections open at once.
    type: int
    default: 64
  per_host:
    description:
      - Most connections open at once to one host (stay under MTA per-client and total limits).
      - A target's addresses share it (IPv4 and IPv6 of a dual-stack host split it evenly, at least 2 each).
    type: int
    default: 10
  max_connections_per_host:
    description:
      - Most connections in all to one address during the run; V(0) sets no cap of the probe's own. Either
        way the connections go to the relay decision first (T00 and the shared sessions of every listener of
        the address), then to the other probes, most telling first; a host that refuses one with its
        per-client limit (a C(421) greeting such as Debian Sendmail's "Connection rate limit exceeded", 10 per
        client and window) gets no further connection, and probes that got none are INCONCLUSIVE, saying why.
    type: int
    default: 0
  timeout:
    description: Seconds to wait for each SMTP reply after the greeting (and for a TLS handshake).
    type: float
    default: 5
  connect_timeout:
    description: Seconds to wait for a TCP connection (plus O(timeout) for the handshake on implicit TLS).
    type: float
    default: 10
  greeting_timeout:
    description:
      - Seconds to wait for the greeting (multi-line greetings included). Real MXes greet late (reverse DNS,
        postscreen's pregreet wait, tarpits). Defaults to 30, or O(timeout) when that is longer.
    type: float
  tls_min_version:
    description:
      - Lowest TLS protocol version a TLS listener may accept (probe C(T21)). Accepting an older version, or a
        NULL, EXPORT, RC4 or anonymous cipher suite, is a FAIL (finding C(weak_tls)) on submission listeners and
        a WARN on MX listeners (opportunistic TLS). What the local OpenSSL cannot offer is SKIP, never PASS.
    type: str
    choices: [TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3]
    default: TLSv1.2
  unverified:
    description:
      - Verdict of probe C(T22) "relay decision verified", added to a listener whose required relay checks
        (C(T11)/P02, C(T05), C(T06)/relay, C(T20)) ended INCONCLUSIVE (finding C(unverified)). V(fail) by default,
        so a host whose relay decision rests on nothing never passes.
    type: str
    choices: [fail, warn]
    default: fail
  results:
    description:
      - V(compact) returns every result that is neither PASS nor SKIP in full and, per target, address, port and vantage,
        one aggregate of the PASS results (C(probe=passed), C(count), C(probes) as counts per probe ID), the
        first of that listener's results, and one of the SKIP results (C(probe=skipped), C(count), C(probes),
        C(checks) as probe/case names, C(reason) naming each distinct reason once after the checks it skipped).
        The engine folds each PASS into its aggregate as it is recorded, so a large run never holds every
        result. Counts per verdict are those of V(full), which returns every result.
    type: str
    choices: [compact, full]
    default: compact
  retries:
    description: Retries for 4xx replies and timeouts before INCONCLUSIVE.
    type: int
    default: 1
  retry_delay:
    description: Seconds before the first retry (grows linearly).
    type: float
    default: 2
  error_budget:
    description: Most error replies on one connection before a new one is opened (Postfix slows down after 10).
    type: int
    default: 8
  tls_verify:
    description: Verify server certificates (off by default; relay verdicts do not depend on the chain).
    type: bool
    default: false
  transcripts:
    description:
      - Which results keep their SMTP transcript. V(failures) keeps those of every result that is not a
        PASS, V(all) keeps every one, V(none) keeps none (and the engine does not build them).
    type: str
    choices: [failures, all, none]
    default: failures
  workers:
    description:
      - Worker processes for the probes; targets are shared out among them (each with its own share of
        O(concurrency)) and the results merged in order. V(0) means one per usable CPU, but only for runs
        with at least 12 listeners per process; V(1) probes in the module process itself.
    type: int
    default: 0
notes:
  - Supports check mode; the probes change nothing on the targets (DATA reaches only the canary or the test mailbox).
"""

EXAMPLES = r"""
- name: Probe the hardened fleet from the external vantage
  mailsec.relay.relay_probe:
    targets:
      - name: mx1
        addresses: [198.51.100.11, "2001:db8:25::11"]
        hostname: mx1.example.test
        local_domains: [example.test]
        listeners:
          - {port: 25, role: mx, tls: starttls, relay: refused}
          - {port: 587, role: submission, tls: required, relay: refused, auth_relay: true}
          - {port: 465, role: submission, tls: implicit, relay: refused, auth_relay: true}
        auth: {username: alice, password: "{{ vault_alice_password }}"}
    source_address: [198.51.100.100]
    vantage: external
    canary: {domain: canary.test, spool: /var/spool/canary, wait: 10}
  delegate_to: prober
  run_once: true
  register: probe
"""

RETURN = r"""
results:
  description:
    - One entry per probe case (see docs/probe-contract.md); with O(results=compact) the PASS results of each
      target, address, port and vantage are one aggregate entry (C(probe=passed), C(count), C(probes)), and so
      are its SKIP results (C(probe=skipped), C(count), C(probes), C(checks), C(reason)).
    - Every result that is neither PASS nor SKIP carries C(finding) (a stable id, docs/verify.md), C(severity) and C(reason).
  returned: always
  type: list
  elements: dict
  sample:
    - target: mx1
      address: 198.51.100.11
      port: 25
      probe: T12
      case: P13
      title: "relay refused: quoted local part hiding an @"
      verdict: FAIL
      finding: open_relay
      severity: critical
      expected: refused
      reason: "the canary received the relayed message"
      reply: {code: 250, enhanced: 2.1.5, text: "Ok", stage: RCPT}
      transcript: []
      client_seen: 198.51.100.100
      duration: 0.012
      vantage: external
      source_address: 198.51.100.100
    - target: mx1
      address: 198.51.100.11
      port: 25
      vantage: external
      source_address: 198.51.100.100
      verdict: PASS
      probe: passed
      count: 37
      probes: {T00: 1, T01: 1, T11: 14, T12: 21}
      title: "37 checks passed: T00, T01, T11 x14, T12 x21"
      duration: 0.4
summary:
  description: Counts per verdict, number of targets and results, wall time in seconds (and C(workers) when the
    probes ran in several processes).
  returned: always
  type: dict
  sample: {targets: 1, results: 126, PASS: 124, FAIL: 0, WARN: 1, INCONCLUSIVE: 1, SKIP: 0, seconds: 0.8}
"""

import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mailsec.relay.plugins.module_utils.smtp.engine import ConfigError, run
from ansible_collections.mailsec.relay.plugins.module_utils.smtp.probe_args import ARGUMENT_SPEC, engine_params


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if sys.version_info < (3, 11):
        module.fail_json(
            msg="mailsec.relay.relay_probe needs Python 3.11 or later where it runs (this is %d.%d): "
            "run it on a host that has it, e.g. delegate_to the controller or the prober" % sys.version_info[:2]
        )
    # results=compact: the engine folds each PASS into its listener's aggregate as it is recorded
    # (and in each worker process), so neither the engine nor this module ever holds every result.
    try:
        outcome = run(engine_params(module.params))
    except ConfigError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, results=outcome["results"], summary=outcome["summary"])


if __name__ == "__main__":
    main()
