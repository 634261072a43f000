# -*- coding: utf-8 -*-
# Copyright (c) mailsec.relay developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the Postfix and Exim appliers share: does a listener greet after a reload.

``greet`` makes one SMTP connection: connect, read the greeting (optionally inside implicit TLS),
optionally EHLO + STARTTLS + TLS handshake, QUIT. ``confirm_all`` retries a check for several
targets until each has passed once or a deadline is reached. Each MTA keeps its own policy on top:
which listeners to check, which reply codes count, what a missing STARTTLS means.

Standard library only, no Ansible imports (unit tests drive it against an in-process server).
"""

from __future__ import annotations

import re
import socket
import ssl
import time

_REPLY = re.compile(rb"^(\d{3})([ -]|\r?\n|$)")
EHLO_NAME = "mailsec-confirm.invalid"


class SMTPCheckError(Exception):
    """The listener answered, but not as required (the message is fit for the user)."""


class StartTLSNotOffered(SMTPCheckError):
    """STARTTLS was asked for but the EHLO reply does not offer it."""


def read_reply(reader, limit=1024):
    """One (possibly multi-line) SMTP reply from a binary file object -> (code, [lines])."""
    lines = []
    while True:
        line = reader.readline(limit)
        if not line:
            raise SMTPCheckError("connection closed without a reply")
        match = _REPLY.match(line)
        if not match:
            raise SMTPCheckError("not an SMTP reply: %r" % line[:80].decode("latin-1"))
        lines.append(line.decode("latin-1").rstrip("\r\n"))
        if match.group(2) != b"-":
            return int(match.group(1)), lines


def client_context():
    """TLS client context that completes any handshake: the check is that TLS works, not whom it names."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def greet(host, port, implicit_tls=False, starttls=False, timeout=5.0, codes=(220,), ehlo_name=EHLO_NAME):
    """Connect to host:port and require a greeting whose code is in ``codes`` (None: any SMTP reply).

    ``implicit_tls``: handshake before the greeting (submissions, port 465). ``starttls``: EHLO, require
    STARTTLS in the reply (StartTLSNotOffered otherwise), STARTTLS, handshake; a bad key or certificate
    shows here. Ends with QUIT. Returns the greeting's lines. Raises OSError, ssl.SSLError or SMTPCheckError.
    """
    ctx = client_context() if implicit_tls or starttls else None
    sock = socket.create_connection((host, port), timeout=timeout)
    reader = None
    try:
        if implicit_tls:
            sock = ctx.wrap_socket(sock)
        reader = sock.makefile("rb")
        code, greeting = read_reply(reader)
        if codes is not None and code not in codes:
            raise SMTPCheckError("greeting %r" % greeting[-1])
        if starttls:
            sock.sendall(b"EHLO " + ehlo_name.encode("ascii") + b"\r\n")
            code, lines = read_reply(reader)
            if code != 250:
                raise SMTPCheckError("EHLO refused: %r" % lines[-1])
            if not any(line[4:].split(" ")[0].upper() == "STARTTLS" for line in lines[1:]):
                raise StartTLSNotOffered("STARTTLS is not offered")
            sock.sendall(b"STARTTLS\r\n")
            code, lines = read_reply(reader)
            if code != 220:
                raise SMTPCheckError("STARTTLS refused: %r" % lines[-1])
            reader.close()
            reader = None
            sock = ctx.wrap_socket(sock)
        try:
            sock.sendall(b"QUIT\r\n")
        except OSError:  # a server that greeted with an error may already have closed
            pass
    finally:
        if reader is not None:
            reader.close()
        sock.close()
    return greeting


def confirm_all(targets, check, timeout, interval=0.5, errors=(OSError, ssl.SSLError, SMTPCheckError), clock=time.time, sleep=time.sleep):
    """Call ``check(target)`` for every target until each has passed once or ``timeout`` seconds passed.

    Every target is tried at least once. Returns ``(passed, failed)``: target -> check's result, and
    target -> the last error (a string) for the targets that never passed. Errors other than
    ``errors`` propagate.
    """
    deadline = clock() + timeout
    pending = list(targets)
    passed, failed = {}, {}
    while True:
        still = []
        for target in pending:
            try:
                passed[target] = check(target)
                failed.pop(target, None)
            except errors as exc:
                failed[target] = str(exc) or exc.__class__.__name__
                still.append(target)
        pending = still
        if not pending or clock() >= deadline:
            return passed, failed
        sleep(interval)
