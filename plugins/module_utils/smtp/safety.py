# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The prober's safety rules, enforced in one place.

Every byte the SMTP client writes goes through :meth:`DataGuard.inspect` before it leaves the
process (``SMTPClient._write`` is the only writer). The guard refuses:

* ``DATA``/``BDAT`` unless a canary is configured and every recipient named since the last RSET
  routes only to the canary domain (or, where the caller allows it, is the explicitly given local
  test mailbox); recipients inside message bodies count too, so smuggling payloads are covered;
* real credentials (or their base64 forms) on a connection that is not yet encrypted.

Trick addresses (percent hack, bang paths, source routes, quoted parts) may name the target's own
names as an intermediate hop - its configured host name, hosted domains (local and relay) and
address literals, never a name the server merely claims in its greeting; every other host in them
must be the canary.
"""

from __future__ import annotations

import base64
import re

# Local parts the probe generates: t<probe><case>-<hex nonce>, e.g. t12p13-5f0c9a1b2e.
PROBE_LOCALPART = re.compile(r"t[0-9]{2}[a-z0-9]{0,8}-[0-9a-f]{8,}")

_LITERAL = re.compile(r"\[[^\]]*\]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n|\x00")


class UnsafeProbe(RuntimeError):
    """A probe tried to do something the safety rules forbid. Nothing was sent."""


class Credentials:
    """Username/password; ``real`` ones are secrets (never before TLS, never in output)."""

    __slots__ = ("username", "password", "real")

    def __init__(self, username: str, password: str, real: bool) -> None:
        self.username = username
        self.password = password
        self.real = real

    def plain_token(self) -> str:
        return b64("\0%s\0%s" % (self.username, self.password))

    def secret_forms(self) -> list:
        """Every form of the password that could appear on the wire."""
        if not self.real or not self.password:
            return []
        return [self.password, b64(self.password), self.plain_token(), b64("%s\0%s\0%s" % (self.username, self.username, self.password))]

    def __repr__(self) -> str:
        return "Credentials(%r, ****, real=%r)" % (self.username, self.real)


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


# Deliberately invalid: the only credentials ever sent before TLS (T02/T04).
DUMMY_CREDENTIALS = Credentials("probe-invalid@example.invalid", "not-a-valid-password", real=False)


def envelope_address(argument: str) -> str:
    """The address of a ``MAIL FROM:`` / ``RCPT TO:`` argument, without brackets and parameters."""
    argument = argument.strip()
    if argument.startswith("<"):
        end = argument.rfind(">")
        return argument[1:end] if end > 0 else argument[1:]
    return argument.split()[0] if argument.split() else ""


class SafetyPolicy:
    """Per-target safety settings; hands out one :class:`DataGuard` per connection."""

    def __init__(self, canary_domain=None, local_mailbox=None, own_names=(), credentials=()):
        self.canary_domain = (canary_domain or "").strip().lower().rstrip(".") or None
        self.local_mailbox = (local_mailbox or "").strip().lower() or None
        self.own_names = set(name.lower() for name in own_names if name)
        self.secrets = []
        for creds in credentials:
            if creds is not None:
                self.secrets.extend(creds.secret_forms())

    def guard(self, allow_local_mailbox: bool = False) -> "DataGuard":
        return DataGuard(self, allow_local_mailbox)

    def routes_to_canary(self, address: str) -> bool:
        """True when every host named in ``address`` is the canary domain or the target itself,
        and the canary domain is named at least once."""
        if not self.canary_domain:
            return False
        text = address.strip().strip("<>").lower().replace('"', "")
        for literal in _LITERAL.findall(text):
            if literal not in self.own_names:
                return False
        text = _LITERAL.sub("@", text)
        hit = False
        for token in re.split(r"[@%!:,]", text):
            if not token:
                continue
            if token == self.canary_domain or token.endswith("." + self.canary_domain):
                hit = True
            elif token in self.own_names or PROBE_LOCALPART.fullmatch(token):
                continue
            else:
                return False
        return hit

    def data_refusal(self, recipients, allow_local_mailbox: bool):
        """None when DATA may go to ``recipients``, else the reason it may not."""
        if not self.canary_domain:
            return "no canary configured: the prober never sends DATA"
        if not recipients:
            return "DATA without a recipient"
        for rcpt in recipients:
            if allow_local_mailbox and self.local_mailbox and rcpt.strip().lower() == self.local_mailbox:
                continue
            if self.routes_to_canary(rcpt):
                continue
            return "recipient %r is not in the canary domain %s" % (rcpt, self.canary_domain)
        return None


class DataGuard:
    """Inspects every write of one connection (see module docstring)."""

    def __init__(self, policy: SafetyPolicy, allow_local_mailbox: bool) -> None:
        self.policy = policy
        self.allow_local_mailbox = allow_local_mailbox
        self.recipients = []
        self.data_checks = 0

    def check_credentials(self, creds: Credentials, tls_active: bool) -> None:
        if creds.real and not tls_active:
            raise UnsafeProbe("refusing to send real credentials before TLS")

    def inspect(self, payload: bytes, tls_active: bool) -> None:
        text = payload.decode("latin-1")
        if not tls_active:
            for secret in self.policy.secrets:
                if secret and secret in text:
                    raise UnsafeProbe("refusing to send credentials before TLS")
        for line in _LINE_BREAK.split(text):
            head = line.lstrip().upper()
            if head.startswith("RSET"):
                self.recipients = []
            elif head.startswith("RCPT TO"):
                self.recipients.append(envelope_address(line.partition(":")[2]))
            elif re.match(r"(DATA|BDAT)\b", head):
                self.data_checks += 1
                reason = self.policy.data_refusal(self.recipients, self.allow_local_mailbox)
                if reason:
                    raise UnsafeProbe("DATA blocked by the safety guard: " + reason)

    def end_of_data(self) -> None:
        """The transaction is over (the server answered the end of data)."""
        self.recipients = []
