# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""T21: which TLS protocol versions and weak cipher-suite classes a TLS listener accepts.

One case per protocol version (TLS 1.0 ... 1.3) and per weak suite class (NULL, EXPORT, RC4,
anonymous), each one handshake (STARTTLS or implicit TLS) with a client context that offers only
that version or class. Accepted below ``tls_min_version`` (every weak class is below any minimum):
FAIL on submission listeners (RFC 8314 requires TLS there), WARN on MX listeners (opportunistic TLS,
RFC 3207 / RFC 7435: any encryption beats the plaintext a sender falls back to). What the local
OpenSSL cannot offer (a build or policy without TLS 1.0 or RC4) is SKIP "not testable here", never
PASS: the server was not asked.
"""

from __future__ import annotations

import asyncio
import ssl
import warnings

from .client import ConnectFailed, TLSFailed
from .probes import FAIL, INCONCLUSIVE, PASS, SKIP, WARN, Case, Outcome, describe, transient

PROBE = "T21"
TLS_VERSIONS = ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
_VERSION_ATTR = {"TLSv1.0": "TLSv1", "TLSv1.1": "TLSv1_1", "TLSv1.2": "TLSv1_2", "TLSv1.3": "TLSv1_3"}
# case -> OpenSSL cipher string of the class (TLS 1.3 has no such suites: offered up to TLS 1.2)
WEAK_SUITES = (("NULL", "eNULL"), ("EXPORT", "EXPORT"), ("RC4", "RC4"), ("anon", "aNULL"))
ANON = "anon"


def _base_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _client_hello_problem(context):
    """None when ``context`` can write a ClientHello, else why not (the local library refuses)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    try:
        context.wrap_bio(incoming, outgoing).do_handshake()
    except ssl.SSLWantReadError:
        return None if outgoing.pending > 0 else "no ClientHello written"
    except (ssl.SSLError, ValueError) as exc:
        return str(exc)
    return "handshake finished without a server"


_OFFERS = {}  # case -> (context, why not): what the local OpenSSL offers does not change in a run


def offer_context(case):
    """``(context, None)`` offering only what ``case`` tests, or ``(None, why not testable here)``.

    Built once per case and process: a context and its trial ClientHello cost more CPU than the
    handshake's own client side, and T21 asks for them on every TLS listener. The context offers no
    session (T21 connects without a session slot), so sharing it changes no handshake."""
    if case not in _OFFERS:
        _OFFERS[case] = _build_offer_context(case)
    return _OFFERS[case]


def _build_offer_context(case):
    library = ssl.OPENSSL_VERSION
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are deprecated: that is the point
            context = _base_context()
            if case in _VERSION_ATTR:
                attr = _VERSION_ATTR[case]
                if not getattr(ssl, "HAS_" + attr, False):
                    return None, "%s has no %s" % (library, case)
                version = getattr(ssl.TLSVersion, attr)
                context.minimum_version = version
                context.maximum_version = version
                if case in ("TLSv1.0", "TLSv1.1"):
                    # OpenSSL 3 allows their SHA-1/MD5 signatures only at security level 0
                    context.set_ciphers("ALL:@SECLEVEL=0")
            else:
                spec = dict(WEAK_SUITES)[case]
                context.maximum_version = ssl.TLSVersion.TLSv1_2
                oldest = next(
                    (getattr(ssl.TLSVersion, _VERSION_ATTR[v]) for v in TLS_VERSIONS if getattr(ssl, "HAS_" + _VERSION_ATTR[v], False)), ssl.TLSVersion.TLSv1_2
                )
                context.minimum_version = oldest
                context.set_ciphers("%s:@SECLEVEL=0" % spec)
                if not any(c.get("protocol") != "TLSv1.3" for c in context.get_ciphers()):
                    return None, "%s offers no %s cipher suite" % (library, case)
    except (ssl.SSLError, ValueError, AttributeError) as exc:
        return None, "%s cannot offer %s: %s" % (library, case, exc)
    problem = _client_hello_problem(context)
    if problem:
        return None, "%s cannot offer %s: %s" % (library, case, problem)
    return context, None


def _below_minimum(case, minimum):
    if case not in TLS_VERSIONS:
        return True
    return TLS_VERSIONS.index(case) < TLS_VERSIONS.index(minimum)


def _refused(exc):
    """A handshake failure is the server's refusal unless it was a timeout or no connection at all
    (then: no verdict). A fatal alert, a reset or a close during the handshake is a refusal."""
    cause = exc.__context__
    text = str(exc)
    if isinstance(cause, (TimeoutError, ConnectionRefusedError)) or "timed out" in text or "taking longer" in text:
        return False
    ended = (ssl.SSLError, ConnectionResetError, ConnectionAbortedError, EOFError)
    return isinstance(exc, TLSFailed) or isinstance(cause, ended)


def _why(exc):
    cause = exc.__context__
    if cause is None:
        return str(exc)
    return "%s%s" % (type(cause).__name__, ": %s" % cause if str(cause) else "")


# -- grouped offers ------------------------------------------------------------------------------
# One handshake can settle several cases at once: a ClientHello offering a whole band of versions
# (or the union of the weak suite classes) that the server refuses proves each of them refused,
# and one that it accepts proves the negotiated version (the class of the negotiated suite)
# accepted; only the members the negotiation did not name need a handshake of their own
# (docs/probe-contract.md, T21). A hardened server refuses both offers: 2 handshakes per TLS
# listener instead of 4 for the cases below the minimum.
_OPENSSL_VERSION = {"TLSv1": "TLSv1.0"}  # SSLObject.version() -> case name (the others match)


def version_group(minimum):
    """The versions below ``minimum`` the local library can offer, when one ClientHello can offer
    them all (2 or more, contiguous), else ``()``."""
    below = [case for case in TLS_VERSIONS if _below_minimum(case, minimum) and offer_context(case)[0] is not None]
    if len(below) < 2:
        return ()
    indices = [TLS_VERSIONS.index(case) for case in below]
    return tuple(below) if indices == list(range(indices[0], indices[-1] + 1)) else ()


def suite_group():
    """The weak suite classes the local library can offer, when 2 or more (else ``()``)."""
    names = tuple(name for name, unused in WEAK_SUITES if offer_context(name)[0] is not None)
    return names if len(names) >= 2 else ()


_GROUP_OFFERS = {}  # group -> (context, None) or (None, why not), like _OFFERS


def group_context(group):
    if group not in _GROUP_OFFERS:
        _GROUP_OFFERS[group] = _build_group_context(group)
    return _GROUP_OFFERS[group]


def _build_group_context(group):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if group[0] in TLS_VERSIONS:
                context = _base_context()
                context.minimum_version = getattr(ssl.TLSVersion, _VERSION_ATTR[group[0]])
                context.maximum_version = getattr(ssl.TLSVersion, _VERSION_ATTR[group[-1]])
                context.set_ciphers("ALL:@SECLEVEL=0")
            else:
                first = offer_context(group[0])[0]
                context = _base_context()
                context.minimum_version, context.maximum_version = first.minimum_version, first.maximum_version
                specs = dict(WEAK_SUITES)
                context.set_ciphers("%s:@SECLEVEL=0" % ":".join(specs[name] for name in group))
    except (ssl.SSLError, ValueError, AttributeError) as exc:
        return None, str(exc)
    problem = _client_hello_problem(context)
    return (None, problem) if problem else (context, None)


def _suite_names(case):
    context = offer_context(case)[0]
    return frozenset(c["name"] for c in context.get_ciphers()) if context is not None else frozenset()


def _proves(case, version, cipher):
    """Does a handshake that negotiated ``version`` and ``cipher`` prove ``case`` accepted?"""
    if case in TLS_VERSIONS:
        return _OPENSSL_VERSION.get(version, version) == case
    return cipher in _suite_names(case)


def _what(case):
    """How a case names what it offers: the version, or the suite class."""
    return case if case in TLS_VERSIONS else "%s cipher suites" % case


def _group_what(group):
    if group[0] in TLS_VERSIONS:
        return "%s-%s" % (group[0], group[-1]) if len(group) > 2 else " and ".join(group)
    return "%s cipher suites" % "+".join(group)


async def _group_result(ctx, group):
    """What one handshake offering all of ``group`` showed on this listener, shared by the group's
    cases: ``{"refused": evidence line}`` or ``{"accepted": ..., "version", "cipher", "banner",
    "transcript"}``; None when it settled nothing (the cases then offer one thing each). Returns
    ``(result, own outcome)``: the outcome when this case's own connection ended otherwise (no
    STARTTLS, a 4xx, a timeout: that connection's own verdict, as with a single offer)."""
    offers = ctx.state.tls_offers
    future = offers.get(group)
    if future is not None:
        return await asyncio.shield(future), None
    future = offers[group] = asyncio.get_running_loop().create_future()
    result, outcome, client = None, None, None
    try:
        context = group_context(group)[0]
        if context is not None:
            what = _group_what(group)
            outcome, client = await _handshake(ctx, context, what)
            if outcome is None:
                version, unused, cipher = (client.tls_info or "? ?").partition(" ")
                result = {"accepted": client.tls_info, "version": version, "cipher": cipher, "banner": client.banner, "transcript": list(client.transcript)}
            elif outcome.verdict == PASS:  # refused: the evidence line says how
                result = {"refused": outcome.evidence}
                outcome = None
    finally:
        future.set_result(result)  # (before this connection's QUIT: the others need not wait for its 221)
    if client is not None:
        await client.quit()  # (its slot is free for this case's own handshake, if it needs one)
    return result, outcome


async def _handshake(ctx, context, what):
    """One connection offering ``context``: ``(None, client)`` accepted, ``(PASS outcome, None)``
    refused (with its evidence line), ``(outcome, None)`` anything else."""
    try:
        if ctx.listener.tls == "implicit":
            client = await ctx.connect(implicit_tls=True, tls_context=context)
        else:
            client = await ctx.connect()
            reply = await client.ehlo()
            if "STARTTLS" not in client.extensions:
                return Outcome(SKIP, "STARTTLS not offered (T01/T03 judge that): %s not asked" % what, client.ehlo_reply, "EHLO"), None
            client.tls_context, client.tls_slot = context, None
            reply = await client.starttls()
            if reply.code != 220:
                if reply.code // 100 == 4:
                    return transient("temporary STARTTLS reply: %s" % describe(reply), reply, "STARTTLS"), None
                return Outcome(INCONCLUSIVE, "STARTTLS refused: %s" % describe(reply), reply, "STARTTLS"), None
    except (TLSFailed, ConnectFailed) as exc:
        if _refused(exc):
            line = "*** handshake offering only %s: %s" % (what, _why(exc))
            if ctx.clients:
                ctx.clients[-1].log(line)  # (the connection's own transcript says it too)
            return Outcome(PASS, "%s not accepted: the server ended the handshake" % what, stage="TLS", evidence=[line]), None
        if isinstance(exc, TLSFailed):
            return transient("TLS handshake offering only %s: %s" % (what, _why(exc)), stage="TLS"), None
        raise
    return None, client


def _from_group(ctx, case, group, result, own):
    """This case's outcome from the group's handshake, or None when it needs its own."""
    what = _what(case)
    offered = _group_what(group)
    if "refused" in result:
        evidence = None if own else result["refused"]
        return Outcome(
            PASS,
            "%s not accepted: the server ended the handshake offering %s (one ClientHello for %s)" % (what, offered, ", ".join(group)),
            stage="TLS",
            evidence=evidence,
        )
    if not _proves(case, result["version"], result["cipher"]):
        return None
    evidence = None if own else result["transcript"] + ["*** (the handshake offered %s; it negotiated %s)" % (offered, result["accepted"])]
    return _accepted(ctx, case, result["accepted"], result["banner"], evidence, "; offered together with %s" % offered)


def _accepted(ctx, case, info, banner, evidence=None, how=""):
    what = _what(case)
    below = _below_minimum(case, ctx.opts.tls_min_version)
    if not below:
        return Outcome(PASS, "%s accepted (%s%s); the minimum is %s" % (what, info, how, ctx.opts.tls_min_version), banner, "TLS", evidence=evidence)
    submission = ctx.listener.role == "submission"
    if case == ANON:
        # No server authentication, but strong encryption; only a client that offers anonymous
        # suites gets one, and a client that checks the server's certificate never does.
        if not submission:
            return Outcome(
                PASS,
                "%s accepted (%s%s): unauthenticated encryption is what opportunistic TLS on an MX is (RFC 7435), not a weakness there" % (what, info, how),
                banner,
                "TLS",
                evidence=evidence,
            )
        return Outcome(
            WARN,
            "%s accepted (%s%s): no server authentication for a client that offers them; "
            "TLS best practice (RFC 9325) rules them out on submission" % (what, info, how),
            banner,
            "TLS",
            evidence=evidence,
        )
    verdict = FAIL if submission else WARN
    why_weight = "submission requires strong TLS (RFC 8314)" if submission else "opportunistic TLS on an MX listener (RFC 3207, RFC 7435): a warning"
    return Outcome(
        verdict, "%s accepted (%s%s), below the minimum %s; %s" % (what, info, how, ctx.opts.tls_min_version, why_weight), banner, "TLS", evidence=evidence
    )


async def t21(ctx, unused_client, case):
    context, why = offer_context(case)
    if context is None:
        return Outcome(SKIP, "not testable here: %s" % why)
    what = _what(case)
    group = version_group(ctx.opts.tls_min_version) if case in TLS_VERSIONS else suite_group()
    if case in group and ctx.state.tls_offers is not None:
        opened = len(ctx.clients)
        result, outcome = await _group_result(ctx, group)
        if outcome is not None:
            return outcome
        if result is not None:
            outcome = _from_group(ctx, case, group, result, own=len(ctx.clients) > opened)
            if outcome is not None:
                return outcome
    seen = _negotiated_here(ctx, case)
    if seen is not None:
        return seen
    outcome, client = await _handshake(ctx, context, what)
    if outcome is not None:
        return outcome
    return _accepted(ctx, case, client.tls_info or "?", client.banner)


def _negotiated_here(ctx, case):
    """On an implicit-TLS listener the reachability check (T00) greeted inside a handshake made with
    the engine's own client context (TLS 1.2-1.3) before any T21 case starts: the version that
    handshake negotiated is proven accepted by it. Its outcome, with that connection's transcript
    as evidence; None for every other case (or in the reference mode, where T00 keeps no record)."""
    first = ctx.state.tls_first
    if case not in TLS_VERSIONS or first is None or ctx.state.unreachable or ctx.state.tls_offers is None:
        return None
    info, banner, transcript = first
    if not _proves(case, (info or "").split(" ", 1)[0], None):
        return None
    evidence = list(transcript) + ["*** (T21 %s: the reachability check's handshake above negotiated it; no handshake of T21's own)" % case]
    return _accepted(ctx, case, info, banner, evidence, "; negotiated by the reachability check's handshake")


def build_tls_cases(ctx):
    """T21 cases of a TLS listener (STARTTLS or implicit), when T21 is selected."""
    if PROBE not in ctx.opts.probes or ctx.listener.tls == "none":
        return []
    cases = []
    minimum = ctx.opts.tls_min_version
    for case in TLS_VERSIONS + tuple(name for name, unused in WEAK_SUITES):
        below = _below_minimum(case, minimum) and not (case == ANON and ctx.listener.role == "mx")
        if case in TLS_VERSIONS:
            title = "TLS: %s %s" % (case, "refused (below %s)" % minimum if below else "may be accepted")
        else:
            title = "TLS: %s cipher suites %s" % (case, "refused" if below else "may be accepted (opportunistic TLS)")
        cases.append(Case(PROBE, case, title, "refused" if below else "accepted or refused", "own", lambda c, cl, name=case: t21(c, cl, name), cost=0))
    return cases
