# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe matrix T01-T19 (shared reference relay-probes.md, section d) as cases.

A case is one verdict. ``kind`` says which session it runs in: ``plain`` (EHLO, no TLS),
``secure`` (after STARTTLS or implicit TLS, or plain where the listener has no TLS) -- cases of
those kinds share connections, RSET between them -- or ``own`` (the case opens what it needs:
injection, smuggling, AUTH). T20 is derived from the others by the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .client import Closed, ReadTimeout, TLSFailed, SMTPError
from .reply import ACCEPTED, NON_RELAY, REFUSED, TRANSIENT, classify, is_auth_required, is_policy_refusal
from .safety import DUMMY_CREDENTIALS, Credentials

PASS, FAIL, WARN, INCONCLUSIVE, SKIP = "PASS", "FAIL", "WARN", "INCONCLUSIVE", "SKIP"

# T00 (listener reachable) is not a case: the engine checks it once per listener, always.
ALL_PROBES = tuple("T%02d" % number for number in range(0, 21))
# T10 (sender binding) is policy-optional: run when listed explicitly or asked for per listener.
DEFAULT_PROBES = tuple(probe for probe in ALL_PROBES if probe != "T10")
REACHABLE = "T00"

# Inbound smuggling endings (SMTP-Smuggling-Tools' reduced list; shared reference b).
SMUGGLE_ENDINGS = (
    ("lf.lf", b"\n.\n"),
    ("lf.cr", b"\n.\r"),
    ("cr.lf", b"\r.\n"),
    ("cr.cr", b"\r.\r"),
    ("lf.crlf", b"\n.\r\n"),
    ("cr.crlf", b"\r.\r\n"),
    ("nul", b"\r\n\x00.\r\n"),
)


@dataclass
class Outcome:
    verdict: str
    text: str
    reply: object = None          # Reply
    stage: str = None
    transient: bool = False       # 4xx / timeout: retry (bounded), then INCONCLUSIVE
    pending: object = None        # async () -> (verdict, text, client_seen), started at once (canary wait)
    client_seen: str = None
    late: object = None           # () -> None or (verdict, text, client_seen), looked at after the run
    evidence: list = None         # transcript of the connection that proved it, when the case opened none


@dataclass
class Case:
    probe: str
    case: str
    title: str
    expected: str
    kind: str                     # plain | secure | own
    run: object                   # async (ctx, client) -> Outcome
    cost: int = 1                 # most error replies it can cause (connection error budget); 0: sends nothing
    greeting_refused: str = SKIP  # verdict when the listener refuses this client at the greeting
    no_tls: str = INCONCLUSIVE    # verdict when the listener should do STARTTLS but does not offer it
    args: dict = field(default_factory=dict)
    credentials: str = None       # "real": AUTH with the test account; "wrong": a failed AUTH (see engine)
    syntax_risk: bool = False     # likely a 500-504 reply (Exim drops a connection after 3 of those)
    ends_session: bool = False    # leaves the connection unusable: runs last on a shared connection


def transient(text, reply=None, stage=None):
    return Outcome(INCONCLUSIVE, text, reply, stage, transient=True)


def show(data):
    """Control characters of a smuggling ending as escapes (\\r, \\n, \\x00)."""
    return data.decode("latin-1").encode("unicode_escape").decode("ascii")


def describe(reply):
    return "%d%s %s" % (reply.code, " " + reply.enhanced if reply.enhanced else "", reply.text)


# -- address forms P01-P23 -----------------------------------------------------------------
@dataclass
class Form:
    pid: str
    title: str
    sender: str
    rcpt: str
    sender_trick: bool      # the sender is the trick: a refused MAIL cannot be rerun cleanly
    hack: bool              # RCPT-side trick form (P11-P23): 2xx alone is not proof of relaying


def relay_forms(ctx, foreign_hack):
    """P01-P23 for this target; ``foreign_hack`` is the domain hidden in hack forms (canary or X)."""
    F, C = ctx.foreign, foreign_hack
    H, IP = ctx.host_name, ctx.literal

    def r(pid, domain):
        return "%s@%s" % (ctx.token("T11" if domain == F else "T12", pid), domain)

    def local(pid):
        return ctx.token("T11" if C == F else "T12", pid)

    forms = [
        Form("P01", "null sender", "<>", "<%s>" % r("P01", F), True, False),
        Form("P02", "plain third-party relay", "<probe@%s>" % F, "<%s>" % r("P02", F), False, False),
        Form("P03", "sender spoofs the server hostname", "<probe@%s>" % H, "<%s>" % r("P03", F), True, False),
    ]
    senders = ["probe@%s" % domain for domain in ctx.target.local_domains[:3]]
    if ctx.target.test_mailbox:
        senders.append(ctx.target.test_mailbox)
    for index, sender in enumerate(senders):
        pid = "P04" + "abcdefgh"[index]
        forms.append(Form(pid, "sender in a local domain (%s)" % sender, "<%s>" % sender, "<%s>" % r(pid, F), True, False))
    forms += [
        Form("P05", "sender is the target's address literal", "<probe@%s>" % IP, "<%s>" % r("P05", F), True, False),
        Form("P06a", "localhost sender", "<probe@localhost>", "<%s>" % r("P06a", F), True, False),
        Form("P06b", "loopback literal sender", "<probe@[127.0.0.1]>", "<%s>" % r("P06b", F), True, False),
        Form("P07", "unqualified sender", "<nobody>", "<%s>" % r("P07", F), True, False),
        Form("P08", "UUCP bang-path sender", "<%s!probe>" % F, "<%s>" % r("P08", F), True, False),
        Form("P09", "non-bracketed paths", "probe@%s" % F, r("P09", F), True, False),
    ]
    s = "<probe@%s>" % IP
    hacks = [
        ("P11", "percent hack at an address literal", "<%s%%%s@%s>" % (local("P11"), C, IP)),
        ("P12", "percent hack at the hostname", "<%s%%%s@%s>" % (local("P12"), C, H)),
        ("P13", "quoted local part hiding an @", '<"%s@%s">' % (local("P13"), C)),
        ("P14", "quoted percent form, no domain", '<"%s%%%s">' % (local("P14"), C)),
        ("P15", "double @ at a literal", "<%s@%s@%s>" % (local("P15"), C, IP)),
        ("P16", "quoted @ local part at a literal", '<"%s@%s"@%s>' % (local("P16"), C, IP)),
        ("P17", "double @ at the hostname", "<%s@%s@%s>" % (local("P17"), C, H)),
        ("P18", "trailing @", "<%s@%s@>" % (local("P18"), C)),
        ("P19", "source route through a literal", "<@%s:%s@%s>" % (IP, local("P19"), C)),
        ("P20", "source route through the hostname", "<@%s:%s@%s>" % (H, local("P20"), C)),
        ("P21", "bang-path recipient", "<%s!%s>" % (C, local("P21"))),
        ("P22", "bang path at a literal", "<%s!%s@%s>" % (C, local("P22"), IP)),
        ("P23", "bang path at the hostname", "<%s!%s@%s>" % (C, local("P23"), H)),
    ]
    forms += [Form(pid, title, s, rcpt, False, True) for pid, title, rcpt in hacks]
    return forms


def odd_syntax(form):
    """Forms RFC 5321 does not allow (two @, source routes, no angle brackets): servers
    tend to answer them with a syntax error rather than a relay decision."""
    rcpt = form.rcpt.strip("<>").replace('"', "")
    return rcpt.count("@") > 1 or rcpt.startswith("@") or not form.sender.startswith("<")


# -- verdict helpers -----------------------------------------------------------------------
def judge_rcpt(ctx, reply, *, hack=False, expected=None):
    """Verdict for a RCPT reply to a foreign recipient (MAIL was accepted)."""
    expected = expected or ctx.listener.relay
    klass = classify(reply)
    if klass == TRANSIENT:
        return transient("temporary refusal at RCPT: %s" % describe(reply), reply, "RCPT")
    if expected == "allowed":
        if klass == ACCEPTED:
            return Outcome(PASS, "relayed as expected from this vantage", reply, "RCPT")
        if klass == NON_RELAY:
            return Outcome(INCONCLUSIVE, "relay control not exercised: address refused (%s)" % describe(reply),
                           reply, "RCPT")
        return Outcome(FAIL, "relay refused, but this vantage may relay: %s" % describe(reply), reply, "RCPT")
    if klass == ACCEPTED:
        return Outcome(FAIL, "foreign recipient accepted at RCPT: open relay", reply, "RCPT")
    if klass == REFUSED or is_auth_required(reply):
        return Outcome(PASS, "relay refused: %s" % describe(reply), reply, "RCPT")
    if klass == NON_RELAY and hack:
        return Outcome(PASS, "trick form refused as an invalid address: %s" % describe(reply), reply, "RCPT")
    if klass == NON_RELAY:
        return Outcome(INCONCLUSIVE, "relay control not exercised: address/DNS/syntax refusal (%s)" % describe(reply),
                       reply, "RCPT")
    return Outcome(INCONCLUSIVE, "unexpected reply at RCPT: %s" % describe(reply), reply, "RCPT")


def judge_mail_refusal(ctx, reply, expected=None, authenticated=False):
    """Verdict when MAIL itself was not accepted (None: MAIL accepted, go on).

    On a submission listener an unauthenticated MAIL refused by policy (530, or 5xx with 5.7.x:
    Postfix's ``554 5.7.1 Sender address rejected: Access denied``) refuses the relay attempt
    (reference d, T06/T11 on 587/465). On an MX listener a sender refusal at MAIL is about the
    sender, not relaying: "not exercised". After AUTH (T09) any refusal of the account's own
    sender is a refusal of authenticated relay."""
    expected = expected or ctx.listener.relay
    klass = classify(reply)
    if klass == ACCEPTED:
        return None
    if klass == TRANSIENT:
        return transient("temporary refusal at MAIL: %s" % describe(reply), reply, "MAIL")
    if authenticated:
        if expected == "allowed":
            return Outcome(FAIL, "authenticated sender refused at MAIL: %s" % describe(reply), reply, "MAIL")
        return Outcome(PASS, "authenticated relay refused at MAIL: %s" % describe(reply), reply, "MAIL")
    if is_auth_required(reply):
        if expected == "allowed":
            return Outcome(FAIL, "this vantage may relay, but the server wants AUTH: %s" % describe(reply), reply, "MAIL")
        return Outcome(PASS, "MAIL refused, authentication required: %s" % describe(reply), reply, "MAIL")
    if is_policy_refusal(reply) and ctx.listener.role == "submission" and expected != "allowed":
        return Outcome(PASS, "unauthenticated MAIL refused by policy on a submission listener: %s" % describe(reply),
                       reply, "MAIL")
    return Outcome(INCONCLUSIVE, "relay control not exercised: sender refused at MAIL (%s)" % describe(reply),
                   reply, "MAIL")


async def _mail_rcpt(ctx, client, sender, rcpt, pipeline=True):
    """``(mail_reply, rcpt_reply or None)``; RCPT in the MAIL's write while this listener takes MAIL."""
    if pipeline and ctx.state.pipeline_rcpt:
        mail, reply = await client.mail_rcpt(sender, rcpt)
        if classify(mail) != ACCEPTED:
            ctx.state.pipeline_rcpt = False
        return mail, reply
    mail = await client.mail(sender)
    return mail, (await client.rcpt(rcpt) if classify(mail) == ACCEPTED else None)


def _note_clean_sender(ctx, sender, mail, verdict, authenticated):
    """Remember that this listener refuses the clean sender before AUTH (the answer will not change)."""
    if (not authenticated and verdict is not None and not verdict.transient
            and sender == "<%s>" % ctx.clean_sender and ctx.state.clean_sender_refused is None):
        ctx.state.clean_sender_refused = mail


async def _transaction(ctx, client, sender, rcpt, *, hack=False, expected=None, retry_sender=None,
                       pipeline=False, authenticated=False):
    """MAIL, RCPT; ``pipeline`` sends both in one write where the server pipelines. Only for
    senders a server has no reason to refuse: a refused MAIL costs one more error (the RCPT's
    503, a protocol error to Exim), so the first one ends pipelining on this listener."""
    mail, rcpt_reply = await _mail_rcpt(ctx, client, sender, rcpt, pipeline)
    verdict = judge_mail_refusal(ctx, mail, expected, authenticated)
    _note_clean_sender(ctx, sender, mail, verdict, authenticated)
    if (verdict is not None and retry_sender and retry_sender != sender and not verdict.transient
            and not is_auth_required(mail) and verdict.verdict in (PASS, INCONCLUSIVE)):
        known = ctx.state.clean_sender_refused
        if known is not None:
            # Refused before on this listener: judge that answer (asking again would only cost an
            # error reply); the verdict must not depend on which case asked first.
            verdict = judge_mail_refusal(ctx, known, expected, authenticated)
            verdict.text += " (the clean sender %s, refused before on this listener; the form's own sender: %s)" % (
                retry_sender, describe(mail))
        else:
            # The sender may have masked the relay decision: try once more with a clean one (reference c.13).
            await client.rset()
            first = describe(mail)
            mail, rcpt_reply = await client.mail(retry_sender), None
            verdict = judge_mail_refusal(ctx, mail, expected, authenticated)
            _note_clean_sender(ctx, retry_sender, mail, verdict, authenticated)
            if verdict is not None:
                verdict.text += " (the clean sender %s; the form's own sender: %s)" % (retry_sender, first)
    if verdict is not None:
        return verdict, mail, None
    if rcpt_reply is None:
        rcpt_reply = await client.rcpt(rcpt)
    return judge_rcpt(ctx, rcpt_reply, hack=hack, expected=expected), mail, rcpt_reply


def message(token, rcpt, sender, extra=""):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: mailsec.relay probe %s\r\nMessage-ID: <%s@prober.mailsec.test>\r\n"
            "\r\nmailsec.relay relay probe, token %s.%s\r\n" % (sender, rcpt, token, token, token, extra)).encode()


# -- T01-T04: AUTH placement ---------------------------------------------------------------
async def t01(ctx, client):
    if "AUTH" in client.extensions:
        return Outcome(FAIL, "AUTH advertised on an MX listener: AUTH %s" % client.extensions["AUTH"],
                       client.ehlo_reply, "EHLO")
    if not client.tls_active and ctx.listener.tls in ("starttls", "required") and "STARTTLS" not in client.extensions:
        return Outcome(FAIL, "STARTTLS not offered although the listener should have tls=%s" % ctx.listener.tls,
                       client.ehlo_reply, "EHLO")
    return Outcome(PASS, "no AUTH in the EHLO reply%s" % (" after TLS" if client.tls_active else ""),
                   client.ehlo_reply, "EHLO")


async def t02(ctx, client):
    reply = await client.command("AUTH LOGIN", stage="AUTH", timeout=client.auth_timeout)
    if reply.code == 334:
        await client.command("*", stage="AUTH", timeout=client.auth_timeout)
        return Outcome(FAIL, "AUTH LOGIN answered 334: port %d takes credentials" % ctx.listener.port, reply, "AUTH")
    if reply.code // 100 == 2:
        return Outcome(FAIL, "AUTH LOGIN without credentials accepted: %s" % describe(reply), reply, "AUTH")
    if reply.code // 100 == 4:
        return transient("temporary AUTH reply: %s" % describe(reply), reply, "AUTH")
    return Outcome(PASS, "AUTH refused: %s" % describe(reply), reply, "AUTH")


async def t03(ctx, client):
    ext = client.extensions
    if "AUTH" in ext:
        return Outcome(FAIL, "AUTH offered before TLS: AUTH %s" % ext["AUTH"], client.ehlo_reply, "EHLO")
    if "STARTTLS" not in ext:
        return Outcome(FAIL, "STARTTLS not offered on a submission listener", client.ehlo_reply, "EHLO")
    return Outcome(PASS, "STARTTLS offered, AUTH only after TLS", client.ehlo_reply, "EHLO")


async def t04(ctx, client, mechanism):
    if mechanism == "PLAIN":
        reply = await client.auth("PLAIN", DUMMY_CREDENTIALS)   # deliberately invalid, never real
    else:
        reply = await client.command("AUTH LOGIN", stage="AUTH", timeout=client.auth_timeout)
    if reply.code == 334:
        await client.command("*", stage="AUTH", timeout=client.auth_timeout)
    if reply.code in (334, 235, 535):
        return Outcome(FAIL, "AUTH %s processed in cleartext: %s" % (mechanism, describe(reply)), reply, "AUTH")
    if reply.code // 100 == 4:
        return transient("temporary AUTH reply: %s" % describe(reply), reply, "AUTH")
    if reply.code // 100 == 2:
        return Outcome(FAIL, "AUTH %s accepted in cleartext: %s" % (mechanism, describe(reply)), reply, "AUTH")
    return Outcome(PASS, "AUTH %s refused before TLS: %s" % (mechanism, describe(reply)), reply, "AUTH")


# -- T05-T10: submission -------------------------------------------------------------------
async def t05(ctx, client):
    reply = await client.mail("<%s>" % ctx.account_address)
    klass = classify(reply)
    if klass == ACCEPTED:
        return Outcome(FAIL, "MAIL accepted without AUTH/TLS on a submission listener", reply, "MAIL")
    if klass == TRANSIENT:
        return transient("temporary MAIL reply: %s" % describe(reply), reply, "MAIL")
    if is_auth_required(reply) or klass == REFUSED:
        return Outcome(PASS, "MAIL refused before TLS/AUTH: %s" % describe(reply), reply, "MAIL")
    return Outcome(INCONCLUSIVE, "control not exercised: %s" % describe(reply), reply, "MAIL")


async def t06_auth(ctx, client):
    if "AUTH" in client.extensions:
        return Outcome(PASS, "AUTH offered after TLS: %s" % client.extensions["AUTH"], client.ehlo_reply, "EHLO")
    if ctx.listener.auth_relay:
        return Outcome(FAIL, "AUTH not offered after TLS although authenticated relay is expected",
                       client.ehlo_reply, "EHLO")
    return Outcome(PASS, "AUTH not offered; no authenticated relay expected here", client.ehlo_reply, "EHLO")


async def t06_relay(ctx, client):
    return (await _transaction(ctx, client, "<%s>" % ctx.clean_sender,
                               "<%s@%s>" % (ctx.token("T06", "relay"), ctx.rcpt_domain)))[0]


async def t07(ctx, client):
    seen = ctx.state.tls_first
    if seen is not None:
        # T00 already connected TLS first and read the greeting inside TLS on this listener: the
        # very check this case makes, on a connection of this run (reuse mode only)
        info, banner, lines = seen
        return Outcome(PASS, "TLS handshake first, greeting inside TLS (%s)" % info, banner, "BANNER",
                       evidence=lines)
    try:
        tls = await ctx.connect(implicit_tls=True)
    except TLSFailed as exc:
        try:
            plain = await ctx.connect(implicit_tls=False)
        except SMTPError:
            return Outcome(INCONCLUSIVE, "TLS handshake failed and no plaintext greeting: %s" % exc, stage="TLS")
        if plain.banner.code == 220:
            return Outcome(FAIL, "plaintext 220 greeting on an implicit-TLS listener", plain.banner, "BANNER")
        return Outcome(INCONCLUSIVE, "TLS handshake failed: %s" % exc, plain.banner, "TLS")
    return Outcome(PASS, "TLS handshake first, greeting inside TLS (%s)" % tls.tls_info, tls.banner, "BANNER")


async def t08(ctx, client):
    # Own session, started only after every case with real credentials on this address: a failed
    # AUTH makes Dovecot delay the next ones from this client (auth penalty, up to 15 s).
    client = await ctx.session("secure")
    if "AUTH" not in client.extensions:
        return Outcome(SKIP, "AUTH not offered after TLS", client.ehlo_reply, "EHLO")
    user = ctx.target.auth.username if ctx.target.auth else DUMMY_CREDENTIALS.username
    wrong = Credentials(user, ctx.wrong_password(), real=False)
    # A bare AUTH PLAIN first: the server's 334 shows its SASL backend has started the exchange
    # (Dovecot's penalty lookup); the wrong passwords of all listeners go out only after every 334.
    reply = await client.auth_plain_begin(wrong)
    if reply.code == 334:
        await ctx.before_wrong_auth()
        reply = await client.auth_plain_respond(wrong)
    else:
        # no 334 (a server that wants the initial response): the one-line AUTH, as before
        await ctx.before_wrong_auth(wait=False)
        reply = await client.auth("PLAIN", wrong)
    if reply.code // 100 == 2:
        return Outcome(FAIL, "wrong password accepted: %s" % describe(reply), reply, "AUTH")
    if reply.code // 100 == 4:
        return transient("temporary AUTH reply: %s" % describe(reply), reply, "AUTH")
    note = "AUTH refused (%s)" % describe(reply)
    mail = await client.mail("<%s>" % ctx.account_address)
    if classify(mail) == ACCEPTED:
        return Outcome(FAIL, "%s, but MAIL then accepted without AUTH" % note, mail, "MAIL")
    if classify(mail) == TRANSIENT:
        return transient("temporary MAIL reply: %s" % describe(mail), mail, "MAIL")
    verdict = PASS if (reply.code == 535 or reply.enhanced == "5.7.8") else WARN
    extra = "" if verdict == PASS else " (expected 535 5.7.8 for a wrong password)"
    return Outcome(verdict, "%s%s; MAIL then refused: %s" % (note, extra, describe(mail)), mail, "MAIL")


async def _auth_session(ctx):
    client = await ctx.session("secure")
    if "AUTH" not in client.extensions:
        return client, Outcome(FAIL if ctx.listener.auth_relay else PASS, "AUTH not offered after TLS",
                               client.ehlo_reply, "EHLO")
    reply = await client.auth("PLAIN", ctx.target.auth)
    if reply.code // 100 == 4:
        return client, transient("temporary AUTH reply: %s" % describe(reply), reply, "AUTH")
    if reply.code != 235:
        return client, Outcome(FAIL, "AUTH with the test account failed: %s" % describe(reply), reply, "AUTH")
    return client, None


async def t09(ctx, client):
    client, failed = await _auth_session(ctx)
    if failed is not None:
        return failed
    token = ctx.token("T09", "")
    rcpt = "%s@%s" % (token, ctx.rcpt_domain)
    expected = "allowed" if ctx.listener.auth_relay else "refused"
    outcome, mail, rcpt_reply = await _transaction(ctx, client, "<%s>" % ctx.account_address, "<%s>" % rcpt,
                                                   expected=expected, pipeline=True, authenticated=True)
    if expected == "refused" or outcome.verdict != PASS or not ctx.can_data:
        if outcome.verdict == PASS and expected == "allowed":
            outcome.text = "authenticated relay accepted at RCPT (no canary: delivery not confirmed)"
        return outcome
    first, final = await client.data(message(token, rcpt, ctx.account_address))
    last = final or first
    if classify(last) == TRANSIENT:
        return transient("temporary reply to the message: %s" % describe(last), last, "DATA" if final is None else "EOD")
    if final is None or classify(final) != ACCEPTED:
        return Outcome(FAIL, "authenticated message refused: %s" % describe(last), last, "DATA" if final is None else "EOD")
    wait = ctx.opts.canary_wait

    async def confirm():
        text = await ctx.canary.wait(token, wait)
        if text is None:
            return FAIL, "authenticated relay accepted, but no canary within %ss" % wait, None
        return PASS, "authenticated relay delivered to the canary", ctx.received_client(text)

    return Outcome(PASS, "accepted, waiting for the canary", final, "EOD", pending=confirm)


async def t10(ctx, client):
    client, failed = await _auth_session(ctx)
    if failed is not None:
        return failed
    domain = ctx.target.local_domains[0] if ctx.target.local_domains else ctx.host_name
    sender = "<other-%s@%s>" % (ctx.nonce(), domain)
    mail = await client.mail(sender)
    if classify(mail) == TRANSIENT:
        return transient("temporary MAIL reply: %s" % describe(mail), mail, "MAIL")
    if classify(mail) != ACCEPTED:
        return Outcome(PASS, "sender not owned by the login refused: %s" % describe(mail), mail, "MAIL")
    rcpt = await client.rcpt("<%s@%s>" % (ctx.token("T10", ""), ctx.rcpt_domain))
    if classify(rcpt) == TRANSIENT:
        return transient("temporary RCPT reply: %s" % describe(rcpt), rcpt, "RCPT")
    if classify(rcpt) != ACCEPTED:
        return Outcome(PASS, "sender not owned by the login refused: %s" % describe(rcpt), rcpt, "RCPT")
    verdict = FAIL if ctx.listener.sender_login_match else WARN
    return Outcome(verdict, "authenticated client may send as %s" % sender, rcpt, "RCPT")


# -- T11/T12/T15: relay and spoof forms ----------------------------------------------------
async def relay_form(ctx, client, form):
    # Rerun a refused MAIL with the clean sender: for recipient tricks (the sender may have masked
    # the relay decision), and for sender tricks on submission (a listener that refuses even the
    # clean sender before AUTH refuses the relay attempt, whatever it thought of the trick).
    clean_rerun = not form.sender_trick or ctx.listener.role == "submission"
    retry = "<%s>" % ctx.clean_sender if clean_rerun else None
    # Unpipelined: sender tricks (their MAIL may well be refused: that is the trick) and submission
    # listeners (MAIL before AUTH is commonly refused with 530).
    pipeline = not form.sender_trick and ctx.listener.role == "mx"
    outcome, mail, rcpt = await _transaction(ctx, client, form.sender, form.rcpt, hack=form.hack,
                                             retry_sender=retry, pipeline=pipeline)
    if not (form.hack and outcome.verdict == FAIL and rcpt is not None):
        return outcome
    # A hack form accepted at RCPT: relayed, or taken as a strange local part? Only the canary knows.
    if not ctx.can_data:
        return Outcome(WARN, "trick form accepted at RCPT; not confirmed (no canary): accept-then-drop or "
                       "literal local part, backscatter risk", rcpt, "RCPT")
    token = ctx.localpart(form.rcpt)
    first, final = await client.data(message(token, form.rcpt.strip("<>"), form.sender.strip("<>")))
    last = final or first
    if classify(last) == TRANSIENT:
        return transient("temporary reply to the message: %s" % describe(last), last, "EOD")
    if final is None or classify(final) != ACCEPTED:
        return Outcome(PASS, "accepted at RCPT, message refused: %s" % describe(last), last,
                       "DATA" if final is None else "EOD")
    wait = ctx.opts.canary_wait

    async def confirm():
        text = await ctx.canary.wait(token, wait)
        if text is not None:
            return FAIL, "confirmed open relay: the message reached the canary", ctx.received_client(text)
        return WARN, ("accepted but not delivered to the canary within %ss: accept-then-drop or literal local "
                      "part (backscatter risk)" % wait), None

    return Outcome(WARN, "accepted, waiting for the canary", final, "EOD", pending=confirm)


async def t13(ctx, client, rcpt):
    mail, reply = await _mail_rcpt(ctx, client, "<%s>" % ctx.clean_sender, "<%s>" % rcpt)
    if classify(mail) == TRANSIENT:
        return transient("temporary MAIL reply: %s" % describe(mail), mail, "MAIL")
    if classify(mail) != ACCEPTED:
        return Outcome(INCONCLUSIVE, "control not exercised: sender refused (%s)" % describe(mail), mail, "MAIL")
    klass = classify(reply)
    if klass == ACCEPTED:
        return Outcome(PASS, "inbound mail accepted", reply, "RCPT")
    if klass == TRANSIENT:
        return transient("temporary RCPT reply (greylisting?): %s" % describe(reply), reply, "RCPT")
    return Outcome(FAIL, "inbound mail for a hosted domain refused: %s" % describe(reply), reply, "RCPT")


async def t15(ctx, client, sender):
    rcpt = "<%s@%s>" % (ctx.token("T15", "s"), ctx.rcpt_domain)
    return (await _transaction(ctx, client, sender, rcpt))[0]


# -- T16-T19: protocol abuse ---------------------------------------------------------------
async def t16(ctx, client):
    # the last case on a plaintext session (or its own): RSET is answered before STARTTLS is
    # written, so the STARTTLS and the injected NOOP still arrive alone, in one write
    client = client if client is not None else await ctx.session("plain")
    if "STARTTLS" not in client.extensions:
        return Outcome(INCONCLUSIVE, "STARTTLS not offered", client.ehlo_reply, "EHLO")
    try:
        reply = await client.starttls(extra=b"NOOP\r\n")
    except TLSFailed as exc:
        return Outcome(INCONCLUSIVE, "TLS handshake failure: %s" % exc, stage="TLS")
    if reply.code != 220:
        if reply.code // 100 == 4:
            return transient("temporary STARTTLS reply: %s" % describe(reply), reply, "STARTTLS")
        return Outcome(PASS, "STARTTLS with pipelined data refused: %s" % describe(reply), reply, "STARTTLS")
    if client.plaintext_after_starttls:
        return Outcome(WARN, "server answered a command pipelined after STARTTLS in plaintext", reply, "STARTTLS")
    # The first reply inside TLS tells it: 250 = the injected NOOP ran inside TLS, 221 = it was discarded.
    try:
        quit_reply = await client.command("QUIT", stage="TLS")
    except Closed:
        return Outcome(PASS, "server closed the TLS session without answering the injected command", reply, "TLS")
    client.usable = False
    if quit_reply.code == 221:
        return Outcome(PASS, "injected NOOP discarded (first reply inside TLS is the QUIT's 221)", quit_reply, "TLS")
    if quit_reply.code == 250:
        return Outcome(FAIL, "plaintext NOOP pipelined with STARTTLS was answered inside TLS (CVE-2011-0411 class)",
                       quit_reply, "TLS")
    return Outcome(INCONCLUSIVE, "unexpected first reply inside TLS: %s" % describe(quit_reply), quit_reply, "TLS")


async def _read_until_quit(client):
    """Replies until 221/421 or close; returns (replies, how_it_ended)."""
    replies = []
    try:
        while len(replies) < 20:
            reply = await client.read_reply()
            replies.append(reply)
            if reply.code in (221, 421):
                return replies, "quit"
    except Closed:
        return replies, "closed"
    except ReadTimeout:
        return replies, "timeout"
    return replies, "quit"


async def _smuggle_session(ctx):
    """Session and recipient for T17/T18 (25: local test mailbox; submission: AUTH + canary)."""
    if ctx.listener.role == "submission":
        client, failed = await _auth_session(ctx)
        return client, failed, "%s@%s" % (ctx.token("T17", "a"), ctx.canary_domain)
    client = await ctx.session(ctx.relay_kind, allow_local_mailbox=True)
    rcpt = ctx.target.test_mailbox or "%s@%s" % (ctx.token("T17", "a"), ctx.canary_domain)
    return client, None, rcpt


async def t17(ctx, client, name, ending):
    client, failed, rcpt = await _smuggle_session(ctx)
    if failed is not None:
        return failed
    sender = ctx.account_address if ctx.listener.role == "submission" else ctx.clean_sender
    mail = await client.mail("<%s>" % sender)
    rcpt_reply = await client.rcpt("<%s>" % rcpt) if classify(mail) == ACCEPTED else mail
    for reply, stage in ((mail, "MAIL"), (rcpt_reply, "RCPT")):
        if classify(reply) == TRANSIENT:
            return transient("temporary %s reply: %s" % (stage, describe(reply)), reply, stage)
        if classify(reply) != ACCEPTED:
            return Outcome(INCONCLUSIVE, "not exercised: %s refused (%s)" % (stage, describe(reply)), reply, stage)
    first = await client.command("DATA")
    if first.code != 354:
        if classify(first) == TRANSIENT:
            return transient("temporary DATA reply: %s" % describe(first), first, "DATA")
        return Outcome(INCONCLUSIVE, "not exercised: DATA refused (%s)" % describe(first), first, "DATA")
    token = ctx.token("T17", name)
    smuggled = ctx.token("T17b", name)
    smuggled_rcpt = "%s@%s" % (smuggled, ctx.canary_domain)
    payload = (message(token, rcpt, sender).rstrip(b"\r\n") + ending
               + b"MAIL FROM:<" + sender.encode() + b">\r\nRCPT TO:<" + smuggled_rcpt.encode() + b">\r\nDATA\r\n"
               + message(smuggled, smuggled_rcpt, sender) + b".\r\nQUIT\r\n")
    await client.send_raw(payload, "<body, fake end %s, smuggled MAIL/RCPT/DATA + message, CRLF.CRLF, QUIT>"
                          % show(ending))
    client.stage = "EOD"
    replies, ended = await _read_until_quit(client)
    client.usable = False
    client.guard.end_of_data()
    answers = [reply for reply in replies if reply.code != 221]
    if not answers:
        return Outcome(INCONCLUSIVE, "no reply to the end of data (%s)" % ended, stage="EOD")
    first = answers[0]
    if len(answers) > 1 and first.code != 421:
        return Outcome(FAIL, "fake end-of-data %s taken as the end: %d replies (%s)" % (
            show(ending), len(answers), ", ".join(str(reply.code) for reply in answers)), first, "EOD")
    if classify(first) == TRANSIENT and first.code != 421:
        return transient("temporary reply to the message: %s" % describe(first), first, "EOD")
    if first.code // 100 in (4, 5):
        return Outcome(PASS, "message with %s refused: %s" % (show(ending), describe(first)), first, "EOD")
    check = ctx.canary_check(smuggled, unless=token)
    return Outcome(PASS, "one message accepted: %s not taken as end of data" % show(ending), first, "EOD",
                   late=check)


async def t18(ctx, client):
    client, failed, rcpt = await _smuggle_session(ctx)
    if failed is not None:
        return failed
    sender = ctx.account_address if ctx.listener.role == "submission" else ctx.clean_sender
    token = ctx.token("T18", "")
    payload = (b"MAIL FROM:<" + sender.encode() + b">\r\nRCPT TO:<" + rcpt.encode() + b">\r\nDATA\r\n"
               + message(token, rcpt, sender) + b".\r\nQUIT\r\n")
    await client.send_raw(payload, "MAIL, RCPT, DATA, message, '.', QUIT in one write")
    client.stage = "DATA"
    replies, ended = await _read_until_quit(client)
    client.usable = False
    client.guard.end_of_data()
    for index, stage in ((0, "MAIL"), (1, "RCPT")):
        if len(replies) <= index:
            return Outcome(INCONCLUSIVE, "no reply to %s (%s)" % (stage, ended), stage=stage)
        reply = replies[index]
        if reply.code == 421 or classify(reply) not in (ACCEPTED, TRANSIENT):
            return Outcome(INCONCLUSIVE, "not exercised: %s refused (%s)" % (stage, describe(reply)), reply, stage)
        if classify(reply) == TRANSIENT:
            return transient("temporary %s reply: %s" % (stage, describe(reply)), reply, stage)
    if len(replies) == 2:
        if ended == "closed":
            return Outcome(PASS, "disconnected instead of answering the pipelined DATA", replies[1], "DATA")
        return Outcome(INCONCLUSIVE, "no reply to DATA (%s)" % ended, replies[1], "DATA")
    data = replies[2]
    if data.code // 100 == 5 or data.code == 421:
        return Outcome(PASS, "DATA-not-last pipelining refused: %s" % describe(data), data, "DATA")
    if data.code == 354 and len(replies) > 3:
        end = replies[3]
        if end.code // 100 == 2:
            return Outcome(WARN, "message sent without waiting for 354 was accepted (unauthenticated pipelining)",
                           end, "EOD")
        if end.code // 100 == 5 or end.code == 421:
            return Outcome(PASS, "pipelined message refused: %s" % describe(end), end, "EOD")
    return Outcome(INCONCLUSIVE, "unexpected replies: %s" % ", ".join(str(r.code) for r in replies), data, "DATA")


async def t19_xclient(ctx, client):
    if "XCLIENT" not in client.extensions:
        return Outcome(PASS, "XCLIENT not advertised", client.ehlo_reply, "EHLO")
    reply = await client.command("XCLIENT ADDR=127.0.0.1", stage="XCLIENT")
    if reply.code // 100 in (2, 3):
        client.usable = False   # the session now runs under a forged identity: never reuse it
        return Outcome(FAIL, "XCLIENT accepted from this client: %s" % describe(reply), reply, "XCLIENT")
    if reply.code // 100 == 4:
        return transient("temporary XCLIENT reply: %s" % describe(reply), reply, "XCLIENT")
    return Outcome(PASS, "XCLIENT refused: %s" % describe(reply), reply, "XCLIENT")


async def t19_proxy(ctx, client):
    v6 = ":" in ctx.address
    header = "PROXY %s %s %s 40000 %d\r\n" % ("TCP6" if v6 else "TCP4", "::1" if v6 else "127.0.0.1",
                                              ctx.address, ctx.listener.port)
    try:
        client = await ctx.connect(implicit_tls=ctx.listener.tls == "implicit", preface=header.encode())
    except Closed:
        return Outcome(PASS, "connection closed after the PROXY header", stage="PROXY")
    banner = client.banner
    if banner.code // 100 != 2:
        return Outcome(PASS, "PROXY header refused at the greeting: %s" % describe(banner), banner, "PROXY")
    try:
        reply = await client.command("QUIT", stage="PROXY")
    except Closed:
        return Outcome(PASS, "connection closed after the PROXY header", banner, "PROXY")
    client.usable = False
    if reply.code == 221:
        return Outcome(FAIL, "PROXY header accepted as client identity (no error for it)", reply, "PROXY")
    return Outcome(PASS, "PROXY line refused as a command: %s" % describe(reply), reply, "PROXY")


# -- the matrix ----------------------------------------------------------------------------
def build_cases(ctx):
    """Every case that applies to this listener, for the selected probes."""
    lst, tgt, want = ctx.listener, ctx.target, ctx.opts.probes
    cases = []

    def add(probe, case, title, expected, kind, run, **kw):
        if probe in want:
            cases.append(Case(probe, case, title, expected, kind, run, **kw))

    mx = lst.role == "mx"
    has_tls = lst.tls != "none"
    relay_kind = ctx.relay_kind
    if mx:
        if lst.tls != "implicit":
            add("T01", "plain", "no AUTH on port %d (plaintext EHLO)" % lst.port, "no AUTH", "plain", t01, cost=0)
            add("T02", "plain", "AUTH refused on port %d (plaintext)" % lst.port, "refused", "plain", t02, syntax_risk=True)
        if has_tls:
            add("T01", "tls", "no AUTH on port %d after TLS" % lst.port, "no AUTH", "secure", t01, cost=0, no_tls=FAIL)
            add("T02", "tls", "AUTH refused on port %d after TLS" % lst.port, "refused", "secure", t02, syntax_risk=True)
    else:
        if lst.tls in ("starttls", "required"):
            add("T03", None, "submission: STARTTLS offered, AUTH only after TLS", "STARTTLS, no AUTH", "plain", t03, cost=0)
            for mech in ("PLAIN", "LOGIN"):
                add("T04", mech, "submission: AUTH %s refused before TLS (dummy credentials)" % mech, "refused",
                    "plain", lambda c, cl, m=mech: t04(c, cl, m), cost=2, syntax_risk=True)
            if lst.relay != "allowed":
                add("T05", None, "submission: MAIL refused before TLS/AUTH", "530", "plain", t05)
        if lst.relay != "allowed":
            add("T06", "auth", "submission: AUTH offered after TLS", "AUTH", relay_kind, t06_auth, cost=0, no_tls=FAIL)
            add("T06", "relay", "submission: unauthenticated relay refused after TLS", "refused", relay_kind,
                t06_relay, cost=3, greeting_refused=PASS)
        add("T08", None, "submission: wrong password refused, MAIL still needs AUTH", "535 then 530", "own", t08,
            credentials="wrong")
        if tgt.auth is None:
            add("T09", None, "submission: authenticated relay", "relayed", "own",
                lambda c, cl: _skip("no test credentials given"))
        elif not has_tls:
            add("T09", None, "submission: authenticated relay", "relayed", "own",
                lambda c, cl: _skip("listener has no TLS: credentials are never sent in cleartext"))
        else:
            add("T09", None, "submission: authenticated relay to the canary", "relayed" if lst.auth_relay else "refused",
                "own", t09, greeting_refused=FAIL, credentials="real")
        if tgt.auth is not None and has_tls and ("T10" in ctx.opts.explicit or lst.sender_login_match):
            cases.append(Case("T10", None, "submission: sender must match the login", "refused", "own", t10,
                              credentials="real"))
    if lst.tls == "implicit":
        add("T07", None, "implicit TLS: handshake before any greeting", "TLS first", "own", t07)

    forms = relay_forms(ctx, ctx.canary_domain if ctx.can_data else ctx.foreign)
    for form in forms:
        if lst.relay == "allowed" and form.pid != "P02":
            continue
        probe = "T12" if form.hack and ctx.can_data else "T11"
        title = "relay %s: %s" % ("allowed" if lst.relay == "allowed" else "refused", form.title)
        # Most error replies the form can earn: a sender trick on MX one (MAIL or RCPT refused);
        # otherwise two (refused MAIL, clean rerun refused at MAIL/RCPT/DATA), three when pipelined (+503).
        cost = 1 if form.sender_trick and mx else (3 if mx and not form.sender_trick else 2)
        add(probe, form.pid, title, lst.relay, relay_kind, lambda c, cl, f=form: relay_form(c, cl, f), cost=cost,
            greeting_refused=FAIL if lst.relay == "allowed" else PASS, syntax_risk=odd_syntax(form))

    if mx:
        domains = list(tgt.local_domains) + list(tgt.relay_domains)
        for index, domain in enumerate(domains):
            mailbox = tgt.test_mailbox if tgt.test_mailbox and tgt.test_mailbox.endswith("@" + domain) else None
            rcpt = mailbox or "postmaster@%s" % domain
            add("T13", domain, "inbound accepted for %s (%s)" % (domain, rcpt), "accepted", relay_kind,
                lambda c, cl, r=rcpt: t13(c, cl, r), cost=2, greeting_refused=FAIL)
            add("T14", domain, "postmaster@%s accepted" % domain, "accepted", relay_kind,
                lambda c, cl, r="postmaster@%s" % domain: t13(c, cl, r), cost=2, greeting_refused=FAIL)
        if domains:
            add("T14", "postmaster", "<postmaster> accepted", "accepted", relay_kind,
                lambda c, cl: t13(c, cl, "postmaster"), cost=2, greeting_refused=FAIL)
        if lst.relay != "allowed":
            home = tgt.local_domains[0] if tgt.local_domains else ctx.host_name
            spoofs = [("mailbox", tgt.test_mailbox or "postmaster@%s" % home),
                      ("null", ""), ("postmaster", "postmaster"), ("localhost", "probe@localhost"),
                      ("literal", "probe@%s" % ctx.literal)]
            for name, sender in spoofs:
                add("T15", name, "sender spoof <%s> cannot relay" % sender, "refused", relay_kind,
                    lambda c, cl, s="<%s>" % sender: t15(c, cl, s), greeting_refused=PASS)
        add("T19", "xclient", "XCLIENT not honoured", "refused", relay_kind, t19_xclient)
        add("T19", "proxy", "PROXY header not honoured", "refused", "own", t19_proxy)

    if lst.tls in ("starttls", "required"):
        add("T16", None, "STARTTLS command injection", "discarded", "plain", t16, ends_session=True)

    smuggle_ok = ctx.can_data and (
        (mx and (tgt.test_mailbox or lst.relay == "allowed"))
        or (not mx and tgt.auth is not None and has_tls and lst.auth_relay))
    if smuggle_ok:
        for name, ending in SMUGGLE_ENDINGS:
            add("T17", name, "SMTP smuggling: fake end of data %s" % name.upper(), "one message", "own",
                lambda c, cl, n=name, e=ending: t17(c, cl, n, e), credentials=None if mx else "real")
        if mx:
            add("T18", None, "DATA-not-last pipelining refused", "refused", "own", t18)
    elif mx or tgt.auth is not None:
        reason = ("no canary (or spool) configured" if not ctx.can_data
                  else "needs test_mailbox on port 25 or credentials on submission")
        for probe in ("T17",) + (("T18",) if mx else ()):
            add(probe, None, "SMTP smuggling / pipelining", "-", "own", lambda c, cl, r=reason: _skip(r))
    return cases


async def _skip(reason):
    return Outcome(SKIP, reason)
