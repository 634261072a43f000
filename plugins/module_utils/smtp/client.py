# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small asyncio SMTP client made for probing, not for sending mail.

Differences from smtplib: every read has a deadline, replies and lines are bounded, the transcript
is kept (with credentials masked), raw pipelined writes are possible (STARTTLS injection,
smuggling), and every write passes the safety guard (``_write`` is the only writer).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading

from .reply import MAX_LINE, MAX_LINES, Reply, ReplyError, is_last_line, parse_ehlo, parse_reply, printable
from .safety import UnsafeProbe, b64

_CLIENT_IP = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")
# What a command line may hold (printable ASCII and space; no SMTPUTF8): a CR, LF or NUL taken from a
# caller's value would end the command and start another on the server (command injection).
_COMMAND_LINE = re.compile(r"\A[\x20-\x7e]+\Z")
# Extra seconds an AUTH reply may take: Dovecot answers a failed AUTH after auth_failure_delay (2 s)
# and, for half a minute after failures from this client, starts every AUTH late (auth penalty, up to 15 s).
AUTH_DELAY_ALLOWANCE = 17.0
# A reply longer than MAX_LINES is read to its end (up to this many bytes) and parsed from its first
# MAX_LINES - 1 lines and its last: a hostile 10,000-line EHLO must not stop the relay probes.
MAX_REPLY_BYTES = 1 << 20
# What a reply to AUTH (334 challenge, 235/535 text) is stored as: its code only. A server may echo
# credentials there (whole, or in pieces): nothing of that text may reach a result.
AUTH_REPLY_SUMMARY = "(reply text to AUTH not stored)"


class SMTPError(Exception):
    """Base of the client's failures; ``stage`` says where it happened."""

    transient = False

    def __init__(self, message: str, stage: str = None) -> None:
        super().__init__(message)
        self.stage = stage


class ConnectFailed(SMTPError):
    transient = True


class ReadTimeout(SMTPError):
    transient = True


class Closed(SMTPError):
    transient = True


class ProtocolError(SMTPError):
    """Malformed or oversized reply: retrying would see the same thing."""


class TLSFailed(SMTPError):
    pass


class _LineTooLong(Exception):
    pass


def _verb(line: str) -> str:
    return line.split(" ", 1)[0].split(":", 1)[0].upper()


def escape_bytes(data: bytes, limit: int = 200) -> str:
    text = data.decode("utf-8", "backslashreplace")
    text = printable(text.replace("\r", "\\r").replace("\n", "\\n").replace("\x00", "\\0"))
    return text if len(text) <= limit else "%s...(%d bytes)" % (text[:limit], len(data))


class TLSSessionSlot:
    """The last resumable TLS session of one listener: later handshakes there resume it."""

    __slots__ = ("session",)

    def __init__(self) -> None:
        self.session = None

    def keep(self, sslobj) -> None:
        session = getattr(sslobj, "session", None) if sslobj is not None else None
        if session is not None and (session.has_ticket or session.id):
            self.session = session


def make_tls_context(verify: bool = False) -> ssl.SSLContext:
    # Relay hardening is judged on what the server accepts, not on its certificate chain;
    # labs use self-signed certificates. tls_verify turns verification on.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        context.load_default_certs()
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# Plaintext kept unread before reading from the socket pauses (a server that floods while the
# client is not reading cannot grow the buffer without end); reading resumes below READ_LOW.
READ_HIGH = 1 << 17
READ_LOW = 1 << 15
RECV_SIZE = 1 << 15
TLS_RECORD = 16384  # largest TLS plaintext record


class _Buffers(threading.local):
    """One receive buffer and one TLS plaintext buffer per thread (per event loop), shared by its
    connections: what lands in them is copied out at once (buffer_updated, _read_tls), and a loop
    runs one callback at a time. A pair of its own (48 KiB) per connection was allocated and freed
    for each of the ~40 connections per endpoint of a fleet run."""

    def __init__(self):
        self.recv = bytearray(RECV_SIZE)
        self.tls = bytearray(TLS_RECORD)


_BUFFERS = _Buffers()


def _expire(waiter):
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Connection(asyncio.BufferedProtocol):
    """One TCP connection of the client: bytes buffered as they arrive, TLS (implicit or after
    STARTTLS) on an ssl.SSLObject over memory BIOs.

    No StreamReader/StreamWriter and no asyncio SSL transport: their layers of Python per read,
    write and TLS record were most of the prober's CPU outside OpenSSL. The TLS is the same
    (same contexts, handshakes, resumed sessions, close_notify)."""

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.buffer = bytearray()  # plaintext received, not yet read
        self.eof = False  # nothing more will arrive: TCP EOF, the peer's close_notify, or lost
        self.lost = False
        self.error = None  # the exception that ended the connection (a read raises it)
        self.waiter = None  # future woken when data, EOF or the handshake's end arrive
        self.sslobj = None
        self.incoming = self.outgoing = None
        self.handshaking = False
        self.handshake_error = None
        self.paused = False  # the transport's write buffer is full
        self.drain_waiter = None
        self.reading_paused = False

    # -- transport events -----------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        # received into the thread's shared buffer (a fresh bytes object of asyncio's 256 KiB
        # read size per read costs an mmap and munmap each)
        return _BUFFERS.recv

    def buffer_updated(self, nbytes):
        data = memoryview(_BUFFERS.recv)[:nbytes]
        if self.sslobj is None:
            self.buffer += data
        else:
            self.incoming.write(data)
            if self.handshaking:
                self._handshake_step()
                if self.handshaking or self.handshake_error is not None:
                    return
            self._read_tls()
        if len(self.buffer) > READ_HIGH and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self):
        if self.handshaking:
            self._handshake_done(ConnectionResetError())
            return False
        self.eof = True
        self._wake()
        # plaintext: keep our side open (the client may still write, as with a StreamReader);
        # a TLS connection ends here (as asyncio's SSL transport does)
        return self.sslobj is None

    def connection_lost(self, exc):
        self.lost = self.eof = True
        if exc is not None and self.error is None:
            self.error = exc
        if self.handshaking:
            self._handshake_done(exc or ConnectionResetError())
        self._wake()
        self.resume_writing()

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- waiting ----------------------------------------------------------------------------------
    def _wake(self):
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, deadline):
        """Until something arrives (data, EOF, the handshake's end), at most until ``deadline``
        (TimeoutError): one timer while waiting, none when the data is already there."""
        if self.reading_paused:
            self.resume_reading()
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            if self.waiter is waiter:
                self.waiter = None

    async def drain(self, deadline):
        if self.transport.is_closing():
            await asyncio.sleep(0)
            if self.lost:
                raise self.error or ConnectionResetError("Connection lost")
        while self.paused and not self.lost:
            waiter = self.drain_waiter = self.loop.create_future()
            timer = self.loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()

    def resume_reading(self):
        if self.reading_paused:
            self.reading_paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()

    def consumed(self, size):
        if size:
            del self.buffer[:size]
        if self.reading_paused and len(self.buffer) < READ_LOW:
            self.resume_reading()

    # -- writing ----------------------------------------------------------------------------------
    def write(self, data):
        if self.sslobj is not None and not self.handshaking:
            self.sslobj.write(data)
            self._flush_tls()
        else:
            self.transport.write(data)

    # -- TLS ----------------------------------------------------------------------------------------
    def start_tls(self, context, server_hostname, session):
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        try:
            self.sslobj = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname or None, session=session)
        except ValueError:  # a session of another context: full handshake
            self.sslobj = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname or None)
        self.handshaking = True
        self.handshake_error = None
        self._handshake_step()

    def _handshake_step(self):
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_tls()
            return
        except (ssl.SSLError, OSError, ValueError) as exc:
            self._flush_tls()  # (our alert, if any)
            self._handshake_done(exc)
            return
        self._flush_tls()
        self._handshake_done(None)

    def _handshake_done(self, exc):
        self.handshaking = False
        self.handshake_error = exc
        if exc is not None and self.transport is not None:
            self.transport.abort()  # (as asyncio's SSL transport does on a failed handshake)
        self._wake()

    def _read_tls(self):
        buffer = _BUFFERS.tls
        while True:
            try:
                size = self.sslobj.read(TLS_RECORD, buffer)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the peer's close_notify
                self.eof = True
                break
            except (ssl.SSLError, OSError, ValueError) as exc:
                self.error = self.error or exc
                self.eof = True
                if self.transport is not None:
                    self.transport.abort()
                break
            if not size:
                self.eof = True
                break
            self.buffer += memoryview(buffer)[:size]
        self._flush_tls()  # (what reading made OpenSSL write: alerts, key updates)

    def _flush_tls(self):
        data = self.outgoing.read()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def shutdown_tls(self):
        """Our close_notify (the peer's is read if it came already)."""
        try:
            self.sslobj.unwrap()
        except (ssl.SSLError, OSError, ValueError):  # (SSLWantReadError: theirs is still to come)
            pass
        self._flush_tls()


class SMTPClient:
    def __init__(
        self,
        host,
        port,
        *,
        guard,
        ehlo_name="prober.mailsec.test",
        timeout=5.0,
        source_address=None,
        server_hostname=None,
        tls_context=None,
        transcript_limit=400,
        tls_slot=None,
        keep_transcript=True,
        pipeline_rset=True,
        connect_timeout=None,
        greeting_timeout=None,
    ):
        self.host = str(host).strip("[]")
        self.port = int(port)
        self.guard = guard
        self.ehlo_name = ehlo_name
        self.timeout = float(timeout)
        # TCP (and implicit TLS) set-up, and the wait for the greeting (reverse DNS, postscreen's
        # pregreet wait and tarpits make real MXes greet late): each its own deadline
        self.connect_timeout = float(connect_timeout) if connect_timeout else self.timeout
        self.greeting_timeout = float(greeting_timeout) if greeting_timeout else self.timeout
        self.source_address = source_address
        self.server_hostname = server_hostname
        self.tls_context = tls_context
        self.tls_slot = tls_slot  # TLSSessionSlot shared by the connections to this listener
        self.tls_resumed = False
        self.transcript = []
        # keep_transcript=False: nobody will read it (transcripts: none), so do not build it
        self.transcript_limit = transcript_limit if keep_transcript else -1
        self.conn = None  # _Connection while the connection is open
        self.tls_active = False
        self.tls_info = None
        self.banner = None
        self.ehlo_reply = None
        self.extensions = {}
        self.client_seen = None
        self.usable = False
        self.dirty = False  # a transaction was started: RSET before the next one
        self.pending_rset = False  # RSET to be sent in the same write as the next command
        self.pipeline_rset = pipeline_rset  # False: RSET always on its own (reference mode)
        self.errors = 0  # 4xx/5xx replies (Postfix smtpd_soft_error_limit counts these)
        self.syntax_errors = 0  # 500-504 (Exim smtp_max_synprot_errors counts these)
        self.plaintext_after_starttls = b""
        self.stage = "CONNECT"
        self.quit_answered = False  # the server answered QUIT: it ends the TLS session itself
        self.on_close = None

    # -- transcript -------------------------------------------------------------------------
    def log(self, line: str) -> None:
        if self.transcript_limit < 0:
            return
        if len(self.transcript) < self.transcript_limit:
            self.transcript.append(line if len(line) <= 300 else line[:297] + "...")
        elif len(self.transcript) == self.transcript_limit:
            self.transcript.append("*** transcript truncated")

    # -- connection -------------------------------------------------------------------------
    async def connect(self, implicit_tls: bool = False, preface: bytes = None):
        """Open the connection (TLS first when ``implicit_tls``) and read the greeting.

        ``preface`` is written before the greeting is read (a PROXY protocol header)."""
        self.stage = "CONNECT"
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        local_addr = (self.source_address, 0) if self.source_address else None
        limit = self.connect_timeout + (self.timeout if implicit_tls else 0)
        where = "%s port %d" % (self.host, self.port)
        origin = " from %s" % self.source_address if self.source_address else ""
        self.log("*** connect %s%s%s" % (where, " (implicit TLS)" if implicit_tls else "", origin))
        loop = asyncio.get_running_loop()
        conn = _Connection(loop)
        try:
            async with asyncio.timeout(limit):
                await loop.create_connection(lambda: conn, self.host, self.port, family=family, local_addr=local_addr)
                self.conn = conn
                if implicit_tls:
                    await self._handshake(self.tls_context or make_tls_context())
        except (asyncio.TimeoutError, TimeoutError):
            self.log("*** connect timed out")
            raise ConnectFailed("connect to %s timed out after %ss" % (where, limit), "CONNECT")
        except ssl.SSLError as exc:
            self.log("*** TLS handshake failed: %s" % exc)
            raise TLSFailed("TLS handshake with %s failed: %s" % (where, exc), "TLS")
        except OSError as exc:
            self.log("*** connect failed: %s" % exc)
            raise ConnectFailed("connect to %s failed: %s" % (where, exc.strerror or exc), "CONNECT")
        self.usable = True
        if implicit_tls:
            self._tls_established()
        if preface:
            self.stage = "PROXY"
            await self._write(preface, escape_bytes(preface))
        self.stage = "BANNER"
        self.banner = await self.read_reply(self.greeting_timeout)
        return self.banner

    async def _handshake(self, context) -> None:
        """TLS on the open connection (the slot's session offered); raises what the handshake
        raised, or ConnectionAbortedError when it takes longer than the timeout."""
        conn = self.conn
        session = self.tls_slot.session if self.tls_slot is not None else None
        conn.start_tls(context, self.server_hostname, session)
        deadline = conn.loop.time() + self.timeout
        while conn.handshaking:
            try:
                await conn.wait(deadline)
            except TimeoutError:
                conn.handshaking = False
                conn.transport.abort()
                raise ConnectionAbortedError("SSL handshake is taking longer than %s seconds: aborting the connection" % self.timeout) from None
        error, conn.handshake_error = conn.handshake_error, None
        if error is not None:
            # Raised, its traceback holds this frame: neither the connection nor this frame's local
            # may keep it (a cycle that kept every failed handshake's TLS state until a full gc).
            try:
                raise error
            finally:
                del error

    def _tls_established(self) -> None:
        self.tls_active = True
        sslobj = self.conn.sslobj
        if sslobj is not None:
            self.tls_info = "%s %s" % (sslobj.version(), (sslobj.cipher() or ("?",))[0])
            self.tls_resumed = bool(getattr(sslobj, "session_reused", False))
        self.log("*** TLS established: %s%s" % (self.tls_info, ", session resumed" if self.tls_resumed else ""))

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        self.usable = False
        self.pending_rset = False
        if conn is not None and self.tls_active and self.tls_slot is not None and not self.tls_resumed:
            # TLS 1.3 tickets arrive after the handshake: the session is worth keeping only now.
            # A resumed handshake shows the slot's session works: keep it (reading a session out
            # copies it, a DER round trip per connection).
            self.tls_slot.keep(conn.sslobj)
        if conn is not None and conn.transport is not None:
            try:
                if self.tls_active and not conn.lost:
                    conn.shutdown_tls()
                if self.tls_active and not self.quit_answered:
                    # No QUIT exchanged: a TLS peer may leave our close_notify unanswered (Exim 4.96:
                    # nothing within 10 s). Ours is written; waiting for theirs would only hold the
                    # connection slot, so drop the connection now.
                    conn.transport.abort()
                else:
                    if self.tls_active:
                        # after QUIT: the server's close_notify (or FIN) follows its 221, bounded
                        deadline = conn.loop.time() + 1.0
                        while not conn.eof:
                            await conn.wait(deadline)
                    conn.transport.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail in many ways
                pass
        if conn is not None:
            # A read raised it, so its traceback holds a frame that holds this client: kept here it
            # would keep the connection (TLS state, buffers) in a cycle until a full collection.
            conn.error = None
        if self.on_close is not None:
            callback, self.on_close = self.on_close, None
            callback()

    # -- I/O --------------------------------------------------------------------------------
    async def _write(self, payload: bytes, shown=None) -> None:
        """The only writer: the guard sees every byte before it leaves (DATA, credentials).

        ``shown`` is the transcript text, or a list of texts when the write carries several commands."""
        self.guard.inspect(payload, tls_active=self.tls_active)
        if isinstance(shown, list):
            for text in shown:
                self.log("C: " + text)
        else:
            self.log("C: " + (shown if shown is not None else escape_bytes(payload)))
        conn = self.conn
        if conn is None:
            raise Closed("connection already closed", self.stage)
        try:
            conn.write(payload)
            # wait only when there is something to wait for: an SMTP command fits the socket buffer
            if conn.paused or conn.transport.is_closing():
                await conn.drain(conn.loop.time() + self.timeout)
        except (asyncio.TimeoutError, TimeoutError):
            self.usable = False
            raise ReadTimeout("write timed out", self.stage)
        except (ConnectionError, OSError) as exc:
            self.usable = False
            raise Closed("connection lost while writing: %s" % exc, self.stage)

    async def read_reply(self, timeout: float = None):
        lines = []
        conn = self.conn
        if conn is None:
            self.usable = False
            raise Closed("connection already closed", self.stage)
        # Replies to AUTH are kept as their code only (AUTH_REPLY_SUMMARY): never their text.
        secret = self.stage == "AUTH"
        # One deadline for the whole reply; a timer only while waiting: the lines of a multi-line
        # or pipelined reply are usually all buffered already.
        deadline = None
        dropped = 0  # lines past MAX_LINES - 1: read (bounded), not kept
        size = 0
        start = 0  # where the next line starts in conn.buffer (consumed at the end)
        try:
            while True:
                if conn.error is not None:
                    raise conn.error  # (as a StreamReader: a lost connection fails the read)
                buffer = conn.buffer
                end = buffer.find(b"\n", start)
                if end < 0:
                    if len(buffer) - start > MAX_LINE:
                        raise _LineTooLong()
                    if conn.eof:
                        raw = bytes(buffer[start:])
                        start = len(buffer)
                        self.usable = False
                        if raw and not secret:
                            self.log("S: " + escape_bytes(raw))
                        self.log("*** connection closed by server")
                        raise Closed("connection closed by the server", self.stage)
                    if deadline is None:
                        deadline = conn.loop.time() + (timeout or self.timeout)
                    conn.consumed(start)
                    start = 0
                    await conn.wait(deadline)
                    continue
                if end - start > MAX_LINE:
                    start = end + 1
                    raise _LineTooLong()
                raw = bytes(buffer[start : end + 1])
                start = end + 1
                size += len(raw)
                last = is_last_line(raw)
                if len(lines) < MAX_LINES - 1 or last:
                    if not secret:
                        self.log("S: " + escape_bytes(raw.rstrip(b"\r\n")))
                    lines.append(raw)
                else:
                    dropped += 1
                    if size > MAX_REPLY_BYTES:
                        raise ProtocolError("reply longer than %d bytes" % MAX_REPLY_BYTES, self.stage)
                if last:
                    break
        except TimeoutError:
            self.usable = False
            self.log("*** no complete reply within %ss" % (timeout or self.timeout))
            raise ReadTimeout("no reply within %ss" % (timeout or self.timeout), self.stage)
        except _LineTooLong:
            self.usable = False
            self.log("*** reply line longer than %d bytes" % MAX_LINE)
            raise ProtocolError("reply line longer than %d bytes" % MAX_LINE, self.stage)
        except (ConnectionError, OSError) as exc:
            self.usable = False
            raise Closed("connection lost: %s" % exc, self.stage)
        except ProtocolError:
            self.usable = False
            raise
        finally:
            conn.consumed(start)
        if secret:
            self.log("S: %s %s" % (printable(lines[0][:3].decode("ascii", "replace")), AUTH_REPLY_SUMMARY))
        if dropped:
            self.log("*** %d more reply lines not kept (reply bounded to %d lines)" % (dropped, MAX_LINES))
        try:
            reply = parse_reply(lines)
        except ReplyError as exc:
            self.usable = False
            if secret:
                raise ProtocolError("malformed reply to AUTH (text not stored)", self.stage)
            raise ProtocolError("malformed reply: %s" % exc, self.stage)
        if secret:
            reply = Reply(code=reply.code, lines=(AUTH_REPLY_SUMMARY,), enhanced=reply.enhanced)
        if reply.code >= 400:
            self.errors += 1
            if reply.code in (500, 501, 502, 503, 504):
                self.syntax_errors += 1
            if reply.code == 421:
                self.usable = False
        return reply

    async def send_raw(self, payload: bytes, shown: str = None) -> None:
        """Write bytes as they are (pipelining, injection, smuggling); still guarded."""
        await self._flush_rset()
        await self._write(payload, shown)

    @property
    def auth_timeout(self) -> float:
        """Read deadline for replies to AUTH and its continuation lines."""
        return self.timeout + AUTH_DELAY_ALLOWANCE

    @property
    def pipelining(self) -> bool:
        """RFC 2920: the server takes groups of commands in one write."""
        return "PIPELINING" in self.extensions

    async def command(self, line: str, shown: str = None, stage: str = None, timeout: float = None):
        return (await self.commands([(line, shown)], stage=stage, timeout=timeout))[-1]

    async def commands(self, lines, stage: str = None, timeout: float = None):
        """Send ``[(line, shown), ...]`` in one write (a pending RSET first) and read one reply per
        line; ``stage`` names the last. Callers pass several lines only where the server advertised
        PIPELINING and RFC 2920 allows the group (nothing after a command that changes the session)."""
        lines = [(line, shown if shown is not None else line) for line, shown in lines]
        for line, shown in lines:
            if not _COMMAND_LINE.match(line):
                # (the raw bytes T16/T17 send on purpose go through send_raw and starttls, not here)
                raise UnsafeProbe("refused to send a command with a line break, control or non-ASCII character: %s" % escape_bytes(shown.encode("utf-8")))
        if self.pending_rset:
            lines.insert(0, ("RSET", "RSET"))
            self.pending_rset = False
        stages = [_verb(line) for line, shown in lines]
        if stage:
            stages[-1] = stage
        self.stage = stages[0]
        await self._write("".join(line + "\r\n" for line, shown in lines).encode("utf-8"), [shown for line, shown in lines])
        replies = []
        for this_stage in stages:
            self.stage = this_stage
            replies.append(await self.read_reply(timeout))
        return replies

    async def _flush_rset(self) -> None:
        if self.pending_rset:
            self.pending_rset = False  # (command() would otherwise put a second RSET before it)
            await self.command("RSET")
            self.guard.recipients = []

    # -- SMTP verbs -------------------------------------------------------------------------
    async def ehlo(self):
        reply = await self.command("EHLO " + self.ehlo_name)
        self.extensions = {}
        if reply.code == 250:
            self.extensions = parse_ehlo(reply)
        elif reply.code // 100 == 5:
            reply = await self.command("HELO " + self.ehlo_name)
        self.ehlo_reply = reply
        match = _CLIENT_IP.search(reply.lines[0]) if reply.lines else None
        if match:
            self.client_seen = match.group(1)
        return reply

    async def helo(self):
        """HELO only (RFC 5321 4.1.1.1): the fallback when an EHLO reply cannot be used."""
        reply = await self.command("HELO " + self.ehlo_name)
        self.extensions = {}
        self.ehlo_reply = reply
        return reply

    async def starttls(self, extra: bytes = b""):
        """STARTTLS (``extra`` is pipelined in the same write: the T16 injection probe)."""
        await self._flush_rset()
        self.stage = "STARTTLS"
        shown = "STARTTLS" + (" + " + escape_bytes(extra) if extra else "")
        await self._write(b"STARTTLS\r\n" + extra, shown)
        reply = await self.read_reply()
        if reply.code != 220:
            return reply
        # Anything already buffered arrived in plaintext after the 220; keep it out of the TLS stream.
        conn = self.conn
        if conn.buffer:
            self.plaintext_after_starttls = bytes(conn.buffer)
            self.log("*** %d bytes of plaintext after the 220: %s" % (len(conn.buffer), escape_bytes(self.plaintext_after_starttls)))
            conn.consumed(len(conn.buffer))
        self.stage = "TLS"
        try:
            await self._handshake(self.tls_context or make_tls_context())
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            self.usable = False
            self.log("*** TLS handshake failed: %s" % exc)
            raise TLSFailed("TLS handshake failed: %s" % exc, "TLS")
        self._tls_established()
        self.extensions = {}  # RFC 3207 4.2: forget what was learnt before TLS
        return reply

    async def auth(self, mechanism: str, creds):
        """AUTH PLAIN (initial response) or LOGIN; the transcript shows only ``****``."""
        self.guard.check_credentials(creds, self.tls_active)
        mechanism = mechanism.upper()
        wait = self.auth_timeout
        if mechanism == "PLAIN":
            return await self.command("AUTH PLAIN " + creds.plain_token(), shown="AUTH PLAIN ****", stage="AUTH", timeout=wait)
        if mechanism == "LOGIN":
            reply = await self.command("AUTH LOGIN", stage="AUTH", timeout=wait)
            if reply.code == 334:
                reply = await self.command(b64(creds.username), shown="****", stage="AUTH", timeout=wait)
            if reply.code == 334:
                reply = await self.command(b64(creds.password), shown="****", stage="AUTH", timeout=wait)
            return reply
        raise ValueError("unsupported AUTH mechanism %s" % mechanism)

    async def auth_plain_begin(self, creds):
        """``AUTH PLAIN`` without an initial response: the server starts its SASL exchange and
        answers 334 (Dovecot checks its auth penalty for the client before that 334); the
        credentials follow with :meth:`auth_plain_respond`. A reply other than 334 ends the exchange."""
        self.guard.check_credentials(creds, self.tls_active)
        return await self.command("AUTH PLAIN", stage="AUTH", timeout=self.auth_timeout)

    async def auth_plain_respond(self, creds):
        """The credentials after a 334 to ``AUTH PLAIN``; the transcript shows only ``****``."""
        self.guard.check_credentials(creds, self.tls_active)
        return await self.command(creds.plain_token(), shown="****", stage="AUTH", timeout=self.auth_timeout)

    async def mail(self, sender: str):
        self.dirty = True
        return await self.command("MAIL FROM:" + sender, stage="MAIL")

    async def mail_rcpt(self, sender: str, recipient: str):
        """MAIL and RCPT in one write where the server pipelines; ``(mail_reply, rcpt_reply)``.

        ``rcpt_reply`` is None when MAIL was refused; a pipelined RCPT was then still answered
        (usually 503) and counted as an error: callers budget for it."""
        self.dirty = True
        if not self.pipelining:
            mail = await self.command("MAIL FROM:" + sender, stage="MAIL")
            return mail, (await self.rcpt(recipient) if mail.code // 100 == 2 else None)
        mail, rcpt = (await self.commands([("MAIL FROM:" + sender, None), ("RCPT TO:" + recipient, None)], stage="RCPT"))[-2:]
        return mail, (rcpt if mail.code // 100 == 2 else None)

    async def rcpt(self, recipient: str):
        return await self.command("RCPT TO:" + recipient, stage="RCPT")

    async def rset(self):
        """RSET; where the server pipelines it rides in the next command's write (None returned).
        The guard forgets recipients when it sees the RSET go out, not before."""
        self.dirty = False
        if self.pipelining and self.pipeline_rset and self.conn is not None:
            self.pending_rset = True
            return None
        reply = await self.command("RSET")
        self.guard.recipients = []
        return reply

    async def data(self, body: bytes):
        """DATA, then the dot-stuffed body; returns ``(reply_to_DATA, reply_to_end_of_data)``."""
        first = await self.command("DATA")
        if first.code != 354:
            return first, None
        lines = body.replace(b"\r\n", b"\n").split(b"\n")
        stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
        await self._write(stuffed + b"\r\n.\r\n", "<message, %d bytes> ." % len(stuffed))
        self.stage = "EOD"
        final = await self.read_reply()
        self.guard.end_of_data()
        return first, final

    async def quit(self) -> None:
        """QUIT, then read the 221 (bounded; stops early when the peer closes) and close.

        On plaintext the client half-closes (FIN) right after writing QUIT: it sends nothing more,
        and Exim 4.96 holds its 221 on a plaintext connection for 200 ms unless the client has
        closed its side (then it answers within 1 ms). TLS has no half-close of its own (close_notify
        closes both directions), so there the 221 is read as it comes (Exim answers at once there)."""
        self.pending_rset = False  # the session ends: the RSET is moot
        if self.usable and self.conn is not None:
            try:
                await self._write(b"QUIT\r\n", "QUIT")
                transport = self.conn.transport
                if not self.tls_active and transport.can_write_eof():
                    transport.write_eof()  # after the QUIT bytes: the transport flushes them first
                self.stage = "QUIT"
                await self.read_reply(min(self.timeout, 1.0))
                self.quit_answered = True
            except Exception:  # noqa: BLE001 - QUIT is a courtesy
                pass
        await self.close()
