# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SMTP replies: multi-line parsing (RFC 5321 4.2.1), enhanced status codes (RFC 3463), reply classes.

Pure functions, no I/O: the client feeds raw lines in, the probes read classes out, and the
hypothesis fuzz test hammers :func:`parse_reply` directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 5321 4.5.3.1.5 allows 512 octets per reply line; real servers stay far below. Bounded so a
# hostile server cannot make the prober buffer without end.
MAX_LINE = 2048
MAX_LINES = 100

_LINE = re.compile(r"^([1-5][0-9][0-9])([ -]?)(.*)$", re.S)
_ENHANCED = re.compile(r"^([245])\.([0-9]{1,3})\.([0-9]{1,3})(?=\s|$)")

# Reply classes of shared reference (d), "Reply classes".
ACCEPTED = "accepted"  # 2xx
INTERMEDIATE = "intermediate"  # 3xx (334 challenge, 354 start input)
TRANSIENT = "transient"  # 4xx: never a pass or a fail
REFUSED = "refused"  # 5xx policy refusal (5.7.x, or no enhanced code and not a syntax code)
NON_RELAY = "non_relay"  # 5.1.x / 5.5.x / 500-504: address, DNS or syntax trouble, says nothing about relaying

_SYNTAX_CODES = (500, 501, 502, 503, 504)

# What a server wrote is shown in results, terminals and reports: its C0/C1 control characters
# (terminal escape sequences among them: ESC [2J clears a screen, ESC ]8 makes a link) and the
# bidirectional overrides that reorder what a reader sees are written as \xNN / \uNNNN instead.
_UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape_char(match):
    code = ord(match.group(0))
    return "\\x%02x" % code if code < 0x100 else "\\u%04x" % code


def printable(text: str) -> str:
    """``text`` with every control character (tab aside) and bidirectional override escaped."""
    return _UNSHOWABLE.sub(_escape_char, text) if _UNSHOWABLE.search(text) else text


class ReplyError(ValueError):
    """The server sent something that is not an SMTP reply."""


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple  # text after "NNN-" / "NNN " of each line, enhanced code included
    enhanced: str | None  # "5.7.1" when the first line starts with an enhanced status code

    @property
    def text(self) -> str:
        """One-line text without the enhanced code (for reports)."""
        parts = []
        for line in self.lines:
            match = _ENHANCED.match(line)
            parts.append(line[match.end() :].strip() if match else line.strip())
        text = " ".join(part for part in parts if part)
        return text if len(text) <= 300 else text[:297] + "..."

    @property
    def klass(self) -> str:
        return classify(self)

    def as_dict(self, stage: str | None = None) -> dict:
        return {"code": self.code, "enhanced": self.enhanced, "text": self.text, "stage": stage}


def split_line(raw) -> tuple:
    """``(code, is_last, text)`` of one reply line (bytes or str, with or without CRLF)."""
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8", "replace")
    line = raw[:-1] if raw.endswith("\n") else raw
    line = line[:-1] if line.endswith("\r") else line
    match = _LINE.match(line)
    if not match:
        raise ReplyError("not an SMTP reply line: %r" % line[:80])
    code, sep, text = match.groups()
    if sep == "" and text:
        raise ReplyError("no separator after the reply code: %r" % line[:80])
    return int(code), sep != "-", printable(text)


def is_last_line(raw: bytes) -> bool:
    """Cheap test the reader uses to know when a reply is complete (malformed lines end it too)."""
    return len(raw) < 4 or raw[3:4] != b"-"


_DIGITS = frozenset(b"0123456789")
_FIRST_DIGITS = frozenset(b"12345")
_SEPARATORS = {0x20: True, 0x2D: False}  # " " ends a reply, "-" continues it


def _split_plain(raw):
    """:func:`split_line` for the usual wire form (bytes ``NNN`` + space or dash + text + CRLF,
    ASCII digits): the same ``(code, is_last, text)`` without a regex; None for any other form,
    which :func:`split_line` then judges."""
    if not isinstance(raw, bytes) or len(raw) < 6 or raw[-2:] != b"\r\n":
        return None
    last = _SEPARATORS.get(raw[3])
    if last is None or raw[0] not in _FIRST_DIGITS or raw[1] not in _DIGITS or raw[2] not in _DIGITS:
        return None
    return int(raw[:3]), last, printable(raw[4:-2].decode("utf-8", "replace"))


def parse_reply(raw_lines) -> Reply:
    """Parse the lines of one reply; every line but the last must be ``NNN-``, all with one code."""
    if not raw_lines:
        raise ReplyError("empty reply")
    if len(raw_lines) == 1 and len(raw_lines[0]) <= MAX_LINE:
        # most replies: one line in the usual form (what the loop below would find, without it)
        plain = _split_plain(raw_lines[0])
        if plain is not None and plain[1]:
            code, unused_last, text = plain
            return Reply(code=code, lines=(text,), enhanced=_enhanced(code, text))
    if len(raw_lines) > MAX_LINES:
        raise ReplyError("reply has more than %d lines" % MAX_LINES)
    code = None
    texts = []
    for index, raw in enumerate(raw_lines):
        if len(raw) > MAX_LINE:
            raise ReplyError("reply line longer than %d bytes" % MAX_LINE)
        line_code, last, text = _split_plain(raw) or split_line(raw)
        if code is None:
            code = line_code
        elif line_code != code:
            raise ReplyError("multi-line reply mixes codes %d and %d" % (code, line_code))
        if last != (index == len(raw_lines) - 1):
            raise ReplyError("continuation marker in the wrong place (line %d)" % (index + 1))
        texts.append(text)
    return Reply(code=code, lines=tuple(texts), enhanced=_enhanced(code, texts[0]))


def _enhanced(code, first_text):
    """The enhanced status code that starts the first line, or None."""
    match = _ENHANCED.match(first_text) if first_text[:1] in ("2", "4", "5") else None
    # RFC 3463: the class digit must agree with the reply code; otherwise it is just text.
    if match and match.group(1) == str(code)[0]:
        return "%s.%s.%s" % match.groups()
    return None


def classify(reply: Reply) -> str:
    first = reply.code // 100
    if first == 2:
        return ACCEPTED
    if first in (1, 3):
        return INTERMEDIATE
    if first == 4:
        return TRANSIENT
    if reply.enhanced:
        subject = reply.enhanced.split(".")[1]
        return NON_RELAY if subject in ("1", "5") else REFUSED
    return NON_RELAY if reply.code in _SYNTAX_CODES else REFUSED


def is_auth_required(reply: Reply) -> bool:
    """530 or 5.7.0 (RFC 4954 6 / RFC 6409 4.3): the server wants AUTH (or TLS) first."""
    return reply.code == 530 or (reply.code // 100 == 5 and reply.enhanced in ("5.7.0", "5.7.11"))


def is_temporary_relay_refusal(reply: Reply) -> bool:
    """A 4xx that refuses the relay itself, only with a temporary code: Debian's stock Postfix ends
    its relay restrictions with ``defer_unauth_destination`` (``454 4.7.1 <r@x>: Relay access
    denied``), so a misconfiguration defers instead of bouncing. The relay was not granted, and a
    retry gets the same answer; greylisting (4.7.1 too, but no relay wording) stays transient."""
    text = (reply.text or "").lower()
    return reply.code // 100 == 4 and "relay" in text and "greylist" not in text and (not reply.enhanced or reply.enhanced.startswith("4.7."))


def is_policy_refusal(reply: Reply) -> bool:
    """5xx with an enhanced code of the security/policy class 5.7.x (RFC 3463 3.8)."""
    return reply.code // 100 == 5 and bool(reply.enhanced) and reply.enhanced.startswith("5.7.")


def format_reply(code: int, lines) -> bytes:
    """Wire form of a reply (used by the fake servers in tests and the bench)."""
    lines = list(lines) or [""]
    out = []
    for index, text in enumerate(lines):
        sep = " " if index == len(lines) - 1 else "-"
        out.append("%03d%s%s\r\n" % (code, sep, text))
    return "".join(out).encode("utf-8")


def parse_ehlo(reply: Reply) -> dict:
    """EHLO keywords (upper case) -> parameter string. Old ``AUTH=PLAIN`` lines count as AUTH."""
    extensions = {}
    for line in reply.lines[1:]:
        words = line.strip().split(None, 1)
        if not words:
            continue
        keyword = words[0].upper()
        params = words[1] if len(words) > 1 else ""
        if keyword.startswith("AUTH="):
            params = (keyword[5:] + " " + params).strip()
            keyword = "AUTH"
        if keyword in extensions and params:
            params = (extensions[keyword] + " " + params).strip()
        extensions[keyword] = params
    return extensions
