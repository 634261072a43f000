# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SMTP reply parser: multi-line, enhanced codes, classes, and a hypothesis fuzz test."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.mailsec.relay.plugins.module_utils.smtp import reply as R


def test_multiline_reply_with_enhanced_code():
    parsed = R.parse_reply([b"250-mx.example.test Hello\r\n", b"250-PIPELINING\r\n", b"250 AUTH PLAIN LOGIN\r\n"])
    assert parsed.code == 250
    assert parsed.lines == ("mx.example.test Hello", "PIPELINING", "AUTH PLAIN LOGIN")
    assert R.parse_ehlo(parsed) == {"PIPELINING": "", "AUTH": "PLAIN LOGIN"}


@pytest.mark.parametrize(
    "line, code, enhanced, klass",
    [
        (b"554 5.7.1 <x@example.net>: Relay access denied\r\n", 554, "5.7.1", R.REFUSED),
        (b"530 5.7.0 Must issue a STARTTLS command first\r\n", 530, "5.7.0", R.REFUSED),
        (b"501 5.1.3 Bad recipient address syntax\r\n", 501, "5.1.3", R.NON_RELAY),
        (b"550 5.1.1 <u@example.test>: User unknown\r\n", 550, "5.1.1", R.NON_RELAY),
        (b"504 5.5.2 <x>: Helo command rejected\r\n", 504, "5.5.2", R.NON_RELAY),
        (b"550 Relay not permitted\r\n", 550, None, R.REFUSED),
        (b"502 Command not implemented\r\n", 502, None, R.NON_RELAY),
        (b"450 4.2.0 Greylisted\r\n", 450, "4.2.0", R.TRANSIENT),
        (b"250 2.1.5 Ok\r\n", 250, "2.1.5", R.ACCEPTED),
        (b"334 VXNlcm5hbWU6\r\n", 334, None, R.INTERMEDIATE),
        (b"550 4.7.1 class digit disagrees\r\n", 550, None, R.REFUSED),
        (b"250\r\n", 250, None, R.ACCEPTED),
    ],
)
def test_enhanced_codes_and_classes(line, code, enhanced, klass):
    parsed = R.parse_reply([line])
    assert (parsed.code, parsed.enhanced, R.classify(parsed)) == (code, enhanced, klass)


def test_auth_required():
    assert R.is_auth_required(R.parse_reply([b"530 5.7.0 Authentication required\r\n"]))
    assert not R.is_auth_required(R.parse_reply([b"554 5.7.1 Relay access denied\r\n"]))


@pytest.mark.parametrize(
    "line, policy",
    [
        (b"554 5.7.1 <a@b.example>: Sender address rejected: Access denied\r\n", True),
        (b"550 5.7.0 Authentication required\r\n", True),
        (b"553 5.1.8 <a@b.invalid>: Sender address rejected: Domain not found\r\n", False),
        (b"501 <probe@[198.51.100.14]>: domain literals not allowed\r\n", False),  # Exim: no enhanced code
        (b"554 Relay access denied\r\n", False),
        (b"454 4.7.1 try later\r\n", False),
    ],
)
def test_policy_refusal(line, policy):
    assert R.is_policy_refusal(R.parse_reply([line])) is policy


@pytest.mark.parametrize(
    "lines",
    [
        [b"hello world\r\n"],
        [b"250-first\r\n", b"251 second\r\n"],  # mixed codes
        [b"250 done\r\n", b"250 again\r\n"],  # last marker before the end
        [b"250-open\r\n"],  # never finished
        [b"25 short\r\n"],
        [b"250" + b"x" * 10 + b"\r\n"],  # no separator
        [b"220 " + b"x" * (R.MAX_LINE + 10) + b"\r\n"],  # oversized line
        [b"250-x\r\n"] * (R.MAX_LINES + 1) + [b"250 x\r\n"],
        [],
    ],
)
def test_malformed_replies_raise_reply_error(lines):
    with pytest.raises(R.ReplyError):
        R.parse_reply(lines)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=80), min_size=0, max_size=6))
def test_fuzz_parser_only_raises_reply_error(lines):
    try:
        parsed = R.parse_reply(lines)
    except R.ReplyError:
        return
    assert 100 <= parsed.code <= 599
    assert len(parsed.lines) == len(lines)
    R.classify(parsed)
    assert isinstance(parsed.text, str)


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=200, max_value=599), st.lists(_text, min_size=1, max_size=5))
def test_fuzz_round_trip(code, texts):
    wire = R.format_reply(code, texts)
    lines = [line + b"\n" for line in wire.split(b"\n") if line]
    parsed = R.parse_reply(lines)
    assert parsed.code == code
    # (what a server wrote comes back as it may be shown: control characters escaped)
    assert list(parsed.lines) == [R.printable(text.rstrip("\r")) for text in texts]
    assert all(R.is_last_line(line) == (i == len(lines) - 1) for i, line in enumerate(lines))


@pytest.mark.parametrize(
    "line, refused",
    [
        (b"454 4.7.1 <x@example.net>: Relay access denied\r\n", True),  # Debian's defer_unauth_destination
        (b"451 4.7.1 Relay not permitted, try later\r\n", True),
        (b"451 4.7.1 Greylisted, please try again (relay check pending)\r\n", False),
        (b"450 4.2.0 Greylisted\r\n", False),
        (b"421 4.3.2 Service shutting down\r\n", False),
        (b"554 5.7.1 Relay access denied\r\n", False),  # a 5xx is a plain refusal
    ],
)
def test_temporary_relay_refusal(line, refused):
    assert R.is_temporary_relay_refusal(R.parse_reply([line])) is refused


def test_probe_message_headers_stay_plain_whatever_the_envelope_trick():
    from ansible_collections.mailsec.relay.plugins.module_utils.smtp.probes import message

    for sender in ("probe@[198.51.100.9]", "nobody", "example.net!probe", "", "probe@example.net"):
        head = message("tok1", '"r@c.test"@[198.51.100.9]', sender).split(b"\r\n\r\n")[0].decode()
        assert "[" not in head and "!" not in head and '"' not in head
        assert "tok1" in head
    assert b"From: <probe@example.net>" in message("t", "r@c.test", "probe@example.net")


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.builds(
            lambda code, sep, text, end: ("%s%s" % (code, sep)).encode() + text + end,
            st.sampled_from(["250", "554", "199", "600", "099", "25", "2x0", "\uff12\uff15\uff10"]),
            st.sampled_from([" ", "-", "", "x", "\t"]),
            st.binary(max_size=20),
            st.sampled_from([b"\r\n", b"\n", b"", b"\r"]),
        ),
        st.binary(max_size=30),
    )
)
def test_plain_fast_path_agrees_with_split_line(raw):
    """The regex-free path for the usual wire form gives what split_line gives, or leaves it to it."""
    fast = R._split_plain(raw)
    try:
        slow = R.split_line(raw)
    except R.ReplyError:
        assert fast is None
        return
    assert fast is None or fast == slow
    if raw.endswith(b"\r\n") and len(raw) >= 6 and raw[3:4] in (b" ", b"-") and raw[:3].isdigit() and raw[:1] in b"12345":
        assert fast == slow  # the usual form takes the fast path


def test_reply_text_escapes_control_characters_and_bidi_overrides():
    reply = R.parse_reply([b"220-mx \x1b[31mred\x1b[0m\r\n", b"220 ok\ttab \xe2\x80\xae txt\r\n"])
    assert reply.lines == ("mx \\x1b[31mred\\x1b[0m", "ok\ttab \\u202e txt")
    assert "\x1b" not in reply.text and "\u202e" not in reply.text
