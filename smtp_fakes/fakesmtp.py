# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A configurable in-process SMTP server for probe tests and the bench (loopback only).

Plain asyncio rather than aiosmtpd, because the tests need server *faults* aiosmtpd cannot
produce: keeping plaintext across STARTTLS, bare-LF end of data, 334 before TLS, tarpits,
malformed replies. Every DATA transaction is recorded in ``FakeSMTP.transactions``.
What the hardened host answers by default is written once in hardened_host.py, shared with
lean_smtp.py (the fleet bench's fast endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import ssl
import threading
import time

from smtp_fakes import hardened_host as hardened
from smtp_fakes.hardened_host import make_cert, reply, server_context

_MESSAGE_NUMBERS = itertools.count(1)

__all__ = ["Behaviour", "FakeHost", "FakeSASL", "FakeSMTP", "make_cert", "server_context"]

VULNERABLE_ENDINGS = (b"\n.\n", b"\n.\r", b"\r.\n", b"\r.\r", b"\n.\r\n", b"\r.\r\n", b"\r\n\x00.\r\n")


@dataclasses.dataclass
class Behaviour:
    hostname: str = hardened.HOSTNAME
    local_domains: tuple = hardened.LOCAL_DOMAINS
    role: str = "mx"  # mx: never AUTH; submission: AUTH after TLS, 530 before
    relay: str = "refuse"  # refuse | accept (open relay at RCPT)
    deliver: bool = True  # accepted foreign mail for the canary really reaches the spool
    canary_domain: str = "canary.test"
    spool: str = None
    starttls: bool = True  # offer STARTTLS (needs a context)
    tls_required: bool = False  # 530 before STARTTLS
    auth_before_tls: bool = False  # advertise and process AUTH in cleartext
    auth_on_mx: bool = False
    users: dict = dataclasses.field(default_factory=lambda: dict(hardened.USERS))
    keep_plaintext_after_starttls: bool = False  # CVE-2011-0411 class
    broken_tls: bool = False  # 220 to STARTTLS, then garbage instead of a handshake
    greylist: bool = False  # 450 to every RCPT
    tarpit: float = 0.0  # seconds before the greeting
    banner: str = "multiline"  # multiline | plain | garbage | oversized | mixed | refuse
    #                                    close (no greeting) | silent (never greets) | mute (greets, then silence)
    smuggle_vulnerable: bool = False  # treat bare LF/CR endings as end of data
    reject_bare_lf: bool = False  # 550 and disconnect on bare LF/CR in DATA
    forbid_pipelining: bool = True  # 554 when DATA is not the last command of a write
    xclient: bool = False  # advertise and honour XCLIENT
    proxy: bool = False  # honour a PROXY v1 header
    syntax_reject: bool = True  # 501 for double-@ recipients (exercises the non-relay class)
    pipelining: bool = True  # advertise PIPELINING (RFC 2920)
    unauth_mail: str = "530 " + hardened.AUTH_REQUIRED  # submission: reply to MAIL before AUTH (None: 250)
    relay_domains: tuple = ()  # backup MX: accepts any recipient ending in @<one of them> (percent hack too)
    ehlo_hostname: str = None  # the name the EHLO reply gives, when not the greeting's
    auth_fail_open: bool = False  # a wrong password gets 535, but the session is trusted anyway (broken)
    refuse_sender: str = None  # MAIL refused (553 5.7.1) when the sender contains this, even after AUTH
    exim_sender_syntax: bool = False  # Exim: 501 at MAIL for domain-literal and unqualified senders
    auth_delay: float = 0.0  # seconds before every AUTH verdict (Dovecot's failure delay / auth penalty)
    sasl: object = None  # a FakeSASL shared by the listeners of a host (Dovecot's failure brakes)
    quit_hold: float = 0.0  # plaintext: hold the 221 this long unless the client half-closed (Exim 4.96)
    connection_limit: object = None  # a ConnectionLimit shared by the listeners of a host (Sendmail's ClientRate)
    smuggle_alone_only: bool = False  # OpenSMTPD 6.8: a bare ending ends the data only when nothing follows it in the segment
    message_limit: int = 0  # issue 14: 451 at DATA once a login has sent this many messages (0: no limit)
    auth_command_limit: int = 0  # issue 14: 454 to AUTH once this many AUTH commands came in (0: no limit)
    auth_drop_per_connection: int = 0  # drop the connection, no reply, at this many AUTH commands on one connection


class ConnectionLimit:
    """Sendmail's ClientRate, shared by the listeners of one host: the connection after ``allowed``
    ones (per client address, for the whole test) gets '421 4.3.2 Connection rate limit exceeded.'
    before any greeting, and is closed."""

    def __init__(self, allowed=10):
        self.allowed = allowed
        self.seen = {}  # client address -> connections
        self.refused = 0

    def admit(self, peer):
        self.seen[peer] = self.seen.get(peer, 0) + 1
        if self.seen[peer] > self.allowed:
            self.refused += 1
            return False
        return True


class FakeSASL:
    """Dovecot's brakes on failed passwords, by timestamp, shared by the listeners of one host.

    A failed password is recorded at once (the reply waits ``failure_delay``); an exchange that
    starts (a bare ``AUTH PLAIN``/``AUTH LOGIN``, or AUTH with the initial response) less than
    ``penalty`` seconds after a failure recorded for that client waits ``penalty`` first (Dovecot
    looks its auth penalty up when the exchange starts)."""

    def __init__(self, failure_delay=0.3, penalty=1.0):
        self.failure_delay = failure_delay
        self.penalty = penalty
        self.failures = {}  # client address -> monotonic time of its last failure
        self.penalized = []  # (client address, monotonic time) of every exchange that waited

    async def begin(self, peer):
        last = self.failures.get(peer)
        if last is not None and time.monotonic() - last < self.penalty:
            self.penalized.append((peer, time.monotonic()))
            await asyncio.sleep(self.penalty)

    async def failed(self, peer):
        self.failures[peer] = time.monotonic()
        await asyncio.sleep(self.failure_delay)


class FakeSMTP:
    session_class = None  # a _Session subclass (hostilesmtp.py); None: _Session

    def __init__(self, behaviour=None, tls_context=None, implicit=False):
        self.b = behaviour or Behaviour()
        self.tls_context = tls_context
        self.implicit = implicit
        self.transactions = []  # every DATA the server took: {mail, rcpts, data, tls, auth, port}
        self.connections = 0
        self.commands = []
        self.command_log = []  # (over_tls, line) of every line read in command or AUTH state
        self.peers = []  # client addresses seen
        self.max_errors = 0  # most 4xx/5xx replies on one connection (error-budget test)
        self.pipelined = 0  # commands that arrived with the next one already buffered
        self.tls_handshakes = 0
        self.tls_resumed = 0  # handshakes that resumed an earlier TLS session
        self.auth_log = []  # (monotonic time the AUTH came in, succeeded, wrong password) per AUTH
        self.sent_by_login = {}  # login -> messages accepted (message_limit)
        self.auth_commands = 0  # AUTH commands seen (auth_command_limit)
        self.quit_holds = 0  # QUITs whose 221 was held (quit_hold)
        self.quit_half_closed = 0  # ... and released early because the client had half-closed
        self.server = None
        self.port = None

    async def start(self, host="127.0.0.1", port=0):
        self.server = await asyncio.start_server(self._handle, host, port, ssl=self.tls_context if self.implicit else None)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self):
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def count_handshake(self, writer):
        sslobj = writer.get_extra_info("ssl_object")
        if sslobj is not None:
            self.tls_handshakes += 1
            self.tls_resumed += bool(sslobj.session_reused)

    async def _handle(self, reader, writer):
        self.connections += 1
        if self.implicit:
            self.count_handshake(writer)
        session = (self.session_class or _Session)(self, reader, writer)
        try:
            await session.run()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass


class _Session:
    def __init__(self, server, reader, writer):
        self.srv, self.b = server, server.b
        self.reader, self.writer = reader, writer
        self.buf = b""
        self.tls = server.implicit
        self.authed = False
        self.mail = None
        self.rcpts = []
        self.errors = 0
        peer = writer.get_extra_info("peername")
        self.peer = peer[0] if peer else "?"
        server.peers.append(self.peer)

    async def send(self, code, *lines):
        lines = lines or ("",)
        if code >= 400:
            self.errors += 1
            self.srv.max_errors = max(self.srv.max_errors, self.errors)
        self.writer.write(reply(code, *lines))
        await self.writer.drain()

    async def readline(self):
        while b"\n" not in self.buf:
            chunk = await self.reader.read(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, unused_newline, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("latin-1")

    async def auth_line(self):
        line = await self.readline()
        if line is not None:
            self.srv.command_log.append((self.tls, line))
        return line

    async def run(self):
        b = self.b
        if b.connection_limit is not None and not b.connection_limit.admit(self.peer):
            await self.send(421, "4.3.2 Connection rate limit exceeded.")
            return
        if b.tarpit:
            await asyncio.sleep(b.tarpit)
        if b.proxy:
            first = await self.auth_line()
            if first is None:
                return
            if not first.startswith("PROXY "):
                self.buf = first.encode() + b"\r\n" + self.buf
        if b.banner == "close":
            return
        if b.banner == "silent":
            await self.reader.read()  # until the client gives up
            return
        if b.banner == "refuse":
            await self.send(554, "5.7.1 %s: client not allowed" % b.hostname)
            return
        if b.banner == "garbage":
            self.writer.write(b"hello there, not smtp\r\n")
            await self.writer.drain()
        elif b.banner == "oversized":
            self.writer.write(b"220 " + b"x" * 5000 + b"\r\n")
            await self.writer.drain()
        elif b.banner == "mixed":
            self.writer.write(b"220-%s\r\n250 ESMTP\r\n" % b.hostname.encode())
            await self.writer.drain()
        elif b.banner == "multiline":
            await self.send(220, *hardened.banner_lines(b.hostname))
        else:
            await self.send(220, "%s ESMTP fake" % b.hostname)
        if b.banner == "mute":
            await self.reader.read()
            return
        while True:
            line = await self.readline()
            if line is None:
                return
            self.srv.pipelined += b"\n" in self.buf
            self.srv.commands.append(line)
            self.srv.command_log.append((self.tls, line))
            verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
            handler = getattr(self, "cmd_" + verb, None)
            if handler is None:
                await self.send(502, hardened.UNKNOWN)
                continue
            if await handler(line) == "close":
                return

    # -- commands --------------------------------------------------------------------------
    def auth_allowed(self):
        if self.b.role == "mx" and not self.b.auth_on_mx:
            return False
        return self.tls or self.b.auth_before_tls

    async def cmd_EHLO(self, line):
        starttls = self.b.starttls and not self.tls and self.srv.tls_context is not None
        ext = hardened.ehlo_lines(self.b.ehlo_hostname or self.b.hostname, self.peer, starttls, self.auth_allowed(), self.b.pipelining, self.b.xclient)
        self.reset()
        await self.send(250, *ext)

    async def cmd_HELO(self, line):
        self.reset()
        await self.send(250, self.b.hostname)

    async def cmd_NOOP(self, line):
        await self.send(250, hardened.OK)

    async def cmd_RSET(self, line):
        self.reset()
        await self.send(250, hardened.OK)

    async def cmd_QUIT(self, line):
        if self.b.quit_hold and not self.tls:
            # Exim 4.96 on plaintext: the 221 waits until the client has closed its side (or 200 ms)
            self.srv.quit_holds += 1
            try:
                await asyncio.wait_for(self.reader.read(), self.b.quit_hold)
                self.srv.quit_half_closed += 1
            except asyncio.TimeoutError:
                pass
        await self.send(221, hardened.BYE)
        return "close"

    async def cmd_XCLIENT(self, line):
        if not self.b.xclient:
            await self.send(502, hardened.UNKNOWN)
        else:
            await self.send(220, "%s ESMTP fake" % self.b.hostname)

    async def cmd_STARTTLS(self, line):
        if self.tls or self.srv.tls_context is None or not self.b.starttls:
            await self.send(502, hardened.NOT_IMPLEMENTED)
            return
        await self.send(220, hardened.READY_FOR_TLS)
        if self.b.broken_tls:
            self.writer.write(b"this is not a TLS handshake\r\n" * 4)
            await self.writer.drain()
            return "close"
        if not self.b.keep_plaintext_after_starttls:
            self.buf = b""  # RFC 3207 / CVE-2011-0411: discard what came in plaintext
            getattr(self.reader, "_buffer", bytearray()).clear()
        await self.writer.start_tls(self.srv.tls_context)
        self.srv.count_handshake(self.writer)
        self.tls = True
        self.reset()

    async def cmd_AUTH(self, line):
        if not self.auth_allowed():
            await self.send(503, hardened.AUTH_NOT_ENABLED)
            return
        words = line.split()
        mech = words[1].upper() if len(words) > 1 else ""
        self.srv.auth_commands += 1
        self.auth_commands = getattr(self, "auth_commands", 0) + 1
        if self.b.auth_drop_per_connection and self.auth_commands >= self.b.auth_drop_per_connection:
            return "close"
        if self.b.auth_command_limit and self.srv.auth_commands > self.b.auth_command_limit:
            await self.send(454, "4.7.0 Too many AUTH attempts from your address, try later")
            return
        if self.b.sasl is not None and mech in ("PLAIN", "LOGIN"):
            await self.b.sasl.begin(self.peer)
        if mech == "PLAIN":
            token = words[2] if len(words) > 2 else None
            if token is None:
                await self.send(334, "")
                token = await self.auth_line()
            if token is not None and token.strip() == "*":
                await self.send(501, "5.7.0 Authentication aborted")
                return
            user, password = hardened.decode_plain(token)
        elif mech == "LOGIN":
            await self.send(334, hardened.USERNAME_PROMPT)
            first = await self.auth_line()
            if first is None or first.strip() == "*":
                await self.send(501, hardened.AUTH_ABORTED)
                return
            await self.send(334, hardened.PASSWORD_PROMPT)
            second = await self.auth_line()
            if second is None or second.strip() == "*":
                await self.send(501, hardened.AUTH_ABORTED)
                return
            user, password = hardened.b64(first), hardened.b64(second)
        else:
            await self.send(504, hardened.AUTH_UNKNOWN_MECHANISM)
            return
        good = user is not None and self.b.users.get(user) == password
        self.srv.auth_log.append((time.monotonic(), good, None if good else password))
        if self.b.auth_delay:
            await asyncio.sleep(self.b.auth_delay)
        if self.b.sasl is not None and not good:
            await self.b.sasl.failed(self.peer)
        if user is not None and self.b.users.get(user) == password:
            self.authed = True
            self.login = user
            await self.send(235, hardened.AUTH_OK)
        else:
            self.authed = self.b.auth_fail_open
            await self.send(535, hardened.AUTH_FAILED)

    async def cmd_MAIL(self, line):
        if self.b.tls_required and not self.tls:
            await self.send(530, hardened.MUST_STARTTLS)
            return
        sender = line.split(":", 1)[1].strip() if ":" in line else ""
        if self.b.exim_sender_syntax and sender not in ("<>", ""):
            if "@[" in sender:
                await self.send(501, "%s: domain literals not allowed" % sender)
                return
            if "@" not in sender:
                await self.send(501, "%s: sender address must contain a domain" % sender)
                return
        if self.b.refuse_sender and self.b.refuse_sender in sender:
            await self.send(553, "5.7.1 %s: Sender address rejected: not owned by user" % sender)
            return
        if self.b.role == "submission" and not self.authed and self.b.unauth_mail:
            code, text = self.b.unauth_mail.split(" ", 1)
            await self.send(int(code), text.replace("SENDER", sender))
            return
        self.mail = line.split(":", 1)[1].strip() if ":" in line else ""
        self.rcpts = []
        await self.send(250, hardened.MAIL_OK)

    def is_local(self, address):
        return hardened.is_local(address, self.b.local_domains)

    async def cmd_RCPT(self, line):
        if self.mail is None:
            await self.send(503, hardened.NEED_MAIL)
            return
        address = line.split(":", 1)[1].strip() if ":" in line else ""
        if self.b.greylist:
            await self.send(450, "4.2.0 <%s>: Recipient address rejected: Greylisted" % address.strip("<>"))
            return
        relayed = address.strip("<>").lower().rsplit("@", 1)[-1] in self.b.relay_domains
        if self.is_local(address) or self.authed or self.b.relay == "accept" or relayed:
            self.rcpts.append(address)
            await self.send(250, hardened.RCPT_OK)
            return
        if self.b.syntax_reject and address.strip("<>").count("@") > 1:
            await self.send(501, hardened.BAD_RECIPIENT_SYNTAX)
            return
        await self.send(554, hardened.RELAY_DENIED % address.strip("<>"))

    async def cmd_DATA(self, line):
        if not self.rcpts:
            await self.send(554, hardened.NO_RECIPIENTS)
            return
        if self.b.forbid_pipelining and not self.authed and self.buf:
            await self.send(554, hardened.OUT_OF_SYNC)
            return "close"
        login = getattr(self, "login", None)
        if self.b.message_limit and login and self.srv.sent_by_login.get(login, 0) >= self.b.message_limit:
            await self.send(451, "4.7.1 Message limit reached for this login")
            return
        await self.send(354, hardened.START_DATA)
        body = await self.read_data()
        if body is None:
            return "close"
        if body == "pipelining":
            await self.send(500, "5.5.1 Invalid command: Pipelining not supported")
            return "close"
        if self.b.reject_bare_lf and _bare_newline(body):
            await self.send(550, "5.5.2 Error: bare <LF> received")
            return "close"
        if login:
            self.srv.sent_by_login[login] = self.srv.sent_by_login.get(login, 0) + 1
        self.srv.transactions.append({"mail": self.mail, "rcpts": list(self.rcpts), "data": body, "tls": self.tls, "auth": self.authed, "port": self.srv.port})
        self.deliver(body)
        self.mail, self.rcpts = None, []
        await self.send(250, hardened.QUEUED % len(self.srv.transactions))

    async def read_data(self):
        markers = (b"\r\n.\r\n",) + (VULNERABLE_ENDINGS if self.b.smuggle_vulnerable or self.b.smuggle_alone_only else ())
        while True:
            search = b"\r\n" + self.buf
            hits = [(search.find(m), m) for m in markers if search.find(m) >= 0]
            if hits:
                index, marker = min(hits)
                if self.b.smuggle_alone_only and marker != b"\r\n.\r\n" and search[index + len(marker) :]:
                    # OpenSMTPD 6.8: the bare ending ends the message, but what follows in the same
                    # segment is refused as pipelining (no PIPELINING) and the session ends
                    return "pipelining"
                self.buf = search[index + len(marker) :]
                return search[2:index] if index >= 2 else b""
            chunk = await self.reader.read(65536)
            if not chunk:
                return None
            self.buf += chunk

    def deliver(self, body):
        canary = self.b.canary_domain
        if not (self.b.spool and self.b.deliver):
            return
        if not any(canary in rcpt.lower() and not self.is_local(rcpt) for rcpt in self.rcpts):
            return
        # A name never used before in this process: id(body) came back for a later message once the
        # first was freed, and the rename overwrote a message the canary reader had already read.
        name = os.path.join(self.b.spool, "msg-%d-%d.eml" % (os.getpid(), next(_MESSAGE_NUMBERS)))
        with open(name + ".tmp", "wb") as handle:
            handle.write(
                b"X-Canary-Peer: 127.0.0.1\r\nReceived: from prober.mailsec.test (unknown [" + self.peer.encode() + b"])\r\n"
                b"\tby " + self.b.hostname.encode() + b" (fake)\r\n" + body
            )
        os.rename(name + ".tmp", name)

    def reset(self):
        self.mail, self.rcpts = None, []


@contextlib.contextmanager
def in_background(server, host="127.0.0.1"):
    """Serve ``server`` (a FakeSMTP) from an event loop in a daemon thread; yields its port.

    For tests that drive it from another process (ansible-playbook) while pytest waits."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(server.start(host), loop).result(10)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _bare_newline(body):
    stripped = body.replace(b"\r\n", b"")
    return b"\n" in stripped or b"\r" in stripped


class FakeHost:
    """Three listeners like a hardened mx_submission host: mx (STARTTLS), submission
    (STARTTLS required, AUTH after TLS), submissions (implicit TLS)."""

    def __init__(self, tls_context, spool=None, mx=None, submission=None, submissions=None):
        def behaviour(role, overrides, **base):
            values = dict(role=role, spool=spool, **base)
            values.update(overrides or {})
            return Behaviour(**values)

        self.mx = FakeSMTP(behaviour("mx", mx), tls_context)
        self.submission = FakeSMTP(behaviour("submission", submission, tls_required=True), tls_context)
        self.submissions = FakeSMTP(behaviour("submission", submissions), tls_context, implicit=True)
        self.servers = (self.mx, self.submission, self.submissions)

    async def start(self):
        for server in self.servers:
            await server.start()

    async def stop(self):
        for server in self.servers:
            await server.stop()

    @property
    def transactions(self):
        return [t for server in self.servers for t in server.transactions]

    def target(self, auth=True, test_mailbox="alice@example.test", **listener_overrides):
        listeners = [
            {"port": self.mx.port, "role": "mx", "tls": "starttls", "relay": "refused"},
            {"port": self.submission.port, "role": "submission", "tls": "required", "relay": "refused", "auth_relay": True},
            {"port": self.submissions.port, "role": "submission", "tls": "implicit", "relay": "refused", "auth_relay": True},
        ]
        target = {
            "name": "mx1",
            "addresses": ["127.0.0.1"],
            "hostname": hardened.HOSTNAME,
            "local_domains": list(hardened.LOCAL_DOMAINS),
            "listeners": listeners,
        }
        if auth:
            target["auth"] = {"username": "alice", "password": hardened.USERS["alice"]}
        if test_mailbox:
            target["test_mailbox"] = test_mailbox
        return target


async def _serve(args):
    import json
    import resource
    import signal
    import tempfile

    # 1000 endpoints need more descriptors than the usual soft limit of 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    directory = tempfile.mkdtemp(prefix="fakesmtp-")
    context = server_context(*make_cert(directory))
    overrides = json.loads(args.behaviour)
    hosts = []
    for unused in range(args.hosts):
        host = FakeHost(context, spool=args.spool, mx=dict(overrides), submission=dict(overrides) if args.full else None, submissions=None)
        if not args.full:
            host.servers = (host.mx,)
        ports = [int(p) for p in args.ports.split(",")] if args.ports else [0, 0, 0]
        for server, port in zip(host.servers, ports):
            await server.start(args.listen, port)
        hosts.append(host)
    targets = []
    for index, host in enumerate(hosts):
        target = host.target(auth=args.full)
        target["name"] = "fake%d" % index
        target["addresses"] = [args.listen]
        if not args.full:
            target["listeners"] = target["listeners"][:1]
        targets.append(target)
    print(json.dumps({"targets": targets, "pid": os.getpid()}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for host in hosts:
        for server in host.servers:
            await server.stop()


def main():
    import argparse

    parser = argparse.ArgumentParser(description="fake SMTP hosts on loopback (tests, bench)")
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="three listeners per host (mx, 587-like, 465-like)")
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--spool")
    parser.add_argument("--ports", help="fixed ports of mx,submission,submissions (one host only), e.g. 25,587,465")
    parser.add_argument("--behaviour", default="{}", help="JSON overrides of Behaviour for the MX listener")
    args = parser.parse_args()
    if not (args.listen.startswith("127.") or args.listen == "::1"):
        parser.error("--listen must be a loopback address")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
