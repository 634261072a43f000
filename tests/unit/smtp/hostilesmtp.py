# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hostile fake SMTP servers (issue 12): servers that misbehave on purpose, loopback only.

``Hostility`` adds to a fakesmtp.Behaviour what a hostile server does: a 10,000-line EHLO reply,
a 554 greeting followed by a session that accepts everything, every reply held until just under
the client's timeout, and the AUTH token echoed back in 4-character pieces (in AUTH replies, in the
replies after AUTH and in the greeting of every later connection).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses

from smtp_fakes import fakesmtp, hardened_host

PIECE = 4


@dataclasses.dataclass
class Hostility:
    ehlo_lines: int = 0  # filler lines before the real EHLO keywords
    greeting_code: int = 0  # e.g. 554: greet with this, then accept every command anyway
    reply_delay: float = 0.0  # seconds before every reply (greeting included)
    echo_auth: bool = False  # echo AUTH tokens (and the password) back in pieces


def pieces(text, size=PIECE):
    """The whole ``size``-character pieces of ``text`` (what an echoing server sends back)."""
    return [text[i : i + size] for i in range(0, len(text) - size + 1, size)]


class HostileSMTP(fakesmtp.FakeSMTP):
    def __init__(self, behaviour=None, tls_context=None, implicit=False, hostility=None):
        super().__init__(behaviour, tls_context, implicit)
        self.hostility = hostility or Hostility()
        self.echoed = []  # every piece this server echoed (the test looks for them)
        self.session_class = HostileSession


class HostileSession(fakesmtp._Session):
    def __init__(self, server, reader, writer):
        super().__init__(server, reader, writer)
        self.h = server.hostility
        self.greeted = False
        self.after_auth = []  # pieces echoed in every reply once AUTH was seen

    def echo(self, *texts):
        out = []
        for text in texts:
            out.extend(pieces(text))
        self.srv.echoed.extend(out)
        return out

    async def send(self, code, *lines):
        if self.h.reply_delay:
            await asyncio.sleep(self.h.reply_delay)
        if not self.greeted:
            self.greeted = True
            if self.h.greeting_code:
                code, lines = self.h.greeting_code, ("5.7.1 %s: you are not welcome here" % self.b.hostname,)
            if self.h.echo_auth and self.srv.echoed:
                # a stateful server: what an earlier connection sent comes back in the next greeting
                lines = tuple(lines) + tuple(self.srv.echoed[-12:])
        elif self.after_auth and code // 100 in (2, 5) and code != 221:
            lines = tuple(lines[:-1]) + tuple(self.after_auth) + tuple(lines[-1:])
        await super().send(code, *lines)

    async def cmd_EHLO(self, line):
        if not self.h.ehlo_lines:
            return await super().cmd_EHLO(line)
        self.reset()
        body = ["%s Hello [%s]" % (self.b.hostname, self.peer)]
        body += ["X-FILLER-%05d hostile padding" % n for n in range(self.h.ehlo_lines)]
        body += ["PIPELINING", "SIZE 10240000"]
        if self.b.starttls and not self.tls and self.srv.tls_context is not None:
            body.append("STARTTLS")
        if self.auth_allowed():
            body.append("AUTH PLAIN LOGIN")
        body.append("ENHANCEDSTATUSCODES")
        if self.h.reply_delay:
            await asyncio.sleep(self.h.reply_delay)
        self.writer.write(b"".join(("250%s%s\r\n" % ("-" if i < len(body) - 1 else " ", text)).encode() for i, text in enumerate(body)))
        await self.writer.drain()

    async def cmd_AUTH(self, line):
        if not self.h.echo_auth:
            return await super().cmd_AUTH(line)
        if not self.auth_allowed():
            await self.send(503, "5.5.1 Error: authentication not enabled")
            return
        words = line.split()
        mech = words[1].upper() if len(words) > 1 else ""
        if mech == "PLAIN":
            token = words[2] if len(words) > 2 else None
            if token is None:
                await self.send(334, "")
                token = await self.auth_line()
            user, password = hardened_host.decode_plain(token)
            echoed = self.echo(token or "", password or "")
        elif mech == "LOGIN":
            await self.send(334, "VXNlcm5hbWU6")
            first = await self.auth_line()
            await self.send(334, *(self.echo(first or "") + ["UGFzc3dvcmQ6"]))
            second = await self.auth_line()
            user, password = hardened_host.b64(first or ""), hardened_host.b64(second or "")
            echoed = self.echo(second or "", password or "")
        else:
            await self.send(504, "5.5.4 Unrecognized authentication type")
            return
        self.after_auth = echoed
        good = user is not None and self.b.users.get(user) == password
        self.srv.auth_log.append((0.0, good, None))
        if good:
            self.authed = True
            await self.send(235, "2.7.0 you sent", *(echoed + ["2.7.0 Authentication successful"]))
        else:
            await self.send(535, "5.7.8 you sent", *(echoed + ["5.7.8 Error: authentication failed"]))


def b64(text):
    return base64.b64encode(text.encode()).decode()


def secret_forms(user, password):
    """Every form of the password that must never appear, whole or in PIECE-character pieces."""
    whole = [password, b64(password), b64("\0%s\0%s" % (user, password)), b64("%s\0%s\0%s" % (user, user, password))]
    return whole, sorted(set(piece for form in whole for piece in pieces(form)))
