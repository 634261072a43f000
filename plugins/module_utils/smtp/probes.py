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

import re
from dataclasses import dataclass, field

from .client import Closed, ReadTimeout, SMTPError, TLSFailed
from .reply import ACCEPTED, NON_RELAY, REFUSED, TRANSIENT, classify, is_auth_required, is_policy_refusal, is_temporary_relay_refusal
from .safety import DUMMY_CREDENTIALS, Credentials, envelope_address

PASS, FAIL, WARN, INCONCLUSIVE, SKIP = "PASS", "FAIL", "WARN", "INCONCLUSIVE", "SKIP"

# T00 (listener reachable) is not a case: the engine checks it once per listener, always.
# T21 (TLS versions and suites) lives in tlsprobe.py; T22 (relay decision verified) is derived;
# T23: hosted recipients that must be refused (issue 15).
# T24/T25 (issue 14): per-login sender rate limit and AUTH attempts per client; they run only where
# the target names the limit (sender_rate_limit, auth_attempt_limit), see rate_limit_spec.
ALL_PROBES = tuple("T%02d" % number for number in range(0, 26))
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
    reply: object = None  # Reply
    stage: str = None
    transient: bool = False  # 4xx / timeout: retry (bounded), then INCONCLUSIVE
    pending: object = None  # async () -> (verdict, text, client_seen), started at once (canary wait)
    client_seen: str = None
    late: object = None  # () -> None or (verdict, text, client_seen), looked at after the run
    evidence: list = None  # transcript of the connection that proved it, when the case opened none
    tag: str = None  # what the evidence was ("confirmed", "unconfirmed", ...): findings.finding_for


@dataclass
class Case:
    probe: str
    case: str
    title: str
    expected: str
    kind: str  # plain | secure | own
    run: object  # async (ctx, client) -> Outcome
    cost: int = 1  # most error replies it can cause (connection error budget); 0: sends nothing
    greeting_refused: str = SKIP  # verdict when the listener refuses this client at the greeting
    no_tls: str = INCONCLUSIVE  # verdict when the listener should do STARTTLS but does not offer it
    args: dict = field(default_factory=dict)
    credentials: str = None  # "real": AUTH with the test account; "wrong": a failed AUTH (see engine)
    syntax_risk: bool = False  # likely a 500-504 reply (Exim drops a connection after 3 of those)
    ends_session: bool = False  # leaves the connection unusable: runs last on a shared connection


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
    sender_trick: bool  # the sender is the trick: a refused MAIL cannot be rerun cleanly
    hack: bool  # RCPT-side trick form (P11-P23): 2xx alone is not proof of relaying


# Trick forms hide the foreign domain behind each of these (shared reference a; issue 11: a backup
# MX whose own name lies outside its relay domain can still percent-hack through that domain).
# Bounded: each name adds five cases, each address six; the error budget and run time follow.
MAX_TRICK_NAMES = 20
MAX_TRICK_LITERALS = 8
HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")


def address_literal(address):
    return "[IPv6:%s]" % address if ":" in address else "[%s]" % address


def greeting_name(reply):
    """The host name a greeting (or EHLO reply) starts with, when it is a plausible one."""
    if reply is None or not reply.lines or reply.code // 100 != 2:
        return None
    words = reply.lines[0].split()
    name = words[0].lower().rstrip(".") if words else ""
    return name if HOSTNAME.match(name) else None


def trick_names(ctx):
    """The configured host name, then every hosted domain (local, then relay), without repeats."""
    names = []
    for name in [ctx.host_name] + list(ctx.target.local_domains) + list(ctx.target.relay_domains):
        if name and name not in names:
            names.append(name)
    return names[:MAX_TRICK_NAMES]


def trick_literals(ctx):
    """This address's literal first, then the target's other addresses."""
    literals = [ctx.literal]
    for address in ctx.target.addresses:
        if address_literal(address) not in literals:
            literals.append(address_literal(address))
    return literals[:MAX_TRICK_LITERALS]


def _variant(pid, value, first):
    """Case id of a form aimed at ``value``: the plain id for the first name/literal."""
    return pid if value == first else "%s@%s" % (pid, value)


def name_forms(ctx, names, C, spoof=(), first_name=None):
    """The forms that name the server by host name (P12, P17, P20, P23), one set per name, and
    P03 (sender spoofs the server's name) for the names in ``spoof`` (hosted domains as senders
    are P04's). The first name's cases keep the plain ids."""
    first_name = first_name or ctx.host_name
    forms = []
    s = "<probe@%s>" % ctx.literal
    for H in names:
        if H in spoof:
            forms.append(
                Form(
                    _variant("P03", H, first_name),
                    "sender spoofs the server name %s" % H,
                    "<probe@%s>" % H,
                    "<%s@%s>" % (ctx.token("T11", "P03"), C),
                    True,
                    False,
                )
            )
        for pid, title, shape in (
            ("P12", "percent hack at %s", "<{l}%{c}@{h}>"),
            ("P17", "double @ at %s", "<{l}@{c}@{h}>"),
            ("P20", "source route through %s", "<@{h}:{l}@{c}>"),
            ("P23", "bang path at %s", "<{c}!{l}@{h}>"),
        ):
            token = ctx.token("T12" if C != ctx.foreign else "T11", pid)
            rcpt = shape.replace("{l}", token).replace("{c}", C).replace("{h}", H)
            forms.append(Form(_variant(pid, H, first_name), title % H, s, rcpt, False, True))
    return forms


def relay_forms(ctx, foreign_hack):
    """P01-P23 for this target; ``foreign_hack`` is the domain every recipient names: the canary
    where one can confirm delivery (so every accepted form can be followed to it), else X."""
    F, C = ctx.foreign, foreign_hack
    IP = ctx.literal

    def r(pid, domain):
        return "%s@%s" % (ctx.token("T11", pid), domain)

    def local(pid):
        return ctx.token("T11" if C == F else "T12", pid)

    forms = [
        Form("P01", "null sender", "<>", "<%s>" % r("P01", C), True, False),
        Form("P02", "plain third-party relay", "<probe@%s>" % F, "<%s>" % r("P02", C), False, False),
    ]
    senders = ["probe@%s" % domain for domain in ctx.target.local_domains[:3]]
    if ctx.target.test_mailbox:
        senders.append(ctx.target.test_mailbox)
    for index, sender in enumerate(senders):
        pid = "P04" + "abcdefgh"[index]
        forms.append(Form(pid, "sender in a local domain (%s)" % sender, "<%s>" % sender, "<%s>" % r(pid, C), True, False))
    for lit in trick_literals(ctx):
        forms.append(Form(_variant("P05", lit, IP), "sender is the target's address literal %s" % lit, "<probe@%s>" % lit, "<%s>" % r("P05", C), True, False))
    forms += [
        Form("P06a", "localhost sender", "<probe@localhost>", "<%s>" % r("P06a", C), True, False),
        Form("P06b", "loopback literal sender", "<probe@[127.0.0.1]>", "<%s>" % r("P06b", C), True, False),
        Form("P07", "unqualified sender", "<nobody>", "<%s>" % r("P07", C), True, False),
        Form("P08", "UUCP bang-path sender", "<%s!probe>" % F, "<%s>" % r("P08", C), True, False),
        Form("P09", "non-bracketed paths", "probe@%s" % F, r("P09", C), True, False),
    ]
    s = "<probe@%s>" % IP
    hacks = [
        ("P13", "quoted local part hiding an @", '<"%s@%s">' % (local("P13"), C)),
        ("P14", "quoted percent form, no domain", '<"%s%%%s">' % (local("P14"), C)),
        ("P18", "trailing @", "<%s@%s@>" % (local("P18"), C)),
        ("P21", "bang-path recipient", "<%s!%s>" % (C, local("P21"))),
    ]
    for lit in trick_literals(ctx):
        hacks += [
            (_variant("P11", lit, IP), "percent hack at the address literal %s" % lit, "<%s%%%s@%s>" % (local("P11"), C, lit)),
            (_variant("P15", lit, IP), "double @ at the literal %s" % lit, "<%s@%s@%s>" % (local("P15"), C, lit)),
            (_variant("P16", lit, IP), "quoted @ local part at the literal %s" % lit, '<"%s@%s"@%s>' % (local("P16"), C, lit)),
            (_variant("P19", lit, IP), "source route through the literal %s" % lit, "<@%s:%s@%s>" % (lit, local("P19"), C)),
            (_variant("P22", lit, IP), "bang path at the literal %s" % lit, "<%s!%s@%s>" % (C, local("P22"), lit)),
        ]
    forms += [Form(pid, title, s, rcpt, False, True) for pid, title, rcpt in hacks]
    forms += name_forms(ctx, trick_names(ctx), C, spoof=(ctx.host_name,))
    forms += extra_forms(ctx, C)
    return forms


# -- user forms (engine option extra_forms) --------------------------------------------------
PLACEHOLDERS = ("canary", "foreign", "domain", "host", "literal", "local")
MAX_EXTRA_FORMS = 32
MAX_TEMPLATE = 200
MAX_VARIANTS = 20
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")
_PLAIN_RCPT = re.compile(r"^<?\{local\}@\{(canary|foreign)\}>?$")


def validate_extra_forms(value):
    """The user's forms as a list of {name, sender, rcpt}; ValueError naming what is wrong.

    Strict: printable ASCII without spaces (no CR, LF, NUL: nothing can start a second command),
    at most 200 characters, known placeholders only, and a recipient that names ``{local}`` (the
    probe's token, so the canary can find the message) and ``{canary}`` or ``{foreign}`` (the
    domain DATA may go to; the safety guard refuses every other)."""
    if value in (None, []):
        return []
    if not isinstance(value, list):
        raise ValueError("extra_forms: must be a list of {sender, rcpt} dicts")
    if len(value) > MAX_EXTRA_FORMS:
        raise ValueError("extra_forms: at most %d forms, not %d" % (MAX_EXTRA_FORMS, len(value)))
    forms = []
    for index, item in enumerate(value):
        where = "extra_forms[%d]" % index
        if not isinstance(item, dict) or set(item) - {"sender", "rcpt", "name"}:
            raise ValueError("%s: must be a dict with sender, rcpt and optionally name" % where)
        form = {}
        for key in ("sender", "rcpt"):
            text = item.get(key)
            if not isinstance(text, str) or not text:
                raise ValueError("%s.%s: must be a non-empty string" % (where, key))
            if len(text) > MAX_TEMPLATE:
                raise ValueError("%s.%s: longer than %d characters" % (where, key, MAX_TEMPLATE))
            if not _PRINTABLE.match(text):
                raise ValueError("%s.%s: only printable ASCII without spaces (no CR, LF, NUL or other control characters)" % (where, key))
            for name in _PLACEHOLDER.findall(text):
                if name not in PLACEHOLDERS:
                    raise ValueError("%s.%s: unknown placeholder {%s} (known: %s)" % (where, key, name, ", ".join("{%s}" % p for p in PLACEHOLDERS)))
            if "{" in _PLACEHOLDER.sub("", text) or "}" in _PLACEHOLDER.sub("", text):
                raise ValueError("%s.%s: unbalanced { or }" % (where, key))
            form[key] = text
        if "{local}" not in form["rcpt"] or not ("{canary}" in form["rcpt"] or "{foreign}" in form["rcpt"]):
            raise ValueError(
                "%s.rcpt: must contain {local} and {canary} or {foreign} (DATA only ever goes to "
                "the canary domain, and the canary finds the message by the probe's token)" % where
            )
        name = item.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 80 or not name.isprintable()):
            raise ValueError("%s.name: a printable string of at most 80 characters" % where)
        form["name"] = name
        forms.append(form)
    return forms


def extra_forms(ctx, C):
    """The user's forms, expanded: {domain} over every hosted domain, {literal} over every address."""
    forms = []
    domains = list(ctx.target.local_domains) + list(ctx.target.relay_domains) or [ctx.host_name]
    for index, spec in enumerate(getattr(ctx.opts, "extra_forms", None) or []):
        pid = "X%02d" % (index + 1)
        both = spec["sender"] + spec["rcpt"]
        choices = [(d, lit) for d in (domains if "{domain}" in both else [None]) for lit in (trick_literals(ctx) if "{literal}" in both else [None])][
            :MAX_VARIANTS
        ]
        hack = not _PLAIN_RCPT.match(spec["rcpt"])
        for domain, lit in choices:
            token = ctx.token("T12" if hack and C != ctx.foreign else "T11", pid)
            values = {"canary": C, "domain": domain, "host": ctx.host_name, "literal": lit, "local": token}
            sender = _PLACEHOLDER.sub(lambda m: ctx.foreign if m.group(1) == "foreign" else values[m.group(1)], spec["sender"])
            rcpt = _PLACEHOLDER.sub(lambda m: C if m.group(1) == "foreign" else values[m.group(1)], spec["rcpt"])
            case = pid + "".join("@%s" % v for v in (domain, lit) if v is not None)
            title = "user form %s%s: %s -> %s" % (pid, " (%s)" % spec["name"] if spec["name"] else "", sender, rcpt)
            forms.append(Form(case, title, sender, rcpt, not hack, hack))
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
    if is_temporary_relay_refusal(reply):
        if expected == "allowed":
            return Outcome(
                FAIL, "relay refused (with a temporary code), but this vantage may relay: %s" % describe(reply), reply, "RCPT", tag="refused_trusted"
            )
        return Outcome(PASS, "relay refused (with a temporary code): %s" % describe(reply), reply, "RCPT")
    if klass == TRANSIENT:
        return transient("temporary refusal at RCPT: %s" % describe(reply), reply, "RCPT")
    if expected == "allowed":
        if klass == ACCEPTED:
            return Outcome(PASS, "relayed as expected from this vantage", reply, "RCPT")
        if klass == NON_RELAY:
            return Outcome(INCONCLUSIVE, "relay control not exercised: address refused (%s)" % describe(reply), reply, "RCPT")
        return Outcome(FAIL, "relay refused, but this vantage may relay: %s" % describe(reply), reply, "RCPT", tag="refused_trusted")
    if klass == ACCEPTED:
        return Outcome(FAIL, "foreign recipient accepted at RCPT: open relay", reply, "RCPT")
    if klass == REFUSED or is_auth_required(reply):
        return Outcome(PASS, "relay refused: %s" % describe(reply), reply, "RCPT")
    if klass == NON_RELAY and hack:
        return Outcome(PASS, "trick form refused as an invalid address: %s" % describe(reply), reply, "RCPT")
    if klass == NON_RELAY:
        return Outcome(INCONCLUSIVE, "relay control not exercised: address/DNS/syntax refusal (%s)" % describe(reply), reply, "RCPT")
    return Outcome(INCONCLUSIVE, "unexpected reply at RCPT: %s" % describe(reply), reply, "RCPT")


def judge_mail_refusal(ctx, reply, expected=None, authenticated=False, trick_sender=False):
    """Verdict when MAIL itself was not accepted (None: MAIL accepted, go on).

    On a submission listener an unauthenticated MAIL refused by policy (530, or 5xx with 5.7.x:
    Postfix's ``554 5.7.1 Sender address rejected: Access denied``) refuses the relay attempt
    (reference d, T06/T11 on 587/465). On an MX listener a sender refusal at MAIL is about the
    sender, not relaying: "not exercised" - unless the sender is what the case tries
    (``trick_sender``: a spoofed local sender, an address literal, no domain), whose permanent
    refusal is the evidence that it cannot relay. After AUTH (T09) any refusal of the account's
    own sender is a refusal of authenticated relay."""
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
            return Outcome(FAIL, "this vantage may relay, but the server wants AUTH: %s" % describe(reply), reply, "MAIL", tag="refused_trusted")
        return Outcome(PASS, "MAIL refused, authentication required: %s" % describe(reply), reply, "MAIL")
    if is_policy_refusal(reply) and ctx.listener.role == "submission" and expected != "allowed":
        return Outcome(PASS, "unauthenticated MAIL refused by policy on a submission listener: %s" % describe(reply), reply, "MAIL")
    if trick_sender and expected != "allowed" and reply.code // 100 == 5:
        return Outcome(PASS, "the trick's own sender is refused at MAIL, so it cannot relay: %s" % describe(reply), reply, "MAIL")
    return Outcome(INCONCLUSIVE, "relay control not exercised: sender refused at MAIL (%s)" % describe(reply), reply, "MAIL")


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
    if not authenticated and verdict is not None and not verdict.transient and sender == "<%s>" % ctx.clean_sender and ctx.state.clean_sender_refused is None:
        ctx.state.clean_sender_refused = mail


# Refusals at MAIL that are about the sender address itself (RFC 5321 4.2.3: 501 syntax error in
# parameters or arguments, 553 mailbox name not allowed): the ones a listener repeats for that sender
# whatever came before in the session (a 503 bad sequence or a 554/550 policy answer may not be).
SENDER_REFUSALS = (501, 553)


def _goes_on_with_clean_sender(verdict, mail):
    """A refusal at MAIL after which a case tries the clean sender (not a temporary one, not 530)."""
    return verdict is not None and not verdict.transient and not is_auth_required(mail) and verdict.verdict in (PASS, INCONCLUSIVE)


async def _transaction(ctx, client, sender, rcpt, *, hack=False, expected=None, retry_sender=None, pipeline=False, authenticated=False, trick_sender=False):
    """MAIL, RCPT; ``pipeline`` sends both in one write where the server pipelines. Only for
    senders a server has no reason to refuse: a refused MAIL costs one more error (the RCPT's
    503, a protocol error to Exim), so the first one ends pipelining on this listener.

    A form's sender this listener refused before (501/553, before AUTH) and whose case went on
    with ``retry_sender`` is not sent again: the case goes to ``retry_sender`` at once, its verdict
    resting on that sender's answer as it would after a fresh refusal (one error reply less per
    form: Exim counts it towards smtp_max_synprot_errors, so each trick form cost a connection)."""
    memo = ctx.state.refused_senders if retry_sender and retry_sender != sender and not authenticated else None
    earlier = memo.get(sender) if memo is not None else None
    if earlier is not None and _goes_on_with_clean_sender(judge_mail_refusal(ctx, earlier, expected, authenticated), earlier):
        mail, rcpt_reply = earlier, None
        verdict = judge_mail_refusal(ctx, mail, expected, authenticated)
        first = "%s, refused before on this listener" % describe(mail)
    else:
        mail, rcpt_reply = await _mail_rcpt(ctx, client, sender, rcpt, pipeline)
        # the trick sender's own refusal decides only where no clean rerun follows (port 25)
        verdict = judge_mail_refusal(ctx, mail, expected, authenticated, trick_sender=trick_sender and not retry_sender)
        _note_clean_sender(ctx, sender, mail, verdict, authenticated)
        first = None
    if retry_sender and retry_sender != sender and _goes_on_with_clean_sender(verdict, mail):
        if memo is not None and first is None and mail.code in SENDER_REFUSALS:
            memo.setdefault(sender, mail)
        known = ctx.state.clean_sender_refused
        if known is not None:
            # Refused before on this listener: judge that answer (asking again would only cost an
            # error reply); the verdict must not depend on which case asked first.
            verdict = judge_mail_refusal(ctx, known, expected, authenticated)
            verdict.text += " (the clean sender %s, refused before on this listener; the form's own sender: %s)" % (retry_sender, first or describe(mail))
        else:
            # The sender may have masked the relay decision: try once more with a clean one (reference c.13).
            if first is None:
                first = describe(mail)
                await client.rset()
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


_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9._+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+")


def message(token, rcpt, sender, extra=""):
    """The probe message. The envelope carries the trick; the headers stay plain RFC 5322
    (a trick sender such as ``probe@[literal]`` or ``<nobody>`` in From: makes Exim's
    header-syntax check refuse at DATA a message it would relay, hiding a real open relay)."""
    header_from = sender if _PLAIN_ADDRESS.fullmatch(sender or "") else "probe@prober.mailsec.test"
    return (
        "From: <%s>\r\nTo: undisclosed-recipients:;\r\nSubject: mailsec.relay probe %s\r\n"
        "Message-ID: <%s@prober.mailsec.test>\r\n\r\nmailsec.relay relay probe, token %s.%s\r\n" % (header_from, token, token, token, extra)
    ).encode()


# -- T01-T04: AUTH placement ---------------------------------------------------------------
async def t01(ctx, client):
    if "AUTH" in client.extensions:
        return Outcome(FAIL, "AUTH advertised on an MX listener: AUTH %s" % client.extensions["AUTH"], client.ehlo_reply, "EHLO")
    if not client.tls_active and ctx.listener.tls in ("starttls", "required") and "STARTTLS" not in client.extensions:
        return Outcome(FAIL, "STARTTLS not offered although the listener should have tls=%s" % ctx.listener.tls, client.ehlo_reply, "EHLO", tag="no_starttls")
    return Outcome(PASS, "no AUTH in the EHLO reply%s" % (" after TLS" if client.tls_active else ""), client.ehlo_reply, "EHLO")


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
        return Outcome(FAIL, "STARTTLS not offered on a submission listener", client.ehlo_reply, "EHLO", tag="no_starttls")
    return Outcome(PASS, "STARTTLS offered, AUTH only after TLS", client.ehlo_reply, "EHLO")


async def t04(ctx, client, mechanism):
    # The mechanism alone, and "*" to its 334: no credentials at all before TLS. A password that
    # fails (even a dummy one) puts the prober's address under Dovecot's auth penalty, and every
    # AUTH the other cases of the address start afterwards, the real ones included, waits 4 s or
    # more (zoo, postfix-auth-before-tls: T09/T17 4-6 s late in one run of two, the run 8.3 s
    # instead of 2.5 s). 334 already says the server takes the exchange in cleartext.
    reply = await client.command("AUTH %s" % mechanism, stage="AUTH", timeout=client.auth_timeout)
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
    if klass == ACCEPTED and ctx.listener.tls == "required":
        # RFC 3207 4: a server that requires TLS answers 530 to every command but NOOP, EHLO,
        # STARTTLS and QUIT before it
        return Outcome(FAIL, "MAIL accepted before TLS on a submission listener that requires TLS", reply, "MAIL")
    if klass == ACCEPTED:
        return await _t05_after_mail(ctx, client)
    if klass == TRANSIENT:
        return transient("temporary MAIL reply: %s" % describe(reply), reply, "MAIL")
    if is_auth_required(reply) or klass == REFUSED:
        return Outcome(PASS, "MAIL refused before TLS/AUTH: %s" % describe(reply), reply, "MAIL")
    return Outcome(INCONCLUSIVE, "control not exercised: %s" % describe(reply), reply, "MAIL")


async def _t05_after_mail(ctx, client):
    """TLS optional here (tls: starttls): RFC 6409 4.3 asks for 530 at MAIL before AUTH, but what
    matters is what the server then allows; the relay refused at RCPT (or DATA) is a refusal, as
    for T08. A foreign recipient accepted in cleartext without AUTH is followed to the canary."""
    rcpt = "<%s@%s>" % (ctx.token("T05", ""), ctx.rcpt_domain)
    reply = await client.rcpt(rcpt)
    outcome = judge_rcpt(ctx, reply, expected="refused")
    if outcome.verdict == PASS:
        outcome.text = "MAIL accepted before TLS/AUTH (RFC 6409 4.3 asks for 530), relay then refused at RCPT: %s" % (describe(reply))
        return outcome
    if outcome.verdict != FAIL:
        return outcome
    return await confirm_relay(ctx, client, "<%s>" % ctx.account_address, rcpt, reply, what="before TLS and AUTH, a foreign recipient")


async def t06_auth(ctx, client):
    if "AUTH" in client.extensions:
        return Outcome(PASS, "AUTH offered after TLS: %s" % client.extensions["AUTH"], client.ehlo_reply, "EHLO")
    if ctx.listener.auth_relay:
        return Outcome(FAIL, "AUTH not offered after TLS although authenticated relay is expected", client.ehlo_reply, "EHLO")
    return Outcome(PASS, "AUTH not offered; no authenticated relay expected here", client.ehlo_reply, "EHLO")


async def t06_relay(ctx, client):
    return await relay_attempt(ctx, client, "<%s>" % ctx.clean_sender, "<%s@%s>" % (ctx.token("T06", "relay"), ctx.rcpt_domain))


async def t07(ctx, client):
    seen = ctx.state.tls_first
    if seen is not None:
        # T00 already connected TLS first and read the greeting inside TLS on this listener: the
        # very check this case makes, on a connection of this run (reuse mode only)
        info, banner, lines = seen
        return Outcome(PASS, "TLS handshake first, greeting inside TLS (%s)" % info, banner, "BANNER", evidence=lines)
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
        return Outcome(FAIL, "wrong password accepted: %s" % describe(reply), reply, "AUTH", tag="wrong_password_accepted")
    if reply.code // 100 == 4:
        return transient("temporary AUTH reply: %s" % describe(reply), reply, "AUTH")
    return await after_failed_auth(ctx, client, reply)


async def after_failed_auth(ctx, client, auth_reply):
    """T08, after the wrong password was refused: judged by what the server then allows. RFC 4954
    leaves the session unauthenticated; whether the relay is refused at MAIL (RFC 6409 4.3's 530),
    at RCPT (Postfix SASL_README: ``smtpd_relay_restrictions = permit_sasl_authenticated, reject``
    answers 250 to MAIL, 554 5.7.1 to RCPT) or at DATA, it is refused: PASS. Only a foreign
    recipient accepted after the failed AUTH is a FAIL (followed to the canary where there is one)."""
    note = "AUTH refused (%s)" % describe(auth_reply)
    if not (auth_reply.code == 535 or auth_reply.enhanced == "5.7.8"):
        note += "; RFC 4954 names 535 5.7.8 for invalid credentials"
    sender = "<%s>" % ctx.account_address
    rcpt = "<%s@%s>" % (ctx.token("T08", ""), ctx.rcpt_domain)
    mail = await client.mail(sender)
    if classify(mail) == TRANSIENT:
        return transient("temporary MAIL reply: %s" % describe(mail), mail, "MAIL")
    if classify(mail) != ACCEPTED:
        return Outcome(PASS, "%s; relay then refused at MAIL: %s" % (note, describe(mail)), mail, "MAIL")
    rcpt_reply = await client.rcpt(rcpt)
    outcome = judge_rcpt(ctx, rcpt_reply, expected="refused")
    if outcome.verdict == PASS:
        outcome.text = "%s; MAIL accepted, relay then refused at RCPT: %s" % (note, describe(rcpt_reply))
        return outcome
    if outcome.verdict != FAIL:
        return outcome
    return await confirm_relay(ctx, client, sender, rcpt, rcpt_reply, what="after a failed AUTH, a foreign recipient")


async def _auth_session(ctx):
    client = await ctx.session("secure")
    if "AUTH" not in client.extensions:
        return client, Outcome(FAIL if ctx.listener.auth_relay else PASS, "AUTH not offered after TLS", client.ehlo_reply, "EHLO")
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
    outcome, mail, rcpt_reply = await _transaction(
        ctx, client, "<%s>" % ctx.account_address, "<%s>" % rcpt, expected=expected, pipeline=True, authenticated=True
    )
    if expected == "refused" and outcome.verdict == FAIL:
        outcome.tag = "auth_unexpected"
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
    return await relay_attempt(ctx, client, form.sender, form.rcpt, hack=form.hack, retry_sender=retry, pipeline=pipeline, trick_sender=form.sender_trick)


async def relay_attempt(ctx, client, sender, rcpt, *, hack=False, retry_sender=None, pipeline=False, trick_sender=False):
    """One unauthenticated relay attempt, judged on evidence: a refusal at MAIL, RCPT or DATA is a
    refusal; an accepted foreign recipient is followed to the canary (confirm_relay).
    ``trick_sender``: the sender is what the case tries (judge_mail_refusal)."""
    outcome, unused_mail, rcpt_reply = await _transaction(
        ctx, client, sender, rcpt, hack=hack, retry_sender=retry_sender, pipeline=pipeline, trick_sender=trick_sender
    )
    if rcpt_reply is None or classify(rcpt_reply) != ACCEPTED or ctx.listener.relay == "allowed" or outcome.verdict != FAIL:
        return outcome
    return await confirm_relay(ctx, client, sender, rcpt, rcpt_reply, hack=hack)


async def confirm_relay(ctx, client, sender, rcpt, rcpt_reply, *, hack=False, what="foreign recipient"):
    """A foreign recipient was accepted at RCPT where the relay should have been refused. RCPT
    acceptance is not delivery (accept-then-bounce/drop, shared reference b): where the canary can
    receive, the message goes there and only its arrival makes an open relay. Without a canary,
    acceptance is an unconfirmed open relay (FAIL); a trick form, which a server may take
    as a strange local part (OpenSMTPD #754), is a warning."""
    address = envelope_address(rcpt)
    refusal = ctx.policy.data_refusal([address], False) if ctx.can_data else "no canary configured"
    if refusal:
        why = refusal if ctx.can_data else "no canary configured to follow the message"
        if hack:
            return Outcome(
                WARN,
                "trick form accepted at RCPT; not confirmed (%s): relay, accept-then-drop or literal local part, backscatter risk" % why,
                rcpt_reply,
                "RCPT",
                tag="trick_unconfirmed",
            )
        return Outcome(FAIL, "%s accepted at RCPT: open relay, unconfirmed (%s)" % (what, why), rcpt_reply, "RCPT", tag="unconfirmed")
    token = ctx.localpart(address)
    first, final = await client.data(message(token, address, envelope_address(sender)))
    last = final or first
    stage = "DATA" if final is None else "EOD"
    if classify(last) == TRANSIENT:
        return transient("temporary reply to the message: %s" % describe(last), last, stage)
    if final is None or classify(final) != ACCEPTED:
        return Outcome(PASS, "accepted at RCPT, message refused at %s: %s" % (stage, describe(last)), last, stage)
    wait = ctx.opts.canary_wait

    async def confirm():
        text = await ctx.canary.wait(token, wait)
        if text is not None:
            return (FAIL, "confirmed open relay: %s accepted and the message reached the canary" % what, ctx.received_client(text), "confirmed")
        if hack:
            # a trick recipient taken as a strange local part of the server's own domain: no
            # recipient validation there (or a catch-all), the accept-then-bounce of a relay attempt
            return (
                WARN,
                "trick form and message accepted, but not delivered to the canary within %ss: taken as "
                "a local part without recipient validation, or accept-then-drop (backscatter risk)" % wait,
                None,
                "trick_dropped",
            )
        return (
            WARN,
            "%s and message accepted, but not delivered to the canary within %ss: accept-then-drop or accept-then-bounce (backscatter risk)" % (what, wait),
            None,
            "dropped",
        )

    return Outcome(WARN, "accepted, waiting for the canary", final, "EOD", pending=confirm, tag="trick_dropped" if hack else "dropped")


async def _hosted_rcpt(ctx, client, rcpt):
    """MAIL with the clean sender, RCPT to a hosted address: (outcome, None) when MAIL was not
    accepted (the control was not exercised), else (None, the RCPT reply)."""
    mail, reply = await _mail_rcpt(ctx, client, "<%s>" % ctx.clean_sender, "<%s>" % rcpt)
    if classify(mail) == TRANSIENT:
        return transient("temporary MAIL reply: %s" % describe(mail), mail, "MAIL"), None
    if classify(mail) != ACCEPTED:
        return Outcome(INCONCLUSIVE, "control not exercised: sender refused (%s)" % describe(mail), mail, "MAIL"), None
    return None, reply


async def t13(ctx, client, rcpt):
    refused, reply = await _hosted_rcpt(ctx, client, rcpt)
    if refused is not None:
        return refused
    klass = classify(reply)
    if klass == ACCEPTED:
        return Outcome(PASS, "inbound mail accepted", reply, "RCPT")
    if is_temporary_relay_refusal(reply):
        # the server takes its own domain for a foreign one; the 4xx only defers the bounce
        return Outcome(FAIL, "inbound mail for a hosted domain refused as relaying (temporary code): %s" % describe(reply), reply, "RCPT")
    if klass == TRANSIENT:
        return transient("temporary RCPT reply (greylisting?): %s" % describe(reply), reply, "RCPT")
    return Outcome(FAIL, "inbound mail for a hosted domain refused: %s" % describe(reply), reply, "RCPT")


async def t15(ctx, client, sender):
    rcpt = "<%s@%s>" % (ctx.token("T15", "s"), ctx.rcpt_domain)
    return await relay_attempt(ctx, client, sender, rcpt, trick_sender=True)  # the spoofed sender is the question


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
        return Outcome(FAIL, "plaintext NOOP pipelined with STARTTLS was answered inside TLS (CVE-2011-0411 class)", quit_reply, "TLS")
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
    smuggled_part = (
        b"MAIL FROM:<"
        + sender.encode()
        + b">\r\nRCPT TO:<"
        + smuggled_rcpt.encode()
        + b">\r\nDATA\r\n"
        + message(smuggled, smuggled_rcpt, sender)
        + b".\r\nQUIT\r\n"
    )
    # Two writes: the body up to the fake end, then the smuggled commands. Without PIPELINING
    # (RFC 2920) a client sends the next command only after the reply to the last one, and a
    # server may take the fake end only when nothing follows it in the segment (OpenSMTPD 6.8:
    # 250 to a fake end alone, "500 Pipelining not supported" with commands behind it): there the
    # smuggled commands wait (bounded) for a reply to the fake end, as an attacker's would. Where
    # no reply comes, the second write is the old single payload's tail and is judged as before.
    await client.send_raw(message(token, rcpt, sender).rstrip(b"\r\n") + ending, "<body, fake end %s>" % show(ending))
    client.stage = "EOD"
    pause = 0 if "PIPELINING" in client.extensions else min(ctx.opts.smuggle_wait, client.timeout)
    try:
        early = await _reply_to_fake_end(client, pause)
    except Closed:
        client.guard.end_of_data()
        return Outcome(INCONCLUSIVE, "no reply to the end of data (closed at the fake end %s)" % show(ending), stage="EOD")
    if early is not None and early.code // 100 != 2:
        # refused (or the connection ended) at the fake end: the smuggled commands would only be
        # taken as commands now, so they are not sent
        client.usable = False
        client.guard.end_of_data()
        if classify(early) == TRANSIENT and early.code != 421:
            return transient("temporary reply to the fake end of data %s: %s" % (show(ending), describe(early)), early, "EOD")
        return Outcome(PASS, "message with %s refused: %s" % (show(ending), describe(early)), early, "EOD")
    await client.send_raw(smuggled_part, "<smuggled MAIL/RCPT/DATA + message, CRLF.CRLF, QUIT>")
    replies, ended = await _read_until_quit(client)
    client.usable = False
    client.guard.end_of_data()
    if early is not None:
        # 2xx to the fake end alone, before anything else was sent: the server ended the message
        # there (RFC 5321 4.1.1.4: only CRLF.CRLF ends it); the smuggled commands then ran as such
        later = ", ".join(str(reply.code) for reply in replies if reply.code != 221)
        after = "; the smuggled commands then got %s" % later if later else ""
        return Outcome(
            FAIL,
            "fake end-of-data %s taken as the end: %s to it alone%s" % (show(ending), describe(early), after),
            early,
            "EOD",
        )
    answers = [reply for reply in replies if reply.code != 221]
    if not answers:
        return Outcome(INCONCLUSIVE, "no reply to the end of data (%s)" % ended, stage="EOD")
    first = answers[0]
    if len(answers) > 1 and first.code != 421:
        return Outcome(
            FAIL,
            "fake end-of-data %s taken as the end: %d replies (%s)" % (show(ending), len(answers), ", ".join(str(reply.code) for reply in answers)),
            first,
            "EOD",
        )
    if classify(first) == TRANSIENT and first.code != 421:
        return transient("temporary reply to the message: %s" % describe(first), first, "EOD")
    if first.code // 100 in (4, 5):
        return Outcome(PASS, "message with %s refused: %s" % (show(ending), describe(first)), first, "EOD")
    check = ctx.canary_check(smuggled, unless=token)
    return Outcome(PASS, "one message accepted: %s not taken as end of data" % show(ending), first, "EOD", late=check)


async def _reply_to_fake_end(client, seconds):
    """The server's reply when one comes within ``seconds`` of the fake end, else None (the
    message is still open: the normal case). Closed propagates (no reply at all)."""
    if seconds <= 0:
        return None
    client.log("*** waiting up to %ss for a reply to the fake end alone" % seconds)
    try:
        return await client.read_reply(seconds)
    except ReadTimeout:
        client.usable = True  # no reply yet: what a server still in DATA does
        return None


async def t18(ctx, client):
    client, failed, rcpt = await _smuggle_session(ctx)
    if failed is not None:
        return failed
    sender = ctx.account_address if ctx.listener.role == "submission" else ctx.clean_sender
    token = ctx.token("T18", "")
    payload = b"MAIL FROM:<" + sender.encode() + b">\r\nRCPT TO:<" + rcpt.encode() + b">\r\nDATA\r\n" + message(token, rcpt, sender) + b".\r\nQUIT\r\n"
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
            return Outcome(WARN, "message sent without waiting for 354 was accepted (unauthenticated pipelining)", end, "EOD")
        if end.code // 100 == 5 or end.code == 421:
            return Outcome(PASS, "pipelined message refused: %s" % describe(end), end, "EOD")
    return Outcome(INCONCLUSIVE, "unexpected replies: %s" % ", ".join(str(r.code) for r in replies), data, "DATA")


async def t19_xclient(ctx, client):
    if "XCLIENT" not in client.extensions:
        return Outcome(PASS, "XCLIENT not advertised", client.ehlo_reply, "EHLO")
    reply = await client.command("XCLIENT ADDR=127.0.0.1", stage="XCLIENT")
    if reply.code // 100 in (2, 3):
        client.usable = False  # the session now runs under a forged identity: never reuse it
        return Outcome(FAIL, "XCLIENT accepted from this client: %s" % describe(reply), reply, "XCLIENT")
    if reply.code // 100 == 4:
        return transient("temporary XCLIENT reply: %s" % describe(reply), reply, "XCLIENT")
    return Outcome(PASS, "XCLIENT refused: %s" % describe(reply), reply, "XCLIENT")


async def t19_proxy(ctx, client):
    v6 = ":" in ctx.address
    header = "PROXY %s %s %s 40000 %d\r\n" % ("TCP6" if v6 else "TCP4", "::1" if v6 else "127.0.0.1", ctx.address, ctx.listener.port)
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


# -- T23: hosted recipients that must be refused (issue 15) ---------------------------------
async def t23(ctx, client, rcpt, kind):
    """RCPT for an address the host must refuse: an unknown recipient of a relay domain with recipient
    validation (else: backscatter), or any address of a blocked domain. Never DATA."""
    refused, reply = await _hosted_rcpt(ctx, client, rcpt)
    if refused is not None:
        return refused
    klass = classify(reply)
    if klass == ACCEPTED:
        return Outcome(
            FAIL, "accepted at RCPT, but the policy refuses %s: %s" % (rcpt, describe(reply)), reply, "RCPT", tag=kind
        )  # findings: unknown -> accepts_all_recipients, blocked -> blocked_domain_accepted
    if klass == TRANSIENT:
        return transient("temporary RCPT reply: %s" % describe(reply), reply, "RCPT")
    return Outcome(PASS, "refused at RCPT: %s" % describe(reply), reply, "RCPT")


def t23_cases(ctx, add):
    """One T23 case per address the target must refuse (``refused_recipients``: unknown, blocked)."""
    for item in ctx.target.refused_recipients:
        title = {"unknown": "unknown recipient of a validated relay domain refused", "blocked": "blocked domain refused"}[item["kind"]]
        add(
            "T23",
            "%s:%s" % (item["kind"], item["address"]),
            "%s (%s)" % (title, item["address"]),
            "refused",
            ctx.relay_kind,
            lambda c, cl, r=item["address"], k=item["kind"]: t23(c, cl, r, k),
            cost=2,
            greeting_refused=PASS,
        )


# -- the matrix ----------------------------------------------------------------------------
# -- T24/T25: what an authenticated client may do (issue 14) --------------------------------
# Hard caps whatever the configuration says: these probes send limit + 1 messages or AUTH commands.
RATE_PROBE_CEILING = 100
AUTH_PROBE_CEILING = 100


def rate_limit_spec(spec, where, key):
    """A target's ``sender_rate_limit`` / ``auth_attempt_limit``: {limit, ceiling[, username, password]}.

    None when absent. The probe runs only when 0 < limit <= ceiling (the configured bound on how
    many messages or AUTH commands it may send); ceiling itself is capped (RATE/AUTH_PROBE_CEILING).
    ``skip`` (a reason) makes it a SKIP that says why, without sending anything.
    """
    if spec in (None, {}):
        return None
    if not isinstance(spec, dict):
        raise ValueError("%s.%s: must be a dict {limit, ceiling}" % (where, key))
    cap = RATE_PROBE_CEILING if key == "sender_rate_limit" else AUTH_PROBE_CEILING
    out = {"skip": None}
    if spec.get("skip") not in (None, ""):
        # The caller (roles/verify) decided not to run it and says why: a SKIP with that reason.
        out["skip"] = str(spec["skip"])
        spec = dict(spec, limit=spec.get("limit") or 0)
    for name, default in (("limit", None), ("ceiling", cap)):
        value = spec.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("%s.%s.%s: a whole number, not %r" % (where, key, name, value))
        out[name] = value
    out["ceiling"] = min(out["ceiling"], cap)
    if key == "sender_rate_limit":
        if spec.get("username") and spec.get("password") not in (None, ""):
            out["credentials"] = Credentials(str(spec["username"]), str(spec["password"]), real=True)
        else:
            out["credentials"] = None
    return out


def first_auth_listener(ctx):
    """The limits count per login or per client, not per listener: one listener runs T24/T25."""
    for listener in ctx.target.listeners:
        if listener.role == "submission" and listener.tls != "none" and not getattr(listener, "extra", False):
            return listener
    return None


async def t24(ctx, client):
    """limit + 1 messages to the canary under one login; the limit must refuse one of them.

    The login's earlier traffic in the window counts too, so a refusal before limit + 1 also shows
    the limit in force (PASS, with the count); all accepted is the finding. Refusal may come at
    MAIL, RCPT, DATA or end of data (Exim and Postfix's policy service answer at DATA).
    """
    spec = ctx.target.sender_rate_limit
    limit = spec["limit"]
    client = await ctx.session("secure")
    if "AUTH" not in client.extensions:
        return Outcome(SKIP, "AUTH not offered after TLS", client.ehlo_reply, "EHLO")
    reply = await client.auth("PLAIN", spec["credentials"])
    if reply.code != 235:
        return Outcome(INCONCLUSIVE, "AUTH with the rate-limit test login failed: %s" % describe(reply), reply, "AUTH")
    user = spec["credentials"].username
    home = ctx.target.local_domains[0] if ctx.target.local_domains else ctx.host_name
    sender = "<%s>" % (user if "@" in user else "%s@%s" % (user, home))
    for number in range(1, limit + 2):
        token = ctx.token("T24", "")
        rcpt = "%s@%s" % (token, ctx.canary_domain)
        mail = await client.mail(sender)
        stage, last = "MAIL", mail
        if classify(mail) == ACCEPTED:
            stage, last = "RCPT", await client.rcpt("<%s>" % rcpt)
            if classify(last) == ACCEPTED:
                first, final = await client.data(message(token, rcpt, sender.strip("<>")))
                stage, last = ("DATA", first) if final is None else ("EOD", final)
        if classify(last) != ACCEPTED:
            if number == 1:
                return Outcome(INCONCLUSIVE, "the first message was refused already: %s (throttled earlier in the window?)" % describe(last), last, stage)
            await client.rset()
            return Outcome(
                PASS, "message %d of %d refused after %d accepted (limit %d): %s" % (number, limit + 1, number - 1, limit, describe(last)), last, stage
            )
    return Outcome(FAIL, "all %d messages accepted under one login: the limit of %d is not enforced" % (limit + 1, limit), last, "EOD")


async def t25(ctx, client):
    """AUTH attempts from one client beyond the limit per minute must be throttled.

    One wrong password (never a real credential), then AUTH exchanges cancelled with '*' (RFC 4954
    4): Postfix's anvil and the Exim AUTH ACL count AUTH commands, and a cancelled exchange costs no
    SASL failure delay. Fresh connections every few attempts (servers drop a client after too many
    errors on one). Throttled: a 4xx to AUTH, or the connection closed, at or before limit + 1.
    """
    spec = ctx.target.auth_attempt_limit
    limit, per_connection = spec["limit"], 5
    # Exim's ratelimit is a smoothed rate: a burst decays a little while it is sent, so a limit of
    # 30 per minute may answer the 31st AUTH and refuse the 32nd. A tenth over the limit is allowed.
    tries = limit + 1 + limit // 10
    user = ctx.target.auth.username if ctx.target.auth else DUMMY_CREDENTIALS.username
    wrong = Credentials(user, ctx.wrong_password(), real=False)
    attempt, client, reply = 0, None, None
    while attempt < tries:
        if client is None or not client.usable or attempt % per_connection == 0:
            # (a fresh connection every few attempts: servers drop a client after too many errors)
            if client is not None:
                await client.close()
            client = await ctx.connect(implicit_tls=ctx.listener.tls == "implicit")
            if client.banner.code // 100 == 4:
                return Outcome(PASS, "throttled after %d AUTH attempts: greeting %s" % (attempt, describe(client.banner)), client.banner, "BANNER")
            await client.ehlo()
            if ctx.listener.tls != "implicit":
                await client.starttls()
                await client.ehlo()
            if "AUTH" not in client.extensions:
                return Outcome(SKIP, "AUTH not offered after TLS", client.ehlo_reply, "EHLO")
        attempt += 1
        try:
            if attempt == 1:
                # As T08: the wrong password goes out together with the other wrong-password cases.
                reply = await client.auth_plain_begin(wrong)
                await ctx.before_wrong_auth(wait=reply.code == 334)
                if reply.code == 334:
                    reply = await client.auth_plain_respond(wrong)
            else:
                reply = await client.command("AUTH PLAIN", stage="AUTH", timeout=client.auth_timeout)
                if reply.code == 334:
                    reply = await client.command("*", stage="AUTH", timeout=client.auth_timeout)
        except Closed:
            # Dropped without a reply (a per-connection error limit, not a rate): the next attempt
            # comes on a new connection; only a 4xx says the client is throttled.
            client = None
            continue
        if reply.code // 100 == 2:
            return Outcome(FAIL, "AUTH attempt %d succeeded with a wrong or no password: %s" % (attempt, describe(reply)), reply, "AUTH")
        if reply.code // 100 == 4:
            return Outcome(PASS, "AUTH attempt %d of %d throttled (limit %d): %s" % (attempt, tries, limit, describe(reply)), reply, "AUTH")
    if client is not None:
        await client.close()
    return Outcome(FAIL, "%d AUTH attempts from one client without a throttle (limit %d)" % (tries, limit), reply, "AUTH")


def _limit_skip(spec):
    """Why T24/T25 send nothing for this spec, or None when they may run."""
    if spec.get("skip"):
        return spec["skip"]
    if spec["limit"] <= 0:
        return "no limit given (0): nothing to probe"
    if spec["limit"] > spec["ceiling"]:
        return "limit %d is above the ceiling %d: the probe sends at most the ceiling" % (spec["limit"], spec["ceiling"])
    return None


def limit_cases(ctx, add):
    """T24/T25 on the first submission listener with TLS, where the target names the limits.

    Where one cannot run (no canary, no dedicated login, the limit above the ceiling, or the
    caller's ``skip``) it is a SKIP that says why, never a silent absence or a PASS.
    """
    if first_auth_listener(ctx) is not ctx.listener:
        return
    rate = getattr(ctx.target, "sender_rate_limit", None)
    if rate:
        title = "submission: per-login sender rate limit" + (" (%d messages + 1 to the canary)" % rate["limit"] if rate["limit"] else "")
        why = _limit_skip(rate)
        if why is None and not ctx.can_data:
            why = "no canary: the probe sends messages only to the canary"
        if why is None and rate["credentials"] is None:
            why = "no dedicated login: the probe spends a login's budget for the window"
        if why is not None:
            add("T24", None, title, "refused at the limit", "own", lambda c, cl, w=why: _skip(w))
        else:
            add("T24", None, title, "refused at the limit", "own", t24, credentials="real", cost=3)
    guess = getattr(ctx.target, "auth_attempt_limit", None)
    if guess:
        title = "submission: AUTH attempts per client throttled" + (" (%d + 1)" % guess["limit"] if guess["limit"] else "")
        why = _limit_skip(guess)
        if why is not None:
            add("T25", None, title, "throttled", "own", lambda c, cl, w=why: _skip(w))
        else:
            add("T25", None, title, "throttled", "own", t25, credentials="wrong", cost=5)


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
    extra = getattr(lst, "extra", False)
    if extra:
        # A port found open beside the declared ones: MX semantics (it must not relay, no AUTH before
        # TLS), but no inbound duty and AUTH after TLS allowed (an alternative submission port).
        add("T01", "plain", "no AUTH before TLS on extra port %d" % lst.port, "no AUTH", "plain", t01, cost=0)
        add("T02", "plain", "AUTH refused before TLS on extra port %d" % lst.port, "refused", "plain", t02, syntax_risk=True)
    elif mx:
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
                add(
                    "T04",
                    mech,
                    "submission: AUTH %s refused before TLS (no credentials sent)" % mech,
                    "refused",
                    "plain",
                    lambda c, cl, m=mech: t04(c, cl, m),
                    cost=2,
                    syntax_risk=True,
                )
            if lst.relay != "allowed":
                add("T05", None, "submission: MAIL refused before TLS/AUTH", "530", "plain", t05)
        if lst.relay != "allowed":
            add("T06", "auth", "submission: AUTH offered after TLS", "AUTH", relay_kind, t06_auth, cost=0, no_tls=FAIL)
            add("T06", "relay", "submission: unauthenticated relay refused after TLS", "refused", relay_kind, t06_relay, cost=3, greeting_refused=PASS)
        add("T08", None, "submission: no relay after a wrong password", "refused at AUTH and MAIL/RCPT/DATA", "own", t08, credentials="wrong")
        if tgt.auth is None:
            add("T09", None, "submission: authenticated relay", "relayed", "own", lambda c, cl: _skip("no test credentials given"))
        elif not has_tls:
            add(
                "T09",
                None,
                "submission: authenticated relay",
                "relayed",
                "own",
                lambda c, cl: _skip("listener has no TLS: credentials are never sent in cleartext"),
            )
        else:
            add(
                "T09",
                None,
                "submission: authenticated relay to the canary",
                "relayed" if lst.auth_relay else "refused",
                "own",
                t09,
                greeting_refused=FAIL,
                credentials="real",
            )
        # T10: listed explicitly, or with "all" where the policy binds the sender to the login.
        if "T10" in ctx.opts.explicit or (lst.sender_login_match and ctx.opts.everything):
            title = "submission: sender must match the login"
            if tgt.auth is None:
                cases.append(Case("T10", None, title, "refused", "own", lambda c, cl: _skip("no test credentials given")))
            elif not has_tls:
                cases.append(Case("T10", None, title, "refused", "own", lambda c, cl: _skip("listener has no TLS: credentials are never sent in cleartext")))
            else:
                cases.append(Case("T10", None, title, "refused", "own", t10, credentials="real"))
    if lst.tls == "implicit":
        add("T07", None, "implicit TLS: handshake before any greeting", "TLS first", "own", t07)
    if not mx and not extra:
        limit_cases(ctx, add)

    cases += form_cases(ctx, relay_forms(ctx, ctx.confirm_domain), want)

    if mx:
        # (an extra port has no inbound duty: it may be anything, as long as it does not relay)
        domains = [] if extra else list(tgt.local_domains) + list(tgt.relay_domains)
        for index, domain in enumerate(domains):
            mailbox = tgt.test_mailbox if tgt.test_mailbox and tgt.test_mailbox.endswith("@" + domain) else None
            rcpt = mailbox or "postmaster@%s" % domain
            add(
                "T13",
                domain,
                "inbound accepted for %s (%s)" % (domain, rcpt),
                "accepted",
                relay_kind,
                lambda c, cl, r=rcpt: t13(c, cl, r),
                cost=2,
                greeting_refused=FAIL,
            )
            add(
                "T14",
                domain,
                "postmaster@%s accepted" % domain,
                "accepted",
                relay_kind,
                lambda c, cl, r="postmaster@%s" % domain: t13(c, cl, r),
                cost=2,
                greeting_refused=FAIL,
            )
        if domains:
            add("T14", "postmaster", "<postmaster> accepted", "accepted", relay_kind, lambda c, cl: t13(c, cl, "postmaster"), cost=2, greeting_refused=FAIL)
        if lst.relay != "allowed":
            home = tgt.local_domains[0] if tgt.local_domains else ctx.host_name
            spoofs = [
                ("mailbox", tgt.test_mailbox or "postmaster@%s" % home),
                ("null", ""),
                ("postmaster", "postmaster"),
                ("localhost", "probe@localhost"),
                ("literal", "probe@%s" % ctx.literal),
            ]
            for name, sender in spoofs:
                add(
                    "T15",
                    name,
                    "sender spoof <%s> cannot relay" % sender,
                    "refused",
                    relay_kind,
                    lambda c, cl, s="<%s>" % sender: t15(c, cl, s),
                    greeting_refused=PASS,
                )
        t23_cases(ctx, add)
        add("T19", "xclient", "XCLIENT not honoured", "refused", relay_kind, t19_xclient)
        add("T19", "proxy", "PROXY header not honoured", "refused", "own", t19_proxy)

    if lst.tls in ("starttls", "required"):
        add("T16", None, "STARTTLS command injection", "discarded", "plain", t16, ends_session=True)
    if extra:
        return cases

    smuggle_ok = ctx.can_data and ((mx and (tgt.test_mailbox or lst.relay == "allowed")) or (not mx and tgt.auth is not None and has_tls and lst.auth_relay))
    if smuggle_ok:
        for name, ending in SMUGGLE_ENDINGS:
            add(
                "T17",
                name,
                "SMTP smuggling: fake end of data %s" % name.upper(),
                "one message",
                "own",
                lambda c, cl, n=name, e=ending: t17(c, cl, n, e),
                credentials=None if mx else "real",
            )
        if mx:
            add("T18", None, "DATA-not-last pipelining refused", "refused", "own", t18)
    elif mx or tgt.auth is not None:
        reason = "no canary (or spool) configured" if not ctx.can_data else "needs test_mailbox on port 25 or credentials on submission"
        for probe in ("T17",) + (("T18",) if mx else ()):
            add(probe, None, "SMTP smuggling / pipelining", "-", "own", lambda c, cl, r=reason: _skip(r))
    return cases


def form_cases(ctx, forms, want):
    """The relay cases of address forms (T11; T12 for trick recipients where the canary confirms)."""
    lst = ctx.listener
    mx = lst.role == "mx"
    cases = []
    for form in forms:
        if lst.relay == "allowed" and form.pid != "P02":
            continue
        probe = "T12" if form.hack and ctx.can_data else "T11"
        if probe not in want:
            continue
        title = "relay %s: %s" % ("allowed" if lst.relay == "allowed" else "refused", form.title)
        # Most error replies the form can earn: a sender trick on MX one (MAIL or RCPT refused);
        # otherwise two (refused MAIL, clean rerun refused at MAIL/RCPT/DATA), three when pipelined (+503).
        cost = 1 if form.sender_trick and mx else (3 if mx and not form.sender_trick else 2)
        cases.append(
            Case(
                probe,
                form.pid,
                title,
                lst.relay,
                ctx.relay_kind,
                lambda c, cl, f=form: relay_form(c, cl, f),
                cost=cost,
                greeting_refused=FAIL if lst.relay == "allowed" else PASS,
                syntax_risk=odd_syntax(form),
            )
        )
    return cases


def greeting_cases(ctx, name):
    """Name forms for the host name the server greets with, when it is none of the names the cases
    already use (the engine adds them after T00 has read the greeting)."""
    if not name or name in trick_names(ctx) or ctx.listener.relay == "allowed":
        return []
    return form_cases(ctx, name_forms(ctx, [name], ctx.confirm_domain, spoof=(name,)), ctx.opts.probes)


async def _skip(reason):
    return Outcome(SKIP, reason)
