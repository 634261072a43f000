# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding ids: the stable, documented names of what a non-PASS verdict means.

A probe result says *what was tried* (probe, case) and *what happened* (verdict, reply). A finding
says *what is wrong with the server*, in words a CI consumer can match on: ``open_relay`` is a
relay proven by the canary, ``accept_then_drop`` is acceptance without arrival. Every non-PASS,
non-SKIP result carries exactly one finding id from this catalogue (key ``finding``), its
``severity`` and a ``reason`` in words. The ids are an interface: add new ones, never rename or
reuse one (docs/verify.md lists them).

Pure data plus two lookups; no Ansible imports (the engine, the reporter and bench/ use it).
"""

from __future__ import annotations

# Most severe first; a host's worst finding decides its place in the fleet summary.
SEVERITIES = ("critical", "high", "medium", "low", "info")

# id -> (default severity, what it means). A result may carry a different severity than the
# default where the listener's role changes the weight (weak TLS: high on submission, low on 25).
CATALOG = {
    # Relay decisions
    "open_relay": ("critical",
        "relays mail for third parties: a message to a foreign domain was accepted and the canary "
        "received it"),
    "open_relay_unconfirmed": ("high",
        "accepted a foreign recipient without authentication; no canary was configured to prove "
        "or disprove delivery"),
    "accept_then_drop": ("medium",
        "accepted a foreign recipient (and the message), but the canary never received it: "
        "accept-then-drop or accept-then-bounce (backscatter risk)"),
    "accepts_all_recipients": ("medium",
        "accepts mail for recipients that do not exist in a hosted domain (no recipient "
        "validation): a backscatter source"),
    "blocked_domain_accepted": ("medium", "accepts mail for a domain the policy blocks"),
    "relay_after_failed_auth": ("critical",
        "relays after an AUTH with a wrong password was refused"),
    "client_identity_spoofing": ("critical",
        "honours XCLIENT or a PROXY protocol header from an untrusted client"),
    # Authentication placement
    "auth_on_mx_port": ("medium", "AUTH is offered or processed on the MX port 25"),
    "cleartext_auth": ("high", "AUTH is offered or credentials are processed before TLS"),
    "submission_without_tls": ("high",
        "a submission listener accepts a mail transaction before TLS"),
    "sender_login_mismatch": ("medium",
        "an authenticated client may use an envelope sender it does not own"),
    "auth_relay_broken": ("medium",
        "authenticated submission does not relay (the positive control failed)"),
    # TLS
    "starttls_missing": ("medium", "STARTTLS is not offered where it is expected"),
    "implicit_tls_broken": ("high",
        "the implicit-TLS listener answers in plaintext or its TLS handshake fails"),
    "weak_tls": ("high",
        "accepts a TLS protocol version or cipher suite below the policy's minimum"),
    "starttls_injection": ("high",
        "plaintext pipelined after STARTTLS is answered inside TLS (CVE-2011-0411 class)"),
    # Message integrity
    "smtp_smuggling": ("high",
        "accepts a non-standard end-of-data sequence: a second message can be smuggled "
        "(CVE-2023-51764/5/6 class)"),
    "unauth_pipelining": ("low",
        "accepts commands pipelined past DATA from an unauthenticated client (a smuggling "
        "enabler)"),
    # Availability of what must work
    "inbound_broken": ("high", "refuses inbound mail for a hosted domain"),
    "listener_unreachable": ("high", "a listener that must answer gives no SMTP greeting"),
    # Evidence
    "unverified": ("high",
        "a required relay check ended without a verdict (timeouts, temporary errors): the relay "
        "state is unknown"),
    "inconclusive": ("info",
        "the check ended without a verdict; it is not required for the relay decision"),
}


def severity(finding_id):
    """Default severity of a known finding id; KeyError for an unknown one (ids are a contract)."""
    return CATALOG[finding_id][0]


def describe(finding_id):
    """What a known finding id means, in words."""
    return CATALOG[finding_id][1]


def rank(severity_name):
    """Sort key: 0 for critical ... 4 for info; unknown severities sort last."""
    return SEVERITIES.index(severity_name) if severity_name in SEVERITIES else len(SEVERITIES)
