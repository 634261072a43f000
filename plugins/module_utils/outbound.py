# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The outbound probe of roles/verify (issue 14): a null client's mail goes only through the
authenticated, encrypted smarthost, and a wrong smarthost password fails closed.

Pure Python, no Ansible: the role's tasks send a token message on the client and collect the
evidence (the canary's copy, the client's queue, the smarthost's log); these functions judge it.

* delivered: the canary's copy exists; its client (the sink's ``X-Canary-Peer``) is a smarthost
  address, never the client itself; the smarthost's Received header (the topmost) names the
  client's address and the protocol ``ESMTPSA`` (RFC 3848: ESMTP with STARTTLS and SMTP AUTH); and,
  when a smarthost log is given, one of its lines about the client matches every pattern given.
* queued: the message is still in the client's queue, deferred for a reason that matches
  ``queued_reason`` (an authentication failure), and the canary has no copy; with a smarthost log,
  one line about the client matches every ``queued`` pattern.

:func:`report_finding` turns a verdict into a row of relay_report's ``findings`` (source outbound).
"""

from __future__ import annotations

import json
import re

from ansible_collections.mailsec.relay.plugins.module_utils.smtp.reply import printable

# RFC 3848 2: "ESMTPSA" - ESMTP with both STARTTLS and SMTP AUTH. Exim writes it in lower case.
_ESMTPSA = re.compile(r"\bwith\s+ESMTPSA\b", re.IGNORECASE)
_PEER = re.compile(r"^X-Canary-Peer:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


def _address(value):
    return str(value).strip().strip("[]").lower()


def first_received(text):
    """The topmost Received header of a stored message, unfolded, or None."""
    lines = (text or "").splitlines()
    for index, line in enumerate(lines):
        if not line.strip():
            return None  # end of the header
        if line.lower().startswith("received:"):
            header = [line.strip()]
            for folded in lines[index + 1 :]:
                if not folded[:1].isspace():
                    break
                header.append(folded.strip())
            return " ".join(header)
    return None


def canary_peer(text):
    """The address the canary sink saw as its client (``X-Canary-Peer``), or None."""
    match = _PEER.search(text or "")
    return _address(match.group(1)) if match else None


def _log_match(lines, client_addresses, patterns):
    """Whether one smarthost log line about the client matches every pattern (a list of regexes)."""
    marks = ["[%s]" % _address(a) for a in client_addresses]
    for line in lines or []:
        if any(mark in line.lower() for mark in marks) and all(re.search(p, line) for p in patterns):
            return True
    return False


def judge_delivered(text, smarthost_addresses, client_addresses, log_lines=None, log_patterns=None):
    """Checks (name -> bool) and verdict of a delivered outbound probe; ``text`` is the canary's copy."""
    smarthosts = set(_address(a) for a in smarthost_addresses or [])
    clients = set(_address(a) for a in client_addresses or [])
    received = first_received(text) or ""
    checks = {
        "arrived_at_canary": bool(text),
        "canary_client_is_smarthost": canary_peer(text) in smarthosts,
        "canary_client_is_not_the_client": bool(text) and canary_peer(text) not in clients,
        "smarthost_received_from_client": any("[%s]" % c in received.lower() for c in clients),
        "smarthost_received_over_tls_with_auth": bool(_ESMTPSA.search(received)),
    }
    if log_patterns:
        checks["smarthost_log"] = _log_match(log_lines, client_addresses, log_patterns)
    return _verdict("delivered", checks, {"received": received[:400], "canary_peer": canary_peer(text)})


def queue_state(output, rcpt):
    """The client's queue entry for ``rcpt``: ``{queued, deferred, reason}``.

    ``output`` is what roles/verify's queue task prints: ``@@ postfix`` then ``postqueue -j``, or
    ``@@ exim`` then, per queued message to ``rcpt``, ``@@ queued <id>`` and its message log
    (``exim -Mvl``).
    """
    lines = (output or "").splitlines()
    rcpt = rcpt.lower()
    state = {"queued": False, "deferred": False, "reason": ""}
    if lines[:1] == ["@@ postfix"]:
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            for item in entry.get("recipients") or []:
                if str(item.get("address", "")).lower() == rcpt:
                    state["queued"] = True
                    reason = str(item.get("delay_reason") or "")
                    if reason or entry.get("queue_name") == "deferred":
                        state["deferred"] = True
                        state["reason"] = reason
    elif lines[:1] == ["@@ exim"]:
        for line in lines[1:]:
            if line.startswith("@@ queued "):
                state["queued"] = True
            elif state["queued"] and rcpt in line.lower() and re.search(r"\bdefer\b", line):
                state["deferred"] = True
                state["reason"] = line.strip()
    return state


def judge_queued(queue, canary_files, queued_reason, client_addresses, log_lines=None, log_patterns=None):
    """Checks and verdict of a refused smarthost login: ``queue`` from :func:`queue_state`,
    ``canary_files`` the canary spool files holding the token (must be none)."""
    checks = {
        "still_in_client_queue": bool(queue.get("queued")),
        "deferred_for_authentication": bool(queue.get("deferred")) and bool(re.search(queued_reason, queue.get("reason") or "")),
        "nothing_at_canary": not canary_files,
    }
    if log_patterns:
        checks["smarthost_log"] = _log_match(log_lines, client_addresses, log_patterns)
    return _verdict("queued", checks, {"reason": (queue.get("reason") or "")[:400], "canary_files": list(canary_files or [])})


def _verdict(expect, checks, evidence):
    failed = [name for name, ok in checks.items() if not ok]
    return {
        "expect": expect,
        "verdict": "FAIL" if failed else "PASS",
        "checks": checks,
        "failed": failed,
        "evidence": evidence,
    }


# A verdict's row in the reports: a check name without the token (stable from run to run) and the
# finding a FAIL means.
REPORT_CHECKS = {
    "delivered": ("outbound through the authenticated smarthost (expect delivered)", "outbound_not_via_smarthost"),
    "queued": ("outbound held back by a refused smarthost login (expect queued)", "outbound_fails_open"),
}


def _evidence(result, limit):
    """``(key, text)`` of a verdict's evidence, server text escaped and cut at ``limit``."""
    for key, value in sorted((result.get("evidence") or {}).items()):
        yield key, printable(value if isinstance(value, str) else json.dumps(value))[:limit]


def report_finding(host, result):
    """One outbound verdict (:func:`judge_delivered`, :func:`judge_queued`, with its ``token``) as a
    row of relay_report's ``findings``. The evidence comes from the smarthost and the queue: its
    control characters are escaped like every server text in the reports."""
    expect = str(result.get("expect") or "")
    check, finding = REPORT_CHECKS.get(expect, ("outbound (expect %s)" % printable(expect)[:40], "outbound_not_via_smarthost"))
    checks = result.get("checks") or {}
    failed = [str(name) for name in result.get("failed") or []]
    evidence = "; ".join("%s: %s" % item for item in _evidence(result, 300))
    row = {
        "host": str(host),
        "check": check,
        "verdict": str(result.get("verdict") or "ERROR"),
        "expected": "every check holds: " + ", ".join(sorted(str(name) for name in checks)),
        "actual": ("failed: " + ", ".join(failed)) if failed else "every check held",
        "detail": "token %s; %s" % (printable(str(result.get("token") or "")), evidence),
        "source": "outbound",
    }
    if failed:
        row.update(finding=finding, reason="failed: " + ", ".join(failed))
    return row


def failure_lines(result, log_lines=None):
    """The lines a host fails with when its outbound verdict is not PASS (none when it is): what
    was expected, the failed checks, the evidence and the smarthost's last log lines, server text
    escaped."""
    if not result or result.get("verdict") == "PASS":
        return []
    lines = [
        "outbound probe %s (expect %s, token %s): failed %s"
        % (
            printable(str(result.get("verdict"))),
            printable(str(result.get("expect"))),
            printable(str(result.get("token"))),
            ", ".join(map(str, result.get("failed") or [])),
        )
    ]
    lines.extend("evidence %s: %s" % item for item in _evidence(result, 400))
    lines.extend("smarthost log: %s" % printable(str(line))[:400] for line in (log_lines or [])[-5:])
    return lines
