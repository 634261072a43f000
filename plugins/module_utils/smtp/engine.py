# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the probe matrix against many targets at once (docs/probe-contract.md).

Speed without tripping MTA defences: connections are reused with RSET while their error count
stays well under Postfix's smtpd_soft_error_limit (10) and Exim's smtp_max_synprot_errors (3),
and connections run concurrently, bounded globally (``concurrency``) and per probed address
(``per_host``, under Postfix's 50-per-client and Exim's 20-total defaults).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import gc
import heapq
import ipaddress
import itertools
import json
import os
import re
import secrets
import subprocess
import sys
import time

from .. import grammar
from ..compact import AGGREGATE_PROBE, PassAggregates, fold_skips, is_aggregate, verdict_counts
from ..findings import finding_for
from .canary import CanaryWatcher, received_client
from .client import ConnectFailed, ProtocolError, SMTPClient, SMTPError, TLSFailed, TLSSessionSlot, make_tls_context
from .integrity import REQUIRED, UNVERIFIED_MODES, mask_secrets, unverified_results
from .probes import (
    ALL_PROBES,
    DEFAULT_PROBES,
    FAIL,
    INCONCLUSIVE,
    PASS,
    REACHABLE,
    SKIP,
    WARN,
    Case,
    Outcome,
    build_cases,
    describe,
    greeting_cases,
    greeting_name,
    rate_limit_spec,
    validate_extra_forms,
)
from .safety import PROBE_LOCALPART, Credentials, SafetyPolicy, UnsafeProbe
from .tlsprobe import TLS_VERSIONS, build_tls_cases

VERDICTS = (PASS, FAIL, WARN, INCONCLUSIVE, SKIP)
TRANSCRIPTS = ("failures", "all", "none")
RESULT_SHAPES = ("full", "compact")
# PASS results the engine still reads after they are recorded (T18 escalation, T20 summary): kept
# whole until the run ends even when results are compacted as they come.
_READ_LATER = ("T17", "T05", ("T11", "P02"), ("T06", "relay"))
# Below this many listeners per process a worker process costs more (start, result transfer)
# than it saves: one listener's matrix is ~25 ms of prober CPU.
LISTENERS_PER_PROCESS = 12
# A closed connection used to linger in reference cycles (exception tracebacks, asyncio's stream
# objects) with its TLS buffers until Python's full collection, which comes rarely while a large
# plan is alive: 775 MiB per worker over 1000 endpoints. The client now breaks those cycles itself
# (client.py: a failed handshake's or read's exception is not kept); what is left per connection
# is asyncio's transport (a closed socket object in a cycle with its own read callback, ~1 KiB).
# A full collection after every so many closed connections still bounds whatever a server's odd
# failures may leave; the plan itself is frozen out of those collections (gc.freeze), and the next
# one waits at least COLLECT_SHARE times as long as the last took (at most ~1/COLLECT_SHARE of the
# CPU). Every 100 connections that was ~10% of the prober's CPU over 1000 endpoints for no memory
# (peak RSS the same with and without them once the cycles were broken).
COLLECT_EVERY = 1000
# Listeners in progress at once: enough to keep `concurrency` connections busy (a listener uses
# 1-4 connections at a time and waits on per_host and the AUTH gate), few enough that the plans of
# the waiting ones are not built yet.
ADMIT_MIN = 32
ADMIT_PER_CONNECTION = 2
COLLECT_SHARE = 10
FOREIGN_DOMAIN = "example.net"  # resolves publicly (RFC 2606), never receives DATA from us


class ConfigError(ValueError):
    pass


class SessionError(Exception):
    """The session a case needs could not be set up (greeting refused, no STARTTLS, ...)."""

    def __init__(self, kind, message, reply=None, transient=False):
        super().__init__(message)
        self.kind = kind
        self.reply = reply
        self.transient = transient


class Unreachable(SMTPError):
    """An earlier connection to this listener already failed for good."""


class ConnectionLimit(SMTPError):
    """No further connection to this address: the host refused one with its per-client rate or
    count limit (a temporary refusal, not a verdict), or ``max_connections_per_host`` is spent."""

    def __init__(self, message, reply=None):
        super().__init__(message, "CONNECT")
        self.reply = reply


# A 421 greeting that names a per-client connection limit: Sendmail's ClientRate/ClientConn
# ("Connection rate limit exceeded", "Too many open connections"), Postfix anvil ("too many
# connections from ..."), Exim smtp_accept_max_per_host ("Too many concurrent SMTP connections").
LIMIT_GREETING = re.compile(r"rate limit|too many|connection limit|concurrent|connections from|max(imum)? connections", re.I)
# Of those, the limits on connections over time (Sendmail ClientRate, Postfix anvil's "connection
# requests"): waiting does not help within the run. The others limit connections open at once
# (Exim smtp_accept_max, Sendmail ClientConn, Postfix's count limit): fewer at once does.
RATE_GREETING = re.compile(r"rate|connection requests", re.I)


class HostBusy(ConnectFailed):
    """421 for too many connections open at once: the case is retried with one connection fewer."""


# -- configuration ---------------------------------------------------------------------------
class Listener:
    def __init__(self, spec, where):
        if not isinstance(spec, dict) or "port" not in spec:
            raise ConfigError("%s: a listener needs a port" % where)
        self.port = int(spec["port"])
        self.role = spec.get("role") or ("submission" if self.port in (465, 587) else "mx")
        self.tls = spec.get("tls") or ("implicit" if self.port == 465 else "none")
        self.relay = spec.get("relay") or "refused"
        self.auth_relay = bool(spec.get("auth_relay", self.role == "submission"))
        self.sender_login_match = bool(spec.get("sender_login_match", False))
        self.extra = bool(spec.get("extra", False))  # from the target's extra_ports: probed when open
        # reachable: false - the policy keeps this vantage out (loopback, another address, a connect
        # list): closed is expected, an open one is probed as declared. Both kinds only when open.
        self.reachable = spec.get("reachable", True)
        if not isinstance(self.reachable, bool):
            raise ConfigError("%s: reachable must be true or false, not %r" % (where, self.reachable))
        self.when_open = self.extra or not self.reachable
        for name, value, allowed in (
            ("role", self.role, ("mx", "submission")),
            ("tls", self.tls, ("none", "starttls", "required", "implicit")),
            ("relay", self.relay, ("refused", "allowed")),
        ):
            if value not in allowed:
                raise ConfigError("%s: %s must be one of %s, not %r" % (where, name, ", ".join(allowed), value))

    def named(self):
        """How a listener probed only when open is named in its SKIP and INCONCLUSIVE texts."""
        if self.extra:
            return "extra port %d" % self.port
        return "port %d (the policy keeps this vantage out of it)" % self.port


_PRINTABLE_TOKEN = re.compile(r"\A[\x21-\x7e]{1,320}\Z")


def _checked(name_of, value, where):
    """``name_of(value)`` (grammar.domain_name or grammar.host_name), a ConfigError naming the field."""
    try:
        return name_of(value)
    except grammar.GrammarError as exc:
        raise ConfigError("%s: %r is not a domain name (%s)" % (where, value, exc.reason))


class Target:
    def __init__(self, spec, index):
        where = "targets[%d]" % index
        if not isinstance(spec, dict):
            raise ConfigError("%s: must be a dict" % where)
        self.spec, self.index = spec, index  # what a worker process is given to rebuild it
        self.name = str(spec.get("name") or "target%d" % index)
        self.addresses = [str(a).strip("[]") for a in (spec.get("addresses") or [])]
        if not self.addresses:
            raise ConfigError("%s (%s): no addresses" % (where, self.name))
        # Names and addresses go into commands (address tricks, RCPT, EHLO's server name): each is
        # checked against its grammar here, so the run stops naming the field (the client refuses a
        # line break in any command as well).
        self.hostname = _checked(grammar.host_name, spec.get("hostname") or self.name, where + ".hostname")
        self.local_domains = [_checked(grammar.domain_name, d, "%s.local_domains[%d]" % (where, i)) for i, d in enumerate(spec.get("local_domains") or [])]
        self.relay_domains = [_checked(grammar.domain_name, d, "%s.relay_domains[%d]" % (where, i)) for i, d in enumerate(spec.get("relay_domains") or [])]
        self.test_mailbox = spec.get("test_mailbox") or None
        if self.test_mailbox is not None and not grammar.is_email(self.test_mailbox):
            raise ConfigError("%s.test_mailbox: %r is not a plain address local@domain (A-labels)" % (where, self.test_mailbox))
        # Addresses the host must refuse at RCPT (T23): unknown recipients where validation is on, blocked domains.
        self.refused_recipients = []
        for i, item in enumerate(spec.get("refused_recipients") or []):
            if not isinstance(item, dict) or not grammar.is_email(item.get("address")) or item.get("kind") not in ("unknown", "blocked"):
                raise ConfigError("%s.refused_recipients[%d]: needs an address and a kind (unknown or blocked)" % (where, i))
            self.refused_recipients.append({"address": str(item["address"]), "kind": item["kind"]})
        listeners = spec.get("listeners") or [{"port": 25, "role": "mx", "tls": "starttls"}]
        self.listeners = [Listener(item, "%s.listeners[%d]" % (where, i)) for i, item in enumerate(listeners)]
        self.listeners += extra_listeners(spec.get("extra_ports"), self.listeners, where)
        auth = spec.get("auth")
        self.auth = None
        if auth:
            if not auth.get("username") or auth.get("password") in (None, ""):
                raise ConfigError("%s.auth: needs username and password" % where)
            if not _PRINTABLE_TOKEN.match(str(auth["username"])):
                raise ConfigError("%s.auth.username: printable ASCII without spaces only (it may become the MAIL FROM address)" % where)
            self.auth = Credentials(str(auth["username"]), str(auth["password"]), real=True)
        # issue 14: the limits T24/T25 test (probes.rate_limit_spec)
        try:
            self.sender_rate_limit = rate_limit_spec(spec.get("sender_rate_limit"), where, "sender_rate_limit")
            self.auth_attempt_limit = rate_limit_spec(spec.get("auth_attempt_limit"), where, "auth_attempt_limit")
        except ValueError as exc:
            raise ConfigError(str(exc))

    def own_names(self):
        # Hosted domains too: a trick form may hide the canary behind them (the percent hack of a
        # backup MX through its relay domain); every other host in a DATA recipient stays refused.
        names = [self.hostname] + self.local_domains + self.relay_domains
        for address in self.addresses:
            names.append(literal(address))
            names.append(address)
        return names


class Options:
    def __init__(self, params):
        source = params.get("source_address")
        self.sources = [str(s) for s in (source if isinstance(source, list) else [source] if source else [])]
        self.vantage = params.get("vantage")
        self.ehlo_name = params.get("ehlo_name") or "prober.mailsec.test"
        if not (grammar.is_domain(str(self.ehlo_name).lower()) or re.match(r"\A\[(?:IPv6:)?[0-9A-Fa-f:.]{1,45}\]\Z", str(self.ehlo_name))):
            raise ConfigError("ehlo_name: %r is not a host name or an address literal such as [198.51.100.7]" % (self.ehlo_name,))
        canary = params.get("canary") or {}
        self.canary_domain = _checked(grammar.domain_name, canary["domain"], "canary.domain") if canary.get("domain") else None
        self.canary_spool = canary.get("spool")
        self.canary_wait = float(canary.get("wait", 10) if canary.get("wait") is not None else 10)
        wanted = [str(p).upper() for p in (params.get("probes") or ["all"])]
        self.explicit = set(p for p in wanted if p != "ALL")
        unknown = self.explicit - set(ALL_PROBES)
        if unknown:
            raise ConfigError("probes: unknown %s (known: all, T00 ... %s)" % (", ".join(sorted(unknown)), ALL_PROBES[-1]))
        self.everything = "ALL" in wanted
        self.probes = set(DEFAULT_PROBES) | self.explicit if self.everything else set(self.explicit)
        self.concurrency = max(1, int(params.get("concurrency") or 64))
        self.per_host = max(1, int(params.get("per_host") or 10))
        self.timeout = float(params.get("timeout") or 5)
        self.connect_timeout = float(params.get("connect_timeout") or 10)
        # (reverse DNS, postscreen's pregreet wait and tarpits: real MXes greet late; never shorter than a reply)
        self.greeting_timeout = float(params.get("greeting_timeout") or max(30.0, self.timeout))
        self.tls_min_version = str(params.get("tls_min_version") or "TLSv1.2")
        if self.tls_min_version == "TLSv1":
            self.tls_min_version = "TLSv1.0"
        if self.tls_min_version not in TLS_VERSIONS:
            raise ConfigError("tls_min_version: must be one of %s, not %r" % (", ".join(TLS_VERSIONS), self.tls_min_version))
        self.unverified = str(params.get("unverified") or "fail").lower()
        if self.unverified not in UNVERIFIED_MODES:
            raise ConfigError("unverified: must be one of %s, not %r" % (", ".join(UNVERIFIED_MODES), self.unverified))
        self.retries = max(0, int(params.get("retries") if params.get("retries") is not None else 1))
        self.retry_delay = float(params.get("retry_delay") if params.get("retry_delay") is not None else 2)
        self.error_budget = max(3, int(params.get("error_budget") or 8))
        self.tls_verify = bool(params.get("tls_verify", False))
        self.transcripts = str(params.get("transcripts") or "failures")
        if self.transcripts not in TRANSCRIPTS:
            raise ConfigError("transcripts: must be one of %s, not %r" % (", ".join(TRANSCRIPTS), self.transcripts))
        self.workers = int(params.get("workers") or 0)
        # compact: PASS results folded into one aggregate per listener as they are recorded
        # (module_utils/compact.py), so a fleet run never holds every PASS result at once.
        self.results_shape = str(params.get("results") or "full")
        if self.results_shape not in RESULT_SHAPES:
            raise ConfigError("results: must be one of %s, not %r" % (", ".join(RESULT_SHAPES), self.results_shape))
        # Connections in all to one address during the run (0: no cap of ours; the host's own
        # limit is learnt from its 421 reply). Relay-decision sessions get connections first.
        self.max_connections = int(params.get("max_connections_per_host") or 0)
        if self.max_connections < 0:
            raise ConfigError("max_connections_per_host: must be 0 (no cap) or more")
        # T17: seconds to wait for a reply to the fake end of data before the smuggled commands follow
        self.smuggle_wait = float(params.get("smuggle_wait") if params.get("smuggle_wait") is not None else 1.0)
        # False: the reference mode of the speed rules - one case per connection, no pipelined
        # MAIL+RCPT or RSET, full TLS handshakes. Engine parameter only (bench, tests): it must
        # give the same verdicts as the default, only slower.
        self.reuse = bool(params.get("reuse", True))
        if self.workers < 0:
            raise ConfigError("workers: must be 0 (one per CPU for large runs) or more")
        try:
            self.extra_forms = validate_extra_forms(params.get("extra_forms"))
        except ValueError as exc:
            raise ConfigError(str(exc))


MAX_EXTRA_PORTS = 16


def extra_listeners(ports, declared, where):
    """Listeners for ``extra_ports``: MX semantics, plaintext, relay refused; probed when open."""
    if ports in (None, []):
        return []
    if not isinstance(ports, list) or len(ports) > MAX_EXTRA_PORTS:
        raise ConfigError("%s.extra_ports: a list of at most %d port numbers" % (where, MAX_EXTRA_PORTS))
    taken = set(listener.port for listener in declared)
    listeners = []
    for index, port in enumerate(ports):
        if isinstance(port, bool) or not isinstance(port, int) and not (isinstance(port, str) and port.isdigit()):
            raise ConfigError("%s.extra_ports[%d]: %r is not a port number" % (where, index, port))
        port = int(port)
        if not 1 <= port <= 65535:
            raise ConfigError("%s.extra_ports[%d]: %d is not a port number (1-65535)" % (where, index, port))
        if port in taken:
            continue  # declared already: judged by its declaration
        taken.add(port)
        listeners.append(Listener({"port": port, "role": "mx", "tls": "none", "relay": "refused", "extra": True}, "%s.extra_ports[%d]" % (where, index)))
    return listeners


def literal(address):
    return "[IPv6:%s]" % address if ":" in address else "[%s]" % address


# -- per listener context --------------------------------------------------------------------
class ListenerState:
    def __init__(self, reuse=True):
        self.unreachable = None
        self.session_errors = {}  # kind -> SessionError that will not change on a retry
        self.tls_slot = TLSSessionSlot() if reuse else None  # later handshakes here resume the session
        self.pipeline_rcpt = reuse  # MAIL+RCPT in one write, until this listener refuses a MAIL
        self.clean_sender_refused = None  # the Reply when an unauthenticated clean MAIL was refused
        # form sender -> the Reply that refused it at MAIL (unauthenticated, for good) where the case
        # went on with the clean sender: later forms with that sender go to the clean one at once
        # (Exim: 501 to probe@[IP], an error that cost every trick form a connection of its own)
        self.refused_senders = {} if reuse else None
        self.refused = False  # the reachability check found no one listening (not just no greeting)
        self.spare = None  # the greeted connection of the reachability check, for the first session
        self.tls_first = None  # (tls_info, greeting, transcript) when T00 greeted inside implicit TLS
        self.greeting_name = None  # the host name the greeting starts with (more trick forms)
        self.ehlo_name = None  # ... and the one the first EHLO reply starts with
        self.greeting_failures = 0  # cases that gave up at CONNECT/BANNER after their retries
        # T21's grouped offers on this listener (tlsprobe._group_result); None in the reference
        # mode (reuse: false), where every T21 case offers one thing on its own connection
        self.tls_offers = {} if reuse else None


class ProbeContext:
    """What a case sees: the target, listener, options, and ways to open sessions."""

    def __init__(self, runner, target, address, listener, policy, source):
        self.runner = runner
        self.target = target
        self.address = address
        self.listener = listener
        self.policy = policy
        self.source = source
        self.opts = runner.opts
        self.canary = runner.canary
        self.state = ListenerState(self.opts.reuse)
        self.clients = []
        self.priority = 0  # connection priority on this address (HostPlan): 0 relay decision first
        self.literal = literal(address)
        self.host_name = target.hostname
        self.foreign = FOREIGN_DOMAIN
        self.canary_domain = self.opts.canary_domain
        self.can_data = bool(self.canary_domain and self.canary is not None and self.canary.usable())
        self.rcpt_domain = self.canary_domain or FOREIGN_DOMAIN
        # the domain relay forms send to: the canary where it can confirm a delivery
        self.confirm_domain = self.canary_domain if self.can_data else FOREIGN_DOMAIN
        self.clean_sender = "probe@%s" % (self.canary_domain or FOREIGN_DOMAIN)
        home = target.local_domains[0] if target.local_domains else target.hostname
        if target.auth is not None:
            user = target.auth.username
            self.account_address = user if "@" in user else "%s@%s" % (user, home)
        else:
            self.account_address = "probe@%s" % home
        secure = listener.role == "submission" or listener.tls in ("required", "implicit")
        self.relay_kind = "secure" if secure else "plain"

    def fork(self):
        twin = copy.copy(self)
        twin.clients = []
        return twin

    # tokens
    @staticmethod
    def nonce():
        return secrets.token_hex(5)

    def token(self, probe, case):
        digits = re.sub(r"[^0-9]", "", probe)[:2]
        suffix = re.sub(r"[^a-z0-9]", "", (re.sub(r"^T[0-9]+", "", probe) + (case or "")).lower())[:8]
        return "t%s%s-%s" % (digits, suffix, self.nonce())

    @staticmethod
    def localpart(address):
        match = PROBE_LOCALPART.search(address)
        return match.group(0) if match else address

    @staticmethod
    def received_client(text):
        return received_client(text)

    def wrong_password(self):
        """The wrong password of this run for this address (one for all its listeners)."""
        return self.runner.auth_gate(self.address).wrong_password

    async def before_wrong_auth(self, wait=True):
        """The wrong password is ready to go (``wait``: until every listener's on this address is,
        bounded), or will not be sent by this listener's case (``wait=False``)."""
        gate = self.runner.auth_gate(self.address)
        if wait:
            await gate.together(id(self.listener), self.opts.timeout)
        else:
            gate.arrive(id(self.listener))

    def canary_check(self, token, unless=None):
        """A look at the spool at the end of the run (no wait of its own)."""
        if not self.can_data:
            return None

        def check():
            if self.canary.find(token, unless) is not None:
                return FAIL, "the smuggled message (%s) reached the canary" % token, None
            return None

        return check

    # connections
    async def connect(self, implicit_tls=False, preface=None, allow_local_mailbox=False, tls_context=None):
        if self.state.unreachable and (preface is None or self.state.refused):
            # (a PROXY-protocol listener greets only after its header: T19/proxy still knocks)
            raise Unreachable(self.state.unreachable, "CONNECT")
        plan = self.runner.plan(self.address)
        await plan.acquire(self.priority)
        if plan.spent():
            plan.release()
            raise ConnectionLimit(plan.why(), plan.refusal)
        plan.opened += 1
        client = SMTPClient(
            self.address,
            self.listener.port,
            guard=self.policy.guard(allow_local_mailbox),
            ehlo_name=self.opts.ehlo_name,
            timeout=self.opts.timeout,
            source_address=self.source,
            server_hostname=self.target.hostname,
            tls_context=tls_context or self.runner.tls_context,
            tls_slot=self.state.tls_slot if tls_context is None else None,
            keep_transcript=self.opts.transcripts != "none",
            pipeline_rset=self.opts.reuse,
            connect_timeout=self.opts.connect_timeout,
            greeting_timeout=self.opts.greeting_timeout,
        )
        client.on_close = lambda: self.runner.connection_closed(plan)
        client.preamble_len = 0
        self.clients.append(client)
        try:
            await client.connect(implicit_tls=implicit_tls, preface=preface)
        except BaseException:
            await client.close()
            raise
        banner = client.banner
        text = (banner.text or "") if banner is not None else ""
        if banner is None or banner.code != 421 or not LIMIT_GREETING.search(text):
            return client
        if not RATE_GREETING.search(text):
            plan.shrink()
            client.log("*** the host has too many connections open at once: one fewer to %s from now on" % self.address)
            await client.close()
            raise HostBusy("the host has too many connections open (%d %s): retried with fewer at once" % (banner.code, banner.text))
        plan.refusal = banner
        client.log("*** the host refuses further connections from this client: no more are opened to %s" % self.address)
        await client.close()
        raise ConnectionLimit(plan.why(), banner)

    async def session(self, kind, allow_local_mailbox=False):
        known = self.state.session_errors.get(kind)
        if known is not None:
            raise known
        try:
            return await self._session(kind, allow_local_mailbox)
        except SessionError as exc:
            if not exc.transient:
                self.state.session_errors[kind] = exc
            raise

    async def _session(self, kind, allow_local_mailbox):
        implicit = self.listener.tls == "implicit"
        if kind == "plain" and implicit:
            raise SessionError("plain", "no plaintext session on an implicit-TLS listener")
        client = None
        if self.state.spare is not None and not allow_local_mailbox:
            client, self.state.spare = self.state.spare, None  # greeted by the reachability check
            self.clients.append(client)
        if client is None or not client.usable:
            try:
                client = await self.connect(implicit_tls=implicit, allow_local_mailbox=allow_local_mailbox)
            except TLSFailed as exc:
                # The listener completed a handshake for T00 already: a failure now is most often a
                # server at its connection limit answering "421" in plaintext (Exim's smtp_accept_max),
                # so it is retried like any 4xx before the case is given up.
                raise SessionError("tls", str(exc), transient=True)
        if client.banner.code // 100 != 2:
            reply = await refused_greeting_session(client)
        else:
            try:
                reply = await client.ehlo()
            except ProtocolError as exc:
                client = await self._helo_fallback(client, implicit, allow_local_mailbox, exc)
                reply = client.ehlo_reply
        if self.state.ehlo_name is None and reply.code // 100 == 2:
            self.state.ehlo_name = greeting_name(reply) or ""
        if reply.code // 100 != 2:
            raise SessionError("ehlo", "EHLO/HELO refused: %d %s" % (reply.code, reply.text), reply, transient=reply.code // 100 == 4)
        if kind == "secure" and self.listener.tls in ("starttls", "required"):
            if "STARTTLS" not in client.extensions:
                raise SessionError("no-starttls", "STARTTLS not offered (listener tls=%s)" % self.listener.tls, client.ehlo_reply)
            try:
                reply = await client.starttls()
            except TLSFailed as exc:
                raise SessionError("tls", str(exc))
            if reply.code != 220:
                raise SessionError("starttls", "STARTTLS refused: %d %s" % (reply.code, reply.text), reply, transient=reply.code // 100 == 4)
            await client.ehlo()
        client.preamble_len = len(client.transcript)
        return client

    async def _helo_fallback(self, client, implicit, allow_local_mailbox, exc):
        """The EHLO reply was beyond every bound (over MAX_REPLY_BYTES, a malformed line): a fresh
        connection and HELO, so the relay probes still run (no extensions: no STARTTLS, no AUTH)."""
        await client.close()
        fresh = await self.connect(implicit_tls=implicit, allow_local_mailbox=allow_local_mailbox)
        fresh.log("*** EHLO reply unusable on the last connection (%s): HELO instead" % exc)
        if fresh.banner.code // 100 != 2:
            await refused_greeting_session(fresh)
            return fresh
        await fresh.helo()
        return fresh


async def refused_greeting_session(client):
    """The server greeted with 4xx/5xx: go on with EHLO (HELO) anyway; the EHLO reply, or a
    SessionError("greeting") when the server holds to its refusal.

    RFC 5321 3.1: a server that greets 554 MUST wait for the client's QUIT and SHOULD answer 503
    to every command before it; a client is expected to QUIT. A verifier must judge what a server accepts, not what it says first: a
    server that greets 554 and then relays is an open relay (issue 12), so it is probed."""
    banner = client.banner
    text = "greeting %d %s" % (banner.code, banner.text)
    if banner.code != 421:  # 421: the server closes the channel (RFC 5321 3.8)
        try:
            reply = await client.ehlo()
        except ProtocolError:
            raise  # a broken reply is no refusal: the case is INCONCLUSIVE
        except SMTPError as exc:
            client.usable = False
            reply = None
            text += "; then %s" % exc
        if reply is not None and reply.code // 100 == 2:
            client.log("*** refused at the greeting (%d), but EHLO/HELO accepted: probing on" % banner.code)
            return reply
        if reply is not None:
            text += "; EHLO/HELO then refused: %d %s" % (reply.code, reply.text)
    await client.close()
    raise SessionError("greeting", text, banner, transient=banner.code // 100 == 4)


# -- the runner ------------------------------------------------------------------------------
class AuthGate:
    """Failed AUTHs on purpose (T08) against one address, and Dovecot's auth penalty.

    Dovecot (Postfix's usual SASL backend) answers a failed AUTH after 2 s and, for a while after
    it, starts every AUTH from that client address late: 4 s after one failure, 8 s after two, up
    to 15 s; a new wrong password raises the count, the same one again does not (checksum). It looks
    the penalty up when a SASL exchange starts, and records a failure as soon as the password check
    fails (the 2 s delay is only for the reply). So the wrong-password cases start once every case
    with real credentials on the address has finished, all use one wrong password, and each first
    sends a bare ``AUTH PLAIN``: the server's 334 shows that its penalty lookup is done. The wrong
    passwords go out only once every wrong-password case of the address has its 334 (or will send
    none; bounded wait), so no lookup can see another case's failure. Sending whole AUTH lines at
    the same moment was not enough: two server processes pass them on to Dovecot a little apart, and
    the later one was often looked up after the earlier one failed (lab: one listener's T08 1.5 s,
    the other's 5.5 s)."""

    def __init__(self):
        self.pending = 0
        self.idle_event = asyncio.Event()
        self.idle_event.set()
        self.wrong = 0
        self.arrived = set()  # listeners whose wrong-password case is ready (or sends none)
        self.together_event = asyncio.Event()
        self.wrong_password = "wrong-" + secrets.token_hex(6)

    def expect(self, real, wrong):
        self.pending += real
        self.wrong += wrong
        if self.pending:
            self.idle_event.clear()

    def done(self):
        self.pending -= 1
        if self.pending <= 0:
            self.idle_event.set()

    async def idle(self):
        await self.idle_event.wait()

    def arrive(self, key):
        """The wrong-password case of listener ``key`` is ready to send (or will not send at all);
        a second arrival of the same case (a retry, the end of the case) counts once."""
        self.arrived.add(key)
        if len(self.arrived) >= self.wrong:
            self.together_event.set()

    async def together(self, key, timeout):
        """Wait (bounded) until every wrong-password case of the address is ready to send."""
        self.arrive(key)
        try:
            await asyncio.wait_for(self.together_event.wait(), timeout)
        except asyncio.TimeoutError:
            pass


class SlotPool:
    """The run's connection slots (``concurrency``), and the one place where a connection slot is
    handed out: to the best waiting request of an address (HostPlan) that has a slot of its own free.

    A request holds no slot of the run while its address is full. (It used to take one first and then
    wait for its address: the own cases of a few busy addresses held every slot of the run, 25 of 64
    connections were open on average over the zoo, and addresses with work and free slots of their own
    sat idle for up to 12 s.) Across addresses: the shared sessions (the relay decision, and the relay
    forms whose acceptance starts a canary wait) first, then the address with the most requests
    to do per slot of its own (its own cases not finished: what would finish last), then first come,
    first served."""

    _order = itertools.count()

    def __init__(self, size):
        self.free = size
        self.heap = []  # (key, order, plan) of addresses that may have a request to serve
        self.dispatching = False

    def offer(self, plan):
        """``plan`` may have a request to serve: it joins the heap, again where its key is now better
        than where it stands (a shared session's request behind the address's own cases)."""
        if not plan.waiters:
            return
        key = plan.key()
        if plan.queued_key is not None and key >= plan.queued_key:
            return
        plan.queued_key = key
        heapq.heappush(self.heap, (key, next(self._order), plan))

    def schedule(self):
        """Hand out slots once every request of this loop turn is queued: priority, not arrival."""
        if not self.dispatching:
            self.dispatching = True
            asyncio.get_running_loop().call_soon(self.dispatch)

    def dispatch(self):
        self.dispatching = False
        while self.free > 0 and self.heap:
            key, unused_order, plan = heapq.heappop(self.heap)
            plan.queued_key = None  # (its entries left may stand worse: the next offer queues it anew)
            if not plan.grantable():
                continue  # offered again when it frees a slot, gets a request or its hold ends
            fresh = plan.key()
            if fresh > key and self.heap and fresh > self.heap[0][0]:
                self.offer(plan)  # it has less to do than when it queued: the others first
                continue
            plan.grant()
            self.free -= 1
            self.offer(plan)


class HostPlan:
    """The connections to one address: at most ``per_host`` open at once, handed out by priority
    (0: T00 and the shared sessions the relay decision rests on; then own cases, what weighs
    most first), at most ``max_connections_per_host`` in all, and none after the host refused
    one with its per-client limit (Debian's Sendmail: 10 per client and 10 minutes). The run's
    slots come from the SlotPool, only together with one of the address's own."""

    _order = itertools.count()

    def __init__(self, concurrent, cap, pool):
        self.free = concurrent
        self.capacity = concurrent  # connections at once; shrinks when the host says it has too many
        self.cap = cap
        self.pool = pool
        self.waiters = []  # heap of (priority, order, future)
        self.queued_key = None  # the key it last joined the pool's heap with, while none was taken out since
        self.backlog = 0  # own cases of its listeners not finished yet (SlotPool's order)
        self.opened = 0
        self.refusal = None  # the host's 421 reply refusing a further connection
        self.relay_open = asyncio.Event()  # every listener's relay sessions are set up (or given up)
        self.listeners = 0
        # slots kept free for the shared sessions' fresh connections (one each): a session is let
        # go only once its successor is open, so a host that refuses the next one does not cost it
        self.reserve = 0
        self.hold_timer = None  # see RESERVE_HOLD
        self.hold_expired = False

    def shrink(self):
        """One connection fewer at once from now on (at least one): the slot in hand is not given back."""
        if self.capacity > 1:
            self.capacity -= 1
            self.free -= 1

    def spent(self):
        return self.refusal is not None or (self.cap and self.opened >= self.cap)

    def why(self):
        if self.refusal is not None:
            return "not probed: the host refuses further connections from this client (%d %s); the connections it allowed went to the relay decision first" % (
                self.refusal.code,
                self.refusal.text,
            )
        return "not probed: max_connections_per_host (%d) is spent; the relay decision got its connections first" % self.cap

    def key(self):
        """The pool's order of addresses (see SlotPool); only called with a live request waiting."""
        priority, order, unused_future = self.waiters[0]
        if priority < 1:
            return (0, priority, order)
        return (1, -max(self.backlog, len(self.waiters)) / float(max(1, self.capacity)), order)

    def grantable(self):
        """A slot of this address is free for its best live request (dropping the cancelled ones)."""
        waiters = self.waiters
        while waiters and waiters[0][2].done():
            heapq.heappop(waiters)
        if self.free <= 0 or not waiters:
            return False
        if waiters[0][0] >= 1 and self.free <= self.reserve and not self.hold_expired:
            # the rest waits: these slots are the shared sessions' to renew, but only for a
            # while (a shared session may itself wait on an own case, e.g. the TLS session
            # the first handshake of the address is to leave for resumption)
            if self.hold_timer is None:
                self.hold_timer = asyncio.get_running_loop().call_later(RESERVE_HOLD, self._hold_over)
            return False
        if self.free > self.reserve:
            self.hold_expired = False  # nothing held now: a later hold starts afresh
        return True

    def grant(self):
        unused_priority, unused_order, future = heapq.heappop(self.waiters)
        self.free -= 1
        if self.free <= 0:
            self.hold_expired = False  # every slot is out: the next hold starts afresh
        future.set_result(None)

    async def acquire(self, priority):
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiters, (priority, next(self._order), future))
        self.pool.offer(self)
        self.pool.schedule()
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()
            else:
                future.cancel()  # (dropped from the heap when it comes to the top)
            raise

    def _hold_over(self):
        self.hold_timer = None
        self.hold_expired = True
        self.pool.offer(self)
        self.pool.schedule()

    def release(self):
        self.free += 1
        self.pool.free += 1
        self.release_check()

    def release_check(self):
        if self.waiters:
            self.pool.offer(self)
        if self.pool.heap:
            self.pool.schedule()

    def listener_ready(self):
        """One listener's relay sessions are set up (or it has none, or it is unreachable)."""
        self.listeners -= 1
        if self.listeners <= 0:
            self.relay_open.set()


# Own cases by weight when connections are scarce: what a finding rests on first.
OWN_RANK = {"T09": 1, "T08": 2, "T17": 3, "T21": 4, "T18": 5, "T19": 6, "T07": 7, "T10": 8}


# Seconds the slots kept for the shared sessions' renewals hold other cases back while nobody takes
# them (a held-back case may be what a shared session waits for: without a bound, a run with few
# connections per host could stop for good).
RESERVE_HOLD = 1.0

EXTRA_WORKER_RANK = 0.5  # a shared queue's second and later workers: after the first ones, before own cases
# Sessions at once for one shared queue: a small run's start, and what a listener that takes the relay
# forms (DATA, canary waits) widens to (Runner._widen).
SHARED_WORKERS = 4


def own_priority(case):
    rank = OWN_RANK.get(case.probe, 9)
    if case.probe == "T17" and case.case != "lf.lf":
        rank = 6.5  # bare LF (the common one) first, the other endings after the weak TLS checks
    if case.probe == "T21" and case.expected != "refused":
        rank = 8.5  # at or above the minimum: accepted or refused, both PASS
    return rank


class Runner:
    def __init__(self, targets, opts):
        self.targets = targets
        self.opts = opts
        self.results = []
        self._passed = PassAggregates() if opts.results_shape == "compact" else None
        self._pending = []
        self._late = []
        self.canary = CanaryWatcher(opts.canary_spool) if opts.canary_spool else None
        self.tls_context = make_tls_context(opts.tls_verify)
        self._pool = SlotPool(opts.concurrency)
        self._per_host = {}
        # per_host is per host: the addresses of one target (IPv4 and IPv6 of a dual-stack MX) share
        # it, since the server counts them together (Exim's smtp_accept_max, 20 on Debian, refused
        # the 21st connection of a dual-stack run with 421 and left smuggling cases unprobed)
        self._address_share = {}
        for target in targets:
            for address in target.addresses:
                share = max(2, self.opts.per_host // max(1, len(target.addresses)))
                self._address_share[address] = min(share, self._address_share.get(address, share))
        self._listener_jobs = 0
        self._closed = 0  # connections closed so far (see COLLECT_EVERY)
        self._collect_after = 0.0
        self._admit = None  # listeners in progress at once (see _admitted)
        self._auth_gates = {}  # address -> AuthGate (wrong passwords wait for the real ones)
        self.secrets = []
        # what the run names in public anyway: a password piece inside one of these words is no secret
        self.public = [opts.ehlo_name, opts.canary_domain, FOREIGN_DOMAIN]
        for target in targets:
            if target.auth is not None:
                self.secrets.extend(target.auth.secret_forms())
            self.public += [target.name, target.hostname, target.test_mailbox] + target.addresses + target.local_domains + target.relay_domains
            self.public += [item["address"] for item in target.refused_recipients]

    def plan(self, address):
        plan = self._per_host.get(address)
        if plan is None:
            share = self._address_share.get(address, self.opts.per_host)
            plan = self._per_host[address] = HostPlan(share, self.opts.max_connections, self._pool)
        return plan

    def connection_closed(self, plan):
        plan.release()
        self._closed += 1
        if self._closed % COLLECT_EVERY == 0 and time.monotonic() >= self._collect_after:
            started = time.monotonic()
            gc.collect()
            self._collect_after = time.monotonic() + COLLECT_SHARE * (time.monotonic() - started)

    def _source_for(self, address):
        if not self.opts.sources:
            return None
        family = ipaddress.ip_address(address).version if _is_ip(address) else 4
        for source in self.opts.sources:
            if ipaddress.ip_address(source).version == family:
                return source
        return False

    async def run(self):
        started = time.monotonic()
        self._listener_jobs = sum(len(target.addresses) * len(target.listeners) for target in self.targets)
        jobs = []
        for target in self.targets:
            policy = SafetyPolicy(self.opts.canary_domain, target.test_mailbox, target.own_names(), [target.auth])
            for address in target.addresses:
                source = self._source_for(address)
                for listener in target.listeners:
                    ctx = ProbeContext(self, target, address, listener, policy, source or None)
                    self.plan(address).listeners += 1
                    if source is not False:
                        credentials = [case.credentials for case in build_cases(ctx) + build_tls_cases(ctx)]
                        self.auth_gate(address).expect(credentials.count("real"), credentials.count("wrong"))
                    jobs.append(self._admitted(ctx, skip_reason=None if source is not False else "no source address of this address family"))
        gc.collect()
        gc.freeze()  # the plan (cases, contexts) lives to the end: no collection needs to scan it
        try:
            await asyncio.gather(*jobs)
        finally:
            gc.unfreeze()
        for result, task in self._pending:
            found = await task
            verdict, text, seen = found[:3]
            result.update(verdict=verdict, reason=text)
            result["client_seen"] = seen or result["client_seen"]
            if len(found) > 3:
                result["_tag"] = found[3]
        for result, check in self._late:
            found = check()
            if found:
                result.update(verdict=found[0], reason=found[1])
        self._derive()
        self.results.extend(unverified_results(self.results, self.opts))
        self._classify()
        if self.opts.transcripts == "failures":
            for result in self.results:
                if result["verdict"] == PASS:
                    result["transcript"] = []
        self._scrub()
        if self._passed is not None:
            # the PASS results kept whole so far join their listener's aggregate
            kept = [result for result in self.results if result["verdict"] != PASS]
            for result in self.results:
                if result["verdict"] == PASS:
                    self._passed.add(result)
            # SKIPs fold only now: T20 and the unverified check above read them one by one
            self.results = fold_skips(sorted(kept, key=result_order)) + self._passed.finish()
        counts = verdict_counts(self.results)
        summary = {"targets": len(self.targets), "results": sum(counts.values())}
        summary.update((verdict, counts.get(verdict, 0)) for verdict in VERDICTS)
        summary["seconds"] = round(time.monotonic() - started, 3)
        if self.opts.vantage:
            summary["vantage"] = self.opts.vantage
        self.results.sort(key=result_order)
        return {"results": self.results, "summary": summary}

    async def _admitted(self, ctx, skip_reason):
        """One listener, once admitted: its cases (~150, with their forms and closures) are built only
        now, so a fleet run holds those of the listeners in progress, not of every listener (0.6 MiB
        per endpoint otherwise). Admission is first come, first served in plan order, so the
        listeners of one address (whose wrong passwords wait for the real ones) follow each other."""
        if self._admit is None:
            self._admit = asyncio.Semaphore(max(ADMIT_MIN, ADMIT_PER_CONNECTION * self.opts.concurrency))
        async with self._admit:
            await self._run_listener(ctx, build_cases(ctx) + build_tls_cases(ctx), skip_reason)

    async def _run_listener(self, ctx, cases, skip_reason=None):
        ready = _Once(self.plan(ctx.address).listener_ready)
        try:
            await self._run_listener_cases(ctx, cases, skip_reason, ready)
        finally:
            ready()

    async def _run_listener_cases(self, ctx, cases, skip_reason, ready):
        if not cases:
            return
        reach = Case(REACHABLE, None, "listener reachable: port %d greets" % ctx.listener.port, "greeting", "own", None)
        if skip_reason:
            for case in [reach] + cases:
                self._record(ctx, case, Outcome(SKIP, skip_reason), [], 0.0, None)
            return
        try:
            # the greeted connection is kept only for a shared session that will take it at once:
            # held for nobody, it would block a connection slot (per_host) to the end of the listener
            await self._check_reachable(ctx, reach, keep=any(case.kind != "own" for case in cases))
            if ctx.listener.when_open and ctx.state.refused:
                for case in cases:
                    self._record(ctx, case, Outcome(SKIP, "%s is closed" % ctx.listener.named()), [], 0.0, None)
                return
            cases = cases + greeting_cases(ctx, ctx.state.greeting_name)
            if ctx.state.unreachable:
                ready()
            await self._run_cases(ctx, cases, ready)
            # RFC 5321 4.1.1.1: the EHLO reply names the server too; where that name is yet another
            # one (rare: it is the greeting's on Postfix and Exim), its forms run afterwards
            if ctx.state.ehlo_name and ctx.state.ehlo_name != ctx.state.greeting_name:
                more = greeting_cases(ctx, ctx.state.ehlo_name)
                if more:
                    await self._run_cases(ctx, more)
        finally:
            if ctx.state.spare is not None:
                await ctx.state.spare.quit()
            # a finished listener keeps no connection (each holds TLS buffers of ~256 KiB): what
            # still refers to its context to the end of the run (results, canary checks) does not
            # hold them too
            ctx.state.spare = None
            ctx.clients = []

    async def _check_reachable(self, ctx, reach, keep):
        """T00: the listener the caller says exists accepts a connection and greets (bounded retries).

        A refused/unanswered connection or no greeting is one FAIL for the listener: every case
        there would only be INCONCLUSIVE, and a dead port 25 or 587 must not pass verification.
        The greeted connection is kept for the first session (no extra connection, no extra wait)."""
        started = time.monotonic()
        attempt = 0
        implicit = ctx.listener.tls == "implicit"
        while True:
            run = ctx.fork()
            client = None
            try:
                client = await run.connect(implicit_tls=implicit)
                banner = client.banner
                if banner.code // 100 == 4:
                    outcome = Outcome(INCONCLUSIVE, "greeting %s" % describe(banner), banner, "BANNER", transient=True)
                else:
                    outcome = Outcome(
                        PASS, "greeting %s%s" % (describe(banner), (" (the cases judge the refusal)" if banner.code // 100 != 2 else "")), banner, "BANNER"
                    )
            except TLSFailed as exc:
                outcome = Outcome(INCONCLUSIVE, "connected, but the TLS handshake failed: %s" % exc, stage="TLS")
            except ProtocolError as exc:
                outcome = Outcome(INCONCLUSIVE, "connected, but no valid greeting: %s" % exc, stage="BANNER")
            except ConnectionLimit as exc:
                # a temporary refusal of this client (its connections are counted), not a verdict
                outcome = Outcome(INCONCLUSIVE, "listener reachable, but %s" % str(exc).replace("not probed: ", ""), exc.reply, "BANNER")
            except ConnectFailed as exc:
                outcome = Outcome(FAIL, "expected listener unreachable: %s" % exc, stage="CONNECT", transient=True)
            except SMTPError as exc:  # timeout or close before the greeting
                outcome = Outcome(FAIL, "expected listener never greets: %s" % exc, stage="BANNER", transient=True)
            if outcome.transient and attempt < self.opts.retries:
                if client is not None:
                    await client.close()
                attempt += 1
                await asyncio.sleep(self.opts.retry_delay * attempt)
                continue
            break
        if outcome.transient:
            outcome.text += " (after %d attempt%s)" % (attempt + 1, "s" if attempt else "")
        if client is not None and client.banner is not None:
            ctx.state.greeting_name = greeting_name(client.banner)
        if ctx.listener.when_open and outcome.verdict == FAIL and outcome.stage == "CONNECT":
            # probed only when it takes a connection: closed is not a finding
            ctx.state.unreachable = "not probed: %s" % outcome.text
            ctx.state.refused = True
            outcome = Outcome(SKIP, "%s is closed: %s" % (ctx.listener.named(), outcome.text), stage="CONNECT")
        elif ctx.listener.when_open and outcome.verdict == FAIL:
            # open, but no SMTP greeting: not shown to be an SMTP listener (no finding of its own)
            outcome = Outcome(INCONCLUSIVE, "%s takes connections but gives no SMTP greeting: %s" % (ctx.listener.named(), outcome.text), stage=outcome.stage)
        if outcome.verdict == FAIL:
            # the cases need not knock again: they are INCONCLUSIVE with this reason
            ctx.state.unreachable = "not probed: %s" % outcome.text
            ctx.state.refused = outcome.stage == "CONNECT"
        else:
            if client is not None and client.tls_active and client.banner is not None and self.opts.reuse:
                ctx.state.tls_first = (client.tls_info, client.banner, list(client.transcript))
            if client is not None and client.usable and client.banner.code // 100 == 2 and self.opts.reuse and keep:
                ctx.state.spare = client
            elif client is not None:
                await client.close()
        transcript = [line for each in run.clients for line in each.transcript] if self._keeps_transcript(outcome) else []
        self._record(ctx, reach, outcome, transcript, time.monotonic() - started, client)

    async def _run_cases(self, ctx, cases, ready=None):
        shared = {"plain": collections.deque(), "secure": collections.deque()}
        own = []
        # the checks the relay decision rests on first: they run on each queue's first session,
        # before a host that counts connections can refuse a fresh one
        for case in sorted(cases, key=lambda case: (case.probe, case.case) not in REQUIRED):
            if case.kind == "own":
                own.append(case)
            else:
                shared[case.kind].append(case)
        # A few connections in parallel per listener when the run is small (latency); one when many
        # listeners already fill `concurrency`: a lone worker uses each connection's error budget
        # up, where parallel ones each open a fresh connection for the last few cases.
        parallel = max(1, min(SHARED_WORKERS, self.opts.concurrency // max(1, self._listener_jobs)))
        workers, crews = [], []
        for queue in shared.values():
            crew = {"alive": min(parallel, (len(queue) + 5) // 6), "queue": queue, "ctx": ctx, "added": []}
            crews.append(crew)
            for index in range(crew["alive"]):
                fork = ctx.fork()
                # a queue's second and later workers are for speed only: they queue behind the first
                # ones, and leave when a host that counts connections refuses them one
                fork.priority = 0 if index == 0 else EXTRA_WORKER_RANK
                workers.append((fork, queue, crew))
        # The shared sessions (the relay decision) ask for their connections first: one loop turn
        # queues their requests, and only then does the listener count as ready for the own
        # cases of the address (HostPlan hands connections out by priority).
        plan = self.plan(ctx.address)
        jobs = [
            asyncio.ensure_future(self._reserved(plan, self._worker(fork, queue, crew)) if fork.priority == 0 else self._worker(fork, queue, crew))
            for fork, queue, crew in workers
        ]
        await asyncio.sleep(0)
        if ready is not None:
            ready()
        plan.backlog += len(own)
        jobs += [self._run_own(ctx, case, plan) for case in sorted(own, key=own_priority)]
        await asyncio.gather(*jobs)
        while any(crew["added"] for crew in crews):  # workers _widen added while the queues ran
            added = [task for crew in crews for task in crew["added"]]
            for crew in crews:
                crew["added"] = []
            await asyncio.gather(*added)

    def _widen(self, crew):
        """The listener takes the queue's relay forms and the messages follow to the canary (DATA, then
        a bounded wait for arrival, which for a message that never arrives is the whole canary wait):
        more sessions at once, up to SHARED_WORKERS, so that the rest of the queue is sent early and
        the waits run beside the rest of the run instead of after it (the zoo's accept-then-drop
        server: 39 forms one after another on one connection, the last wait ending 10 s after them)."""
        queue = crew["queue"]
        while crew["alive"] < SHARED_WORKERS and len(queue) > crew["alive"]:
            fork = crew["ctx"].fork()
            fork.priority = EXTRA_WORKER_RANK
            crew["alive"] += 1
            crew["added"].append(asyncio.ensure_future(self._worker(fork, queue, crew)))

    async def _relay_open(self, plan):
        """Wait (bounded) until the relay decision's sessions on every listener of the address have
        asked for connections (a host that counts connections per client lets only so many
        through; ``concurrency`` then hands out slots first come)."""
        if plan.relay_open.is_set():
            return
        try:
            await asyncio.wait_for(plan.relay_open.wait(), self.opts.greeting_timeout)
        except asyncio.TimeoutError:
            pass

    async def _reserved(self, plan, job):
        plan.reserve += 1
        try:
            await job
        finally:
            plan.reserve -= 1
            plan.release_check()

    def _needs_new_connection(self, client, case):
        # (a case that ends the session sends nothing after it that a syntax error could cut off)
        return (
            not client.usable or client.errors + case.cost > self.opts.error_budget or (client.syntax_errors >= 2 and case.cost > 0 and not case.ends_session)
        )

    def _next_case(self, client, queue, extra=False):
        """First fit: the first queued case the open connection can still afford (a cheaper one
        fills the budget left), else the head."""
        if client is not None and client.usable:
            # Two syntax errors end a connection (Exim drops it after three): one early, then cases
            # without that risk, so the connection's error budget is used up first.
            wanted = client.syntax_errors == 0
            first = None
            for index, case in enumerate(queue):
                if (case.probe, case.case) in REQUIRED and not self._needs_new_connection(client, case):
                    first = index  # what the relay decision rests on, before the session may be lost
                    break
                if (case.probe, case.case) in REQUIRED:
                    continue
                if (case.ends_session and len(queue) > 1) or self._needs_new_connection(client, case):
                    continue
                if case.syntax_risk == wanted:
                    first = index
                    break
                if first is None:
                    first = index
            if first is not None:
                case = queue[first]
                del queue[first]
                return case
        if extra and client is None:
            # a queue's later workers leave the relay decision's checks to its first one, whose
            # session is the one a host that counts connections surely allowed
            for index, case in enumerate(queue):
                if (case.probe, case.case) not in REQUIRED:
                    del queue[index]
                    return case
            return None
        if queue[0].ends_session and len(queue) > 1:
            queue.rotate(-1)  # a case that ends its session goes last
        return queue.popleft()

    async def _worker(self, ctx, queue, crew=None):
        client = None
        try:
            while queue:
                case = self._next_case(client, queue, extra=ctx.priority > 0)
                if case is None:
                    break
                started = time.monotonic()
                attempt = 0
                while True:
                    mark, transcript, failed_client = 0, None, None
                    try:
                        if client is not None and self._needs_new_connection(client, case):
                            client = await self._fresh_session(ctx, client, case)
                        if client is None:
                            ctx.clients = []
                            try:
                                client = await ctx.session(case.kind)
                            except ConnectionLimit:
                                if crew is not None and crew["alive"] > 1:
                                    # another worker of this queue has a session: the case waits for it
                                    crew["alive"] -= 1
                                    crew = None
                                    queue.appendleft(case)
                                    return
                                raise
                        elif client.dirty:
                            await client.rset()
                        mark = len(client.transcript)
                        outcome = await case.run(ctx, client)
                    except Exception as exc:  # noqa: BLE001 - every failure becomes a verdict
                        outcome = self._failure(ctx, case, exc)
                        if client is not None:
                            client.usable = False
                        else:
                            # the session could not be set up: keep its transcript, free its slot
                            failed_client = ctx.clients[-1] if ctx.clients else None
                            for leftover in ctx.clients:
                                await leftover.close()
                    source = client or failed_client
                    if source is not None and self._keeps_transcript(outcome):
                        transcript = source.transcript[: source.preamble_len] + source.transcript[mark:]
                    if outcome.transient and attempt < self.opts.retries:
                        attempt += 1
                        if client is not None and not client.usable:
                            await client.close()
                            client = None
                        await asyncio.sleep(self.opts.retry_delay * attempt)
                        continue
                    break
                if client is not None and not client.usable:
                    await client.close()
                    client = None
                elif client is not None and not self.opts.reuse:
                    await client.quit()
                    client = None
                self._finish_attempts(ctx, case, outcome, attempt)
                self._record(ctx, case, outcome, transcript or [], time.monotonic() - started, source)
                if crew is not None and callable(outcome.pending):
                    self._widen(crew)
        finally:
            if crew is not None:
                crew["alive"] -= 1  # (before any wait: a case put back later finds no worker gone quietly)
            if client is not None:
                await client.quit()
            for leftover in ctx.clients:
                await leftover.close()
            ctx.clients = []

    async def _fresh_session(self, ctx, client, case):
        """``client`` when it goes on for ``case`` past its error budget: the host allows no further
        connection (a slower reply beats no verdict); else None (a fresh session follows)."""
        if client.usable and self.plan(ctx.address).spent():
            client.log("*** no further connection allowed: this session goes on past its error budget")
            return client
        await client.quit()
        return None

    def auth_gate(self, address):
        return self._auth_gates.setdefault(address, AuthGate())

    async def _run_own(self, ctx, case, plan=None):
        if plan is not None:
            await self._relay_open(plan)
        gate = self.auth_gate(ctx.address)
        if case.credentials == "wrong":
            await gate.idle()
        try:
            await self._run_own_attempts(ctx, case)
        finally:
            if plan is not None:
                plan.backlog -= 1
            if case.credentials == "real":
                gate.done()
            elif case.credentials == "wrong":
                gate.arrive(id(ctx.listener))  # (if it never got to send: the others need not wait)

    async def _run_own_attempts(self, ctx, case):
        started = time.monotonic()
        attempt = 0
        while True:
            run = ctx.fork()
            run.priority = own_priority(case)
            try:
                outcome = await case.run(run, None)
            except Exception as exc:  # noqa: BLE001
                outcome = self._failure(run, case, exc)
            finally:
                for client in run.clients:
                    await client.quit()
            if outcome.transient and attempt < self.opts.retries:
                attempt += 1
                await asyncio.sleep(self.opts.retry_delay * attempt)
                continue
            break
        self._finish_attempts(ctx, case, outcome, attempt)
        if not self._keeps_transcript(outcome):
            transcript = []
        elif outcome.evidence is not None and not run.clients:
            transcript = outcome.evidence
        else:
            transcript = [line for client in run.clients for line in client.transcript]
        self._record(ctx, case, outcome, transcript, time.monotonic() - started, run.clients[-1] if run.clients else None)

    def _keeps_transcript(self, outcome):
        """transcripts=failures keeps those of results that are not a PASS, or may yet stop being
        one (a canary still to look at)."""
        mode = self.opts.transcripts
        if mode == "failures":
            return outcome.verdict != PASS or callable(outcome.pending) or callable(outcome.late)
        return mode == "all"

    def _finish_attempts(self, ctx, case, outcome, attempt):
        if outcome.transient:
            outcome.text += " (after %d attempt%s)" % (attempt + 1, "s" if attempt else "")
            if outcome.stage in ("CONNECT", "BANNER") and not ctx.state.unreachable:
                # one case that could not get a greeting (after its retries on fresh connections)
                # gives up alone; only a second one gives the listener's remaining cases up
                ctx.state.greeting_failures += 1
                if ctx.state.greeting_failures >= 2:
                    ctx.state.unreachable = outcome.text

    def _failure(self, ctx, case, exc):
        if isinstance(exc, SessionError):
            if exc.kind == "greeting" and not exc.transient:
                return Outcome(case.greeting_refused, "listener refuses this client at the greeting: %s" % exc, exc.reply, "BANNER", tag="greeting_refused")
            if exc.kind == "no-starttls":
                return Outcome(case.no_tls, str(exc), exc.reply, "EHLO", tag="no_starttls")
            return Outcome(INCONCLUSIVE, str(exc), exc.reply, exc.kind.upper(), transient=exc.transient)
        if isinstance(exc, UnsafeProbe):
            return Outcome(INCONCLUSIVE, "blocked by the safety guard: %s" % exc, stage="GUARD")
        if isinstance(exc, ConnectionLimit):
            return Outcome(INCONCLUSIVE, str(exc), exc.reply, "CONNECT")
        if isinstance(exc, Unreachable):
            return Outcome(INCONCLUSIVE, str(exc), stage="CONNECT")
        if isinstance(exc, SMTPError):
            return Outcome(INCONCLUSIVE, str(exc), stage=exc.stage, transient=exc.transient)
        raise exc

    def _record(self, ctx, case, outcome, transcript, duration, client):
        reply = outcome.reply.as_dict(outcome.stage) if outcome.reply is not None else {"code": None, "enhanced": None, "text": "", "stage": outcome.stage}
        result = {
            "target": ctx.target.name,
            "address": ctx.address,
            "port": ctx.listener.port,
            "probe": case.probe,
            "case": case.case,
            "title": case.title,
            "verdict": outcome.verdict,
            "expected": case.expected,
            "reason": outcome.text,
            "reply": reply,
            "transcript": transcript[:80],
            "client_seen": outcome.client_seen or (client.client_seen if client is not None else None),
            "duration": round(duration, 3),
            "vantage": self.opts.vantage,
            "source_address": ctx.source,
            "_tag": outcome.tag,
            "_role": "extra" if ctx.listener.extra else ctx.listener.role,
        }
        if self._passed is not None and self._final_pass(case, outcome):
            self._passed.add(result)
            return
        self.results.append(result)
        if callable(outcome.pending):
            self._pending.append((result, asyncio.ensure_future(outcome.pending())))
        if callable(getattr(outcome, "late", None)):
            self._late.append((result, outcome.late))

    @staticmethod
    def _final_pass(case, outcome):
        """A PASS nothing will change or read again: it can be folded into its aggregate now."""
        if outcome.verdict != PASS or callable(outcome.pending) or callable(getattr(outcome, "late", None)):
            return False
        return case.probe not in _READ_LATER and (case.probe, case.case) not in _READ_LATER

    def _derive(self):
        """T18 escalation and T20 per-vantage summaries."""
        groups = collections.defaultdict(list)
        for result in self.results:
            groups[(result["target"], result["address"], result["port"])].append(result)
        for (name, address, port), results in groups.items():
            if any(r["probe"] == "T17" and r["verdict"] == FAIL for r in results):
                for r in results:
                    if r["probe"] == "T18" and r["verdict"] == WARN:
                        r["verdict"] = FAIL
                        r["reason"] += "; FAIL because the smuggling probes (T17) also fail"
            smuggling = [r for r in results if r["probe"] == "T17"]
            if smuggling and all(r["verdict"] == PASS for r in smuggling):
                # RFC 2920 3.1 puts the wait for 354 on the client; a server that takes the pipelined
                # message is lenient, and harmless where every fake end of data was refused or kept
                # in the message (T17): not a weakness of its own
                for r in results:
                    if r["probe"] == "T18" and r["verdict"] == WARN:
                        r["verdict"] = PASS
                        r["reason"] += "; no weakness here: every smuggling ending (T17) was refused or kept"
            if "T20" not in self.opts.probes:
                continue
            parts = [r for r in results if (r["probe"], r["case"]) in (("T11", "P02"), ("T05", None), ("T06", "relay"))]
            if not parts:
                continue
            rank = {FAIL: 0, INCONCLUSIVE: 1, WARN: 2, PASS: 3, SKIP: 4}
            worst = min(parts, key=lambda r: rank[r["verdict"]])
            vantage = self.opts.vantage or "default"
            p02 = next((r for r in parts if r["probe"] == "T11"), worst)
            self.results.append(
                {
                    "target": name,
                    "address": address,
                    "port": port,
                    "probe": "T20",
                    "case": vantage,
                    "title": "vantage %s%s: relay decision" % (vantage, " (%s)" % p02["source_address"] if p02["source_address"] else ""),
                    "verdict": worst["verdict"],
                    "expected": p02["expected"],
                    "reason": "; ".join("%s%s %s" % (r["probe"], "/" + r["case"] if r["case"] else "", r["verdict"]) for r in parts),
                    "reply": p02["reply"],
                    "transcript": [],
                    "client_seen": p02["client_seen"],
                    "duration": 0.0,
                    "vantage": self.opts.vantage,
                    "source_address": p02["source_address"],
                    "_from": worst,
                    "_role": worst.get("_role"),
                }
            )

    def _classify(self):
        """``finding`` and ``severity`` on every non-PASS, non-SKIP result (findings.finding_for is
        the one mapping); the evidence tag and listener role used for it stay internal."""
        for result in sorted(self.results, key=lambda r: r["probe"] == "T20"):
            tag, role = result.pop("_tag", None), result.pop("_role", None)
            source = result.pop("_from", None)
            if source is not None and source.get("finding") and result["verdict"] == source["verdict"]:
                found = (source["finding"], source["severity"])
            else:
                found = finding_for(result["probe"], result["verdict"], tag, role)
            result["finding"], result["severity"] = found if found else (None, None)

    def _scrub(self):
        """Belt and braces (AUTH replies are not stored at all): no password form, and no piece of
        one a server may have echoed, survives in any result (integrity.mask_secrets)."""
        mask_secrets(self.results, self.secrets, self.public)


class _Once:
    """Calls ``callback`` the first time it is called, never again."""

    def __init__(self, callback):
        self.callback = callback

    def __call__(self):
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()


def _mask(text, forms):
    for form in forms:
        if text and form in text:
            text = text.replace(form, "****")
    return text


def _is_ip(value):
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def normalize(params):
    targets = params.get("targets") or []
    if not targets:
        raise ConfigError("targets: at least one target is needed")
    opts = Options(params)
    for source in opts.sources:
        if not _is_ip(source):
            raise ConfigError("source_address: %r is not an IP address" % source)
    return [Target(spec, index) for index, spec in enumerate(targets)], opts


def worker_count(targets, opts):
    """Worker processes for this run: 1 (in-process) unless there are enough listeners to share."""
    listeners = sum(len(target.addresses) * len(target.listeners) for target in targets)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    wanted = opts.workers or cpus
    return max(1, min(wanted, listeners // LISTENERS_PER_PROCESS, opts.concurrency, len(targets)))


def plan_shards(targets, count):
    """Split targets over ``count`` processes, keeping every target whole and targets that share
    an address in one process (``per_host`` is counted per process). Contiguous runs of targets,
    balanced by listeners; an empty list means "cannot split"."""
    groups = []  # lists of target indexes that must stay together
    owner = {}
    for index, target in enumerate(targets):
        hits = sorted(set(owner[a] for a in target.addresses if a in owner))
        if hits:
            group = hits[0]
            for other in hits[1:]:  # the target bridges groups: merge them
                groups[group].extend(groups[other])
                for moved in groups[other]:
                    for address in targets[moved].addresses:
                        owner[address] = group
                groups[other] = []
            groups[group].append(index)
        else:
            group = len(groups)
            groups.append([index])
        for address in target.addresses:
            owner[address] = group
    groups = [sorted(group) for group in groups if group]
    if len(groups) < count:
        return []
    weight = [sum(len(targets[i].addresses) * len(targets[i].listeners) for i in group) for group in groups]
    share = sum(weight) / float(count)
    shards, current, load = [], [], 0
    for group, size in zip(groups, weight):
        current.extend(targets[i] for i in group)
        load += size
        if load >= share * (len(shards) + 1) and len(shards) < count - 1:
            shards.append(current)
            current = []
    shards.append(current)
    return [shard for shard in shards if shard]


_ORDER = {probe: index for index, probe in enumerate(ALL_PROBES)}


def result_order(result):
    """Results by target, address, port, probe and case; a listener's PASS aggregate first, then
    its SKIP aggregate."""
    rank = (-2 if result["probe"] == AGGREGATE_PROBE else -1) if is_aggregate(result) else _ORDER[result["probe"]]
    return (result["target"], result["address"], result["port"], rank, result["case"] or "" if rank >= 0 else "")


def _package_root():
    """The sys.path entry this engine was imported from: a directory, or the zip AnsiballZ runs
    the module from (its path still exists while the module runs)."""
    root = os.path.abspath(__file__)
    for unused_level in __name__.split("."):
        root = os.path.dirname(root)
    return root


# A worker is a fresh interpreter that imports the engine alone (standard library only): isolated
# (-I: no PYTHON* variables, no user site, no script directory) and without site (-S). Forking
# the caller instead would give every worker a copy-on-write image of it: for relay_probe's
# action plugin that is ansible-playbook's worker with all of Ansible (~90 MiB RSS each).
_WORKER_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); import importlib; importlib.import_module(sys.argv[2])._shard_main()"


def _shard_main():
    """A worker process: its share of the plan on stdin (JSON), the outcome on stdout (JSON)."""
    job = json.load(sys.stdin)
    targets = [Target(spec, index) for index, spec in job["targets"]]
    outcome = asyncio.run(Runner(targets, Options(job["params"])).run())
    json.dump(outcome, sys.stdout)


async def _run_worker(shard, params):
    job = json.dumps({"targets": [(target.index, target.spec) for target in shard], "params": params}).encode()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-S",
        "-c",
        _WORKER_BOOT,
        _package_root(),
        __name__,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate(job)  # the job (passwords included) goes through a pipe only
    except BaseException:  # the run failed elsewhere or was cancelled: no worker outlives it
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        last = (err.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
        raise RuntimeError("engine worker process exited with %s: %s" % (proc.returncode, last[:300]))
    return json.loads(out)


async def _run_sharded(shards, opts, params):
    """The first shard in this process, every other one in a worker process of its own; each
    with its own event loop and a share of ``concurrency``; results merged in order."""
    started = time.monotonic()
    share = max(1, opts.concurrency // len(shards))
    worker_params = {key: value for key, value in params.items() if key != "targets"}
    worker_params.update(concurrency=share, workers=1)
    outcomes = await asyncio.gather(Runner(shards[0], Options(worker_params)).run(), *[_run_worker(shard, worker_params) for shard in shards[1:]])
    results = [result for outcome in outcomes for result in outcome["results"]]
    results.sort(key=result_order)
    summary = {"targets": sum(outcome["summary"]["targets"] for outcome in outcomes)}
    for key in ("results",) + VERDICTS:  # each shard counted its checks, aggregates included
        summary[key] = sum(outcome["summary"].get(key, 0) for outcome in outcomes)
    summary["seconds"] = round(time.monotonic() - started, 3)
    if opts.vantage:
        summary["vantage"] = opts.vantage
    summary["workers"] = len(shards)
    return {"results": results, "summary": summary}


async def run_async(params):
    targets, opts = normalize(params)
    count = worker_count(targets, opts)
    shards = plan_shards(targets, count) if count > 1 else []
    if len(shards) > 1:
        return await _run_sharded(shards, opts, params)
    return await Runner(targets, opts).run()


def run(params):
    """Probe every target; returns ``{results, summary}`` (docs/probe-contract.md)."""
    return asyncio.run(run_async(params))
