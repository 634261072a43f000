# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lightweight emulated hardened MTA for the fleet bench (loopback only).

Replies byte for byte like tests/unit/smtp/fakesmtp.FakeHost with its default (hardened)
behaviour: mx (STARTTLS, no AUTH, foreign RCPT 554 5.7.1, double-@ RCPT 501, local domains
accepted), submission (530 before STARTTLS, AUTH only after TLS, 530 5.7.0 to MAIL before AUTH)
and submissions (implicit TLS), with real TLS from the same kind of context. What makes it lighter
is only how it runs: one asyncio.Protocol per connection (no task, StreamReader/StreamWriter per
connection), commands handled as the bytes arrive, and the replies to one pipelined group sent in
one write (as Postfix does), not one write per reply. None of the test server's fault modes are
here: for those, use fakesmtp. tests/unit/smtp/test_lean_smtp.py runs the engine against both and
requires the same verdicts, replies and reasons, case by case.
"""

from __future__ import annotations

import asyncio
import os
import sys

# SASL decoding is the unit tests' server's own, so both endpoints parse AUTH the same way.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "unit", "smtp"))
from fakesmtp import _b64, _decode_plain  # noqa: E402  pylint: disable=wrong-import-position

LOCAL_DOMAINS = ("example.test",)
USERS = {"alice": "s3cret-Pass"}


class LeanServer:
    """One listener: role ``mx`` or ``submission``; ``implicit``: TLS before the greeting."""

    def __init__(self, hostname, role, tls_context, implicit=False, tls_required=False,
                 local_domains=LOCAL_DOMAINS, users=None):
        self.hostname = hostname
        self.role = role
        self.tls_context = tls_context
        self.implicit = implicit
        self.tls_required = tls_required
        self.local_domains = tuple(d.lower() for d in local_domains)
        self.users = dict(USERS if users is None else users)
        self.connections = 0
        self.tls_handshakes = 0
        self.transactions = 0
        self.server = None
        self.port = None
        banner = ("%s ESMTP fake" % hostname, "this server is fake", "and multi-line")
        self.banner = reply(220, *banner)

    async def start(self, host="127.0.0.1", port=0):
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Session(self), host, port,
                                               ssl=self.tls_context if self.implicit else None)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self):
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class LeanHost:
    """mx, submission (587-like) and submissions (465-like) listeners of one hardened host."""

    def __init__(self, tls_context, hostname="mx.example.test"):
        self.mx = LeanServer(hostname, "mx", tls_context)
        self.submission = LeanServer(hostname, "submission", tls_context, tls_required=True)
        self.submissions = LeanServer(hostname, "submission", tls_context, implicit=True)
        self.servers = (self.mx, self.submission, self.submissions)

    async def start(self, host="127.0.0.1", ports=(0, 0, 0)):
        for server, port in zip(self.servers, ports):
            await server.start(host, port)

    async def stop(self):
        for server in self.servers:
            await server.stop()


def reply(code, *lines):
    lines = lines or ("",)
    last = len(lines) - 1
    return b"".join(("%d%s%s\r\n" % (code, " " if i == last else "-", text)).encode()
                    for i, text in enumerate(lines))


OK = reply(250, "2.0.0 Ok")
UNKNOWN = reply(502, "5.5.2 Error: command not recognized")
END_OF_DATA = b"\r\n.\r\n"


class _Session(asyncio.Protocol):
    def __init__(self, server):
        self.srv = server
        self.transport = None
        self.buf = b""
        self.out = []
        self.tls = server.implicit
        self.authed = False
        self.mail = None
        self.rcpts = []
        self.state = "command"     # command | auth-plain | login-user | login-pass | data | tls | closed
        self.login_user = None
        self.peer = "?"

    # -- transport events ---------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        self.srv.connections += 1
        if self.srv.implicit:
            self.srv.tls_handshakes += 1
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else "?"
        transport.write(self.srv.banner)

    def data_received(self, data):
        if self.state == "closed":
            return
        self.buf += data
        if self.state != "tls":    # (the first command inside TLS may come before start_tls returns)
            self._process()

    def eof_received(self):
        return False               # close our side too

    def connection_lost(self, exc):
        self.state = "closed"

    # -- input ----------------------------------------------------------------------------------
    def _process(self):
        while self.state not in ("tls", "closed"):
            if self.state == "data":
                index = (b"\r\n" + self.buf).find(END_OF_DATA)
                if index < 0:
                    break
                self.buf = (b"\r\n" + self.buf)[index + len(END_OF_DATA):]
                self._end_of_data()
                continue
            line, found, rest = self.buf.partition(b"\n")
            if not found:
                break
            self.buf = rest
            line = line.rstrip(b"\r").decode("latin-1")
            if self.state == "command":
                self._command(line)
            else:
                self._auth_continue(line)
        self._flush()

    def _send(self, data):
        self.out.append(data)

    def _flush(self):
        if self.out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self.out))
        self.out = []

    def _close(self):
        self._flush()
        self.state = "closed"
        self.transport.close()

    def _command(self, line):
        verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
        handler = getattr(self, "cmd_" + verb, None)
        if handler is None:
            self._send(UNKNOWN)
        else:
            handler(line)

    # -- commands -------------------------------------------------------------------------------
    def auth_allowed(self):
        return self.srv.role != "mx" and self.tls

    def cmd_EHLO(self, line):
        ext = ["%s Hello [%s]" % (self.srv.hostname, self.peer), "PIPELINING", "SIZE 10240000", "8BITMIME"]
        if not self.tls and self.srv.tls_context is not None:
            ext.append("STARTTLS")
        if self.auth_allowed():
            ext.append("AUTH PLAIN LOGIN")
        ext.append("ENHANCEDSTATUSCODES")
        self.reset()
        self._send(reply(250, *ext))

    def cmd_HELO(self, line):
        self.reset()
        self._send(reply(250, self.srv.hostname))

    def cmd_NOOP(self, line):
        self._send(OK)

    def cmd_RSET(self, line):
        self.reset()
        self._send(OK)

    def cmd_QUIT(self, line):
        self._send(reply(221, "2.0.0 Bye"))
        self._close()

    def cmd_XCLIENT(self, line):
        self._send(UNKNOWN)

    def cmd_STARTTLS(self, line):
        if self.tls or self.srv.tls_context is None:
            self._send(reply(502, "5.5.1 Error: command not implemented"))
            return
        self._send(reply(220, "2.0.0 Ready to start TLS"))
        self._flush()
        self.buf = b""             # RFC 3207 / CVE-2011-0411: what came in plaintext is discarded
        self.state = "tls"
        self.transport.pause_reading()
        asyncio.ensure_future(self._start_tls())

    async def _start_tls(self):
        loop = asyncio.get_running_loop()
        try:
            self.transport = await loop.start_tls(self.transport, self, self.srv.tls_context, server_side=True)
        except (OSError, asyncio.CancelledError, ConnectionError, Exception):  # noqa: BLE001 - a failed handshake ends it
            self.state = "closed"
            self.transport.abort()
            return
        self.srv.tls_handshakes += 1
        self.tls = True
        self.reset()
        self.state = "command"
        if self.buf:
            self._process()

    def cmd_AUTH(self, line):
        if not self.auth_allowed():
            self._send(reply(503, "5.5.1 Error: authentication not enabled"))
            return
        words = line.split()
        mech = words[1].upper() if len(words) > 1 else ""
        if mech == "PLAIN":
            if len(words) > 2:
                self._auth_done(*_decode_plain(words[2]))
            else:
                self.state = "auth-plain"
                self._send(reply(334, ""))
        elif mech == "LOGIN":
            self.state = "login-user"
            self._send(reply(334, "VXNlcm5hbWU6"))
        else:
            self._send(reply(504, "5.5.4 Unrecognized authentication type"))

    def _auth_continue(self, line):
        state, self.state = self.state, "command"
        if state == "auth-plain":
            self._auth_done(*_decode_plain(line))
        elif line.strip() == "*":
            self._send(reply(501, "5.7.0 Authentication aborted"))
        elif state == "login-user":
            self.login_user = line
            self.state = "login-pass"
            self._send(reply(334, "UGFzc3dvcmQ6"))
        else:
            self._auth_done(_b64(self.login_user), _b64(line))

    def _auth_done(self, user, password):
        if user is not None and self.srv.users.get(user) == password:
            self.authed = True
            self._send(reply(235, "2.7.0 Authentication successful"))
        else:
            self._send(reply(535, "5.7.8 Error: authentication failed"))

    def cmd_MAIL(self, line):
        if self.srv.tls_required and not self.tls:
            self._send(reply(530, "5.7.0 Must issue a STARTTLS command first"))
            return
        if self.srv.role == "submission" and not self.authed:
            self._send(reply(530, "5.7.0 Authentication required"))
            return
        self.mail = line.split(":", 1)[1].strip() if ":" in line else ""
        self.rcpts = []
        self._send(reply(250, "2.1.0 Ok"))

    def is_local(self, address):
        address = address.strip().strip("<>").lower()
        if address == "postmaster":
            return True
        if address.count("@") != 1 or any(ch in address for ch in '%!":'):
            return False
        return address.rsplit("@", 1)[1] in self.srv.local_domains

    def cmd_RCPT(self, line):
        if self.mail is None:
            self._send(reply(503, "5.5.1 Error: need MAIL command"))
            return
        address = line.split(":", 1)[1].strip() if ":" in line else ""
        if self.is_local(address) or self.authed:
            self.rcpts.append(address)
            self._send(reply(250, "2.1.5 Ok"))
        elif address.strip("<>").count("@") > 1:
            self._send(reply(501, "5.1.3 Bad recipient address syntax"))
        else:
            self._send(reply(554, "5.7.1 <%s>: Relay access denied" % address.strip("<>")))

    def cmd_DATA(self, line):
        if not self.rcpts:
            self._send(reply(554, "5.5.1 Error: no valid recipients"))
            return
        if not self.authed and self.buf:
            self._send(reply(554, "5.5.0 Error: SMTP protocol synchronization"))
            self._close()
            return
        self._send(reply(354, "End data with <CR><LF>.<CR><LF>"))
        self.state = "data"

    def _end_of_data(self):
        self.state = "command"
        self.srv.transactions += 1
        self.reset()
        self._send(reply(250, "2.0.0 Ok: queued as FAKE%d" % self.srv.transactions))

    def reset(self):
        self.mail, self.rcpts = None, []

