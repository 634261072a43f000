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
    "open_relay": ("critical", "relays mail for third parties: a message to a foreign domain was accepted and the canary received it"),
    "open_relay_unconfirmed": ("high", "accepted a foreign recipient without authentication; no canary was configured to prove or disprove delivery"),
    "accept_then_drop": (
        "medium",
        "accepted a foreign recipient (and the message), but the canary never received it: accept-then-drop or accept-then-bounce (backscatter risk)",
    ),
    "accepts_all_recipients": ("medium", "accepts mail for recipients that do not exist in a hosted domain (no recipient validation): a backscatter source"),
    "blocked_domain_accepted": ("medium", "accepts mail for a domain the policy blocks"),
    "relay_after_failed_auth": ("critical", "relays after an AUTH with a wrong password was refused"),
    "wrong_password_accepted": ("critical", "AUTH with a wrong password succeeds"),
    "trick_form_accepted": (
        "medium",
        "accepted a trick recipient form (percent hack, bang path, quoted or double @, source "
        "route) at RCPT; no canary could tell a relay from a strange local part",
    ),
    "relay_refused_for_trusted": ("medium", "refuses to relay for a vantage the policy lets relay (a trusted network is broken)"),
    "auth_relay_unexpected": ("medium", "an authenticated client may relay on a listener where the policy says it may not"),
    "client_identity_spoofing": ("critical", "honours XCLIENT or a PROXY protocol header from an untrusted client"),
    # Authentication placement
    "auth_on_mx_port": ("medium", "AUTH is offered or processed on the MX port 25"),
    "cleartext_auth": ("high", "AUTH is offered or credentials are processed before TLS"),
    "submission_without_tls": ("high", "a submission listener accepts a mail transaction before TLS"),
    "sender_login_mismatch": ("medium", "an authenticated client may use an envelope sender it does not own"),
    "auth_relay_broken": ("medium", "authenticated submission does not relay (the positive control failed)"),
    "sender_rate_unlimited": ("medium", "an authenticated login sent more messages than the policy's per-login limit allows (a stolen login is not throttled)"),
    "auth_guessing_unthrottled": (
        "medium",
        "more AUTH attempts from one client than the policy's limit were answered without a throttle (password guessing is not braked)",
    ),
    # TLS
    "starttls_missing": ("medium", "STARTTLS is not offered where it is expected"),
    "implicit_tls_broken": ("high", "the implicit-TLS listener answers in plaintext or its TLS handshake fails"),
    "weak_tls": ("high", "accepts a TLS protocol version or cipher suite below the policy's minimum"),
    "starttls_injection": ("high", "plaintext pipelined after STARTTLS is answered inside TLS (CVE-2011-0411 class)"),
    # Message integrity
    "smtp_smuggling": ("high", "accepts a non-standard end-of-data sequence: a second message can be smuggled (CVE-2023-51764/5/6 class)"),
    "unauth_pipelining": ("low", "accepts commands pipelined past DATA from an unauthenticated client (a smuggling enabler)"),
    # Availability of what must work
    "inbound_broken": ("high", "refuses inbound mail for a hosted domain"),
    "listener_unreachable": ("high", "a listener that must answer gives no SMTP greeting"),
    # Outbound through the smarthost (roles/verify verify_outbound; module_utils/outbound.py)
    "outbound_not_via_smarthost": (
        "high",
        "the outbound probe's message did not reach the canary only through the authenticated, encrypted smarthost (expect delivered)",
    ),
    "outbound_fails_open": (
        "high",
        "with a refused smarthost login the outbound probe's message was not held in the host's queue, or it reached the canary anyway (expect queued)",
    ),
    # Evidence
    "unverified": ("high", "a required relay check ended without a verdict (timeouts, temporary errors): the relay state is unknown"),
    "inconclusive": ("info", "the check ended without a verdict; it is not required for the relay decision"),
    # Fallbacks of the reporter for rows that name no finding (drift, older engines)
    "config_drift": ("high", "a setting read back from the server differs from the relay policy (drift check)"),
    "check_error": ("high", "a check could not run: the host was unreachable or the reading module failed"),
    "unclassified": ("medium", "a non-PASS probe result that names no finding (an engine older than the finding ids)"),
}


# Which finding a non-PASS, non-SKIP verdict of a probe means: the one place that maps probe
# results to ids. Per probe: a key is a tag the probe put on its outcome (what the evidence was:
# "confirmed", "unconfirmed", ...) or a verdict; the tag wins. A value is an id, or (id, severity)
# where this outcome weighs other than the id's default. INCONCLUSIVE is "inconclusive" unless a
# probe says otherwise. T20 (per-vantage summary) takes the finding of the result it summarises.
_RELAY = {
    "confirmed": "open_relay",
    "unconfirmed": "open_relay_unconfirmed",
    "dropped": "accept_then_drop",
    "trick_unconfirmed": "trick_form_accepted",
    "refused_trusted": "relay_refused_for_trusted",
    "trick_dropped": "accept_then_drop",  # a trick form accepted, never arrived
    "greeting_refused": "relay_refused_for_trusted",  # greeting refusal where this vantage may relay
    "FAIL": "open_relay_unconfirmed",
    "WARN": "accept_then_drop",
}
PROBE_FINDINGS = {
    "T00": {"FAIL": "listener_unreachable"},
    "T01": {"FAIL": "auth_on_mx_port", "no_starttls": "starttls_missing"},
    "T02": {"FAIL": "auth_on_mx_port"},
    "T03": {"FAIL": "cleartext_auth", "no_starttls": "starttls_missing"},
    "T04": {"FAIL": "cleartext_auth"},
    "T05": dict(_RELAY, FAIL="submission_without_tls", unconfirmed="submission_without_tls"),
    "T06": dict(_RELAY, FAIL="auth_relay_broken", no_starttls="starttls_missing"),
    "T07": {"FAIL": "implicit_tls_broken"},
    "T08": {"FAIL": "relay_after_failed_auth", "wrong_password_accepted": "wrong_password_accepted", "dropped": "accept_then_drop"},
    "T09": {"FAIL": "auth_relay_broken", "auth_unexpected": "auth_relay_unexpected"},
    "T10": {"FAIL": "sender_login_mismatch", "WARN": ("sender_login_mismatch", "low")},
    "T11": dict(_RELAY),
    "T12": dict(_RELAY),
    "T13": {"FAIL": "inbound_broken"},
    "T14": {"FAIL": ("inbound_broken", "medium")},
    "T15": dict(_RELAY),
    "T16": {"FAIL": "starttls_injection", "WARN": ("starttls_injection", "low")},
    "T17": {"FAIL": "smtp_smuggling"},
    # T18 fails only beside a failing T17: the same weakness, named once (RFC 2920 allows pipelining)
    "T18": {"WARN": "unauth_pipelining", "FAIL": "smtp_smuggling"},
    "T19": {"FAIL": "client_identity_spoofing"},
    # T20 takes the finding of the result it summarises; this is the fallback
    "T20": dict(_RELAY, FAIL="open_relay_unconfirmed", WARN="accept_then_drop"),
    "T21": {"FAIL": "weak_tls", "WARN": ("weak_tls", "low")},  # engine-b's TLS probe
    "T22": {
        "FAIL": "unverified",
        "WARN": ("unverified", "medium"),  # engine-b's "unverified" result
        "INCONCLUSIVE": "unverified",
    },
    # refused hosted recipients (issue 15): an unknown name of a validated relay domain, a blocked domain
    "T23": {"FAIL": "accepts_all_recipients", "unknown": "accepts_all_recipients", "blocked": "blocked_domain_accepted"},
    # issue 14: per-login sender rate limit, AUTH attempts per client
    "T24": {"FAIL": "sender_rate_unlimited"},
    "T25": {"FAIL": "auth_guessing_unthrottled"},
}
# The listener's role changes what a finding means or weighs. An "extra" listener is a port found
# open beside the declared ones (MX semantics, but AUTH after TLS is allowed there): AUTH before TLS
# on it is cleartext AUTH, not "AUTH on port 25".
ROLE_FINDINGS = {
    ("extra", "auth_on_mx_port"): "cleartext_auth",
}
ROLE_SEVERITY = {
    ("submission", "starttls_missing"): "high",  # RFC 8314/6409: submission needs TLS
    ("mx", "starttls_missing"): "medium",  # RFC 3207: opportunistic on 25
}


def finding_for(probe, verdict, tag=None, role=None):
    """``(finding id, severity)`` for a non-PASS, non-SKIP verdict of ``probe``; None for PASS/SKIP.

    Tags count for FAIL and WARN; a WARN without an entry of its own takes the FAIL entry. KeyError
    for an unknown probe (every probe has a FAIL entry: unit-tested)."""
    if verdict in ("PASS", "SKIP"):
        return None
    table = PROBE_FINDINGS[probe]
    if verdict == "INCONCLUSIVE":
        entry = table.get("INCONCLUSIVE", "inconclusive")
    elif tag is not None and tag in table:
        entry = table[tag]
    elif verdict in table:
        entry = table[verdict]
    else:
        entry = table["FAIL"]
    finding_id, level = entry if isinstance(entry, tuple) else (entry, None)
    finding_id = ROLE_FINDINGS.get((role, finding_id), finding_id)
    level = level or ROLE_SEVERITY.get((role, finding_id)) or severity(finding_id)
    return finding_id, level


def outcome_keys(probe):
    """Every (verdict, tag) a probe's table names, for the coverage test."""
    keys = []
    for key in PROBE_FINDINGS[probe]:
        if key in ("FAIL", "WARN", "INCONCLUSIVE"):
            keys.append((key, None))
            keys.append(("WARN", None))
        else:
            keys.extend((verdict, key) for verdict in ("FAIL", "WARN"))
    return keys


def severity(finding_id):
    """Default severity of a known finding id; KeyError for an unknown one (ids are a contract)."""
    return CATALOG[finding_id][0]


def describe(finding_id):
    """What a known finding id means, in words."""
    return CATALOG[finding_id][1]


def rank(severity_name):
    """Sort key: 0 for critical ... 4 for info; unknown severities sort last."""
    return SEVERITIES.index(severity_name) if severity_name in SEVERITIES else len(SEVERITIES)
