# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lightweight emulated hardened MTA for the fleet bench (loopback only).

Replies byte for byte like fakesmtp.FakeHost with its default (hardened) behaviour, from the
same definitions (hardened_host.py: texts, greeting, EHLO, SASL decoding, local recipients):
mx (STARTTLS, no AUTH, foreign RCPT 554 5.7.1, double-@ RCPT 501, local domains accepted),
submission (530 before STARTTLS, AUTH only after TLS, 530 5.7.0 to MAIL before AUTH) and
submissions (implicit TLS), with real TLS from the same kind of context. What makes it lighter
is only how it runs: one asyncio.Protocol per connection (no task, StreamReader/StreamWriter per
connection), commands handled as the bytes arrive, the replies to one pipelined group sent in
one write (as Postfix does), not one write per reply, and TLS (implicit and STARTTLS) done in the
same protocol on an ssl.SSLObject over memory BIOs rather than through asyncio's SSL transport
(its per-record Python layers were most of the endpoints' CPU outside OpenSSL). The TLS itself
is the same: the same context, handshakes, session tickets and close_notify. None of the test
server's fault modes are here: for those, use fakesmtp.py. tests/unit/smtp/test_lean_smtp.py
runs the engine against both and requires the same verdicts, replies and reasons, case by case.
"""

from __future__ import annotations

import asyncio
import ssl

from smtp_fakes import hardened_host as hardened
from smtp_fakes.hardened_host import reply

TLS_RECORD = 16384  # largest TLS plaintext record


class LeanServer:
    """One listener: role ``mx`` or ``submission``; ``implicit``: TLS before the greeting."""

    def __init__(self, hostname, role, tls_context, implicit=False, tls_required=False, local_domains=hardened.LOCAL_DOMAINS, users=None):
        self.hostname = hostname
        self.role = role
        self.tls_context = tls_context
        self.implicit = implicit
        self.tls_required = tls_required
        self.local_domains = tuple(d.lower() for d in local_domains)
        self.users = dict(hardened.USERS if users is None else users)
        self.connections = 0
        self.read_buffer = bytearray(TLS_RECORD)
        self.recv_buffer = bytearray(65536)
        self.tls_handshakes = 0
        self.tls_resumed = 0  # handshakes that resumed a session (as FakeSMTP counts them)
        self.transactions = 0
        self.server = None
        self.port = None
        self.banner = reply(220, *hardened.banner_lines(hostname))

    async def start(self, host="127.0.0.1", port=0):
        loop = asyncio.get_running_loop()
        # no ssl= here: implicit TLS starts in the session itself (see _Session)
        self.server = await loop.create_server(lambda: _Session(self), host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self):
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class LeanHost:
    """mx, submission (587-like) and submissions (465-like) listeners of one hardened host."""

    def __init__(self, tls_context, hostname=hardened.HOSTNAME):
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


OK = reply(250, hardened.OK)
UNKNOWN = reply(502, hardened.UNKNOWN)
END_OF_DATA = b"\r\n.\r\n"


# TLS errors that end a connection: a failed handshake, a broken record, a reset peer.
_TLS_FATAL = (ssl.SSLError, OSError, ValueError)


class _Session(asyncio.BufferedProtocol):
    def __init__(self, server):
        self.srv = server
        self.transport = None
        self.buf = b""
        self.out = []
        self.tls = False  # TLS established (implicit or after STARTTLS)
        self.sslobj = None  # the connection's TLS state while TLS is starting or running
        self.incoming = None
        self.outgoing = None
        self.authed = False
        self.mail = None
        self.rcpts = []
        self.state = "command"  # command | auth-plain | login-user | login-pass | data | closed
        self.login_user = None
        self.peer = "?"

    # -- transport events ---------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else "?"
        if self.srv.implicit:
            self._start_tls()  # the greeting comes once the handshake is done (as on port 465)
        else:
            self.srv.connections += 1
            transport.write(self.srv.banner)

    # A buffered protocol: the transport receives into the listener's own buffer. (A plain
    # Protocol gets a fresh bytes object of asyncio's 256 KiB read size per read, which glibc
    # serves with an mmap, mremap and munmap each.)
    def get_buffer(self, sizehint):
        return self.srv.recv_buffer

    def buffer_updated(self, nbytes):
        self.data_received(self.srv.recv_buffer[:nbytes])

    def data_received(self, data):
        if self.state == "closed":
            return
        if self.sslobj is None:
            self.buf += data
            self._process()
            return
        self.incoming.write(data)
        if not self.tls and not self._handshake():
            return
        chunks = []
        buffer = self.srv.read_buffer
        while True:
            try:
                # into one buffer per listener: a fresh 16 KiB bytes per read costs an mmap,
                # mremap and munmap each (the sessions of a listener run on one thread)
                size = self.sslobj.read(TLS_RECORD, buffer)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the client's close_notify: answer it and close
                self._close()
                return
            except _TLS_FATAL:
                self._abort()
                return
            if not size:
                break
            chunks.append(buffer[:size])
        if chunks:
            self.buf += b"".join(chunks)
            self._process()
        else:
            self._flush()  # (TLS records without data may still want an answer)

    def eof_received(self):
        return False  # close our side too

    def connection_lost(self, exc):
        self.state = "closed"

    # -- TLS on memory BIOs -----------------------------------------------------------------------
    def _start_tls(self):
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.sslobj = self.srv.tls_context.wrap_bio(self.incoming, self.outgoing, server_side=True)

    def _handshake(self):
        """Advance the handshake; True once TLS is up (then the greeting or a fresh session)."""
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except _TLS_FATAL:
            self._abort()
            return False
        self.tls = True
        self.srv.tls_handshakes += 1
        self.srv.tls_resumed += self.sslobj.session_reused
        if self.srv.implicit:
            self.srv.connections += 1
            self._send(self.srv.banner)
        else:
            self.reset()
        self._flush()
        return True

    def _abort(self):
        self.state = "closed"
        self.transport.abort()

    # -- input ----------------------------------------------------------------------------------
    def _process(self):
        while self.state != "closed" and (self.sslobj is None or self.tls):
            if self.state == "data":
                index = (b"\r\n" + self.buf).find(END_OF_DATA)
                if index < 0:
                    break
                self.buf = (b"\r\n" + self.buf)[index + len(END_OF_DATA) :]
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
        """Write the queued replies in one piece (through TLS when it is up) and whatever TLS
        records are waiting (handshake, tickets, close_notify)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            self.out = []
            return
        data = b"".join(self.out) if self.out else b""
        self.out = []
        if self.sslobj is None:
            if data:
                transport.write(data)
            return
        if data and self.tls:
            try:
                self.sslobj.write(data)
            except _TLS_FATAL:
                self._abort()
                return
        records = self.outgoing.read()
        if records:
            transport.write(records)

    def _close(self):
        self._flush()
        self.state = "closed"
        if self.tls:
            try:
                self.sslobj.unwrap()  # our close_notify, as asyncio's SSL transport sends
            except _TLS_FATAL:
                pass
            records = self.outgoing.read()
            if records and not self.transport.is_closing():
                self.transport.write(records)
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
        ext = hardened.ehlo_lines(self.srv.hostname, self.peer, not self.tls and self.srv.tls_context is not None, self.auth_allowed())
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
        self._send(reply(221, hardened.BYE))
        self._close()

    def cmd_XCLIENT(self, line):
        self._send(UNKNOWN)

    def cmd_STARTTLS(self, line):
        if self.tls or self.srv.tls_context is None:
            self._send(reply(502, hardened.NOT_IMPLEMENTED))
            return
        self._send(reply(220, hardened.READY_FOR_TLS))
        self._flush()
        self.buf = b""  # RFC 3207 / CVE-2011-0411: what came in plaintext is discarded
        self._start_tls()  # (the rest of this segment is not read: _process stops here)

    def cmd_AUTH(self, line):
        if not self.auth_allowed():
            self._send(reply(503, hardened.AUTH_NOT_ENABLED))
            return
        words = line.split()
        mech = words[1].upper() if len(words) > 1 else ""
        if mech == "PLAIN":
            if len(words) > 2:
                self._auth_done(*hardened.decode_plain(words[2]))
            else:
                self.state = "auth-plain"
                self._send(reply(334, ""))
        elif mech == "LOGIN":
            self.state = "login-user"
            self._send(reply(334, hardened.USERNAME_PROMPT))
        else:
            self._send(reply(504, hardened.AUTH_UNKNOWN_MECHANISM))

    def _auth_continue(self, line):
        state, self.state = self.state, "command"
        if state == "auth-plain":
            self._auth_done(*hardened.decode_plain(line))
        elif line.strip() == "*":
            self._send(reply(501, hardened.AUTH_ABORTED))
        elif state == "login-user":
            self.login_user = line
            self.state = "login-pass"
            self._send(reply(334, hardened.PASSWORD_PROMPT))
        else:
            self._auth_done(hardened.b64(self.login_user), hardened.b64(line))

    def _auth_done(self, user, password):
        if user is not None and self.srv.users.get(user) == password:
            self.authed = True
            self._send(reply(235, hardened.AUTH_OK))
        else:
            self._send(reply(535, hardened.AUTH_FAILED))

    def cmd_MAIL(self, line):
        if self.srv.tls_required and not self.tls:
            self._send(reply(530, hardened.MUST_STARTTLS))
            return
        if self.srv.role == "submission" and not self.authed:
            self._send(reply(530, hardened.AUTH_REQUIRED))
            return
        self.mail = line.split(":", 1)[1].strip() if ":" in line else ""
        self.rcpts = []
        self._send(reply(250, hardened.MAIL_OK))

    def is_local(self, address):
        return hardened.is_local(address, self.srv.local_domains)

    def cmd_RCPT(self, line):
        if self.mail is None:
            self._send(reply(503, hardened.NEED_MAIL))
            return
        address = line.split(":", 1)[1].strip() if ":" in line else ""
        if self.is_local(address) or self.authed:
            self.rcpts.append(address)
            self._send(reply(250, hardened.RCPT_OK))
        elif address.strip("<>").count("@") > 1:
            self._send(reply(501, hardened.BAD_RECIPIENT_SYNTAX))
        else:
            self._send(reply(554, hardened.RELAY_DENIED % address.strip("<>")))

    def cmd_DATA(self, line):
        if not self.rcpts:
            self._send(reply(554, hardened.NO_RECIPIENTS))
            return
        if not self.authed and self.buf:
            self._send(reply(554, hardened.OUT_OF_SYNC))
            self._close()
            return
        self._send(reply(354, hardened.START_DATA))
        self.state = "data"

    def _end_of_data(self):
        self.state = "command"
        self.srv.transactions += 1
        self.reset()
        self._send(reply(250, hardened.QUEUED % self.srv.transactions))

    def reset(self):
        self.mail, self.rcpts = None, []
