# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The safety guard: DATA only to the canary (or the given local mailbox), no real credentials before TLS.

The guard is exercised directly and through a real client against an accept-everything server,
where the server's own record proves that nothing forbidden left the prober.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from conftest import PASSWORD, verdicts

from ansible_collections.mailsec.relay.plugins.module_utils.smtp import client as C
from ansible_collections.mailsec.relay.plugins.module_utils.smtp import safety as S
from smtp_fakes import fakesmtp

OWN = ["mx.example.test", "[127.0.0.1]", "127.0.0.1"]


def policy(canary="canary.test", mailbox=None, creds=()):
    return S.SafetyPolicy(canary, mailbox, OWN, creds)


@pytest.mark.parametrize(
    "address",
    [
        "t09-0123456789@canary.test",
        "<t12p11-0123456789%canary.test@[127.0.0.1]>",
        '<"t12p13-0123456789@canary.test">',
        "<t12p15-0123456789@canary.test@[127.0.0.1]>",
        "<@mx.example.test:t12p20-0123456789@canary.test>",
        "<canary.test!t12p21-0123456789>",
        "<canary.test!t12p23-0123456789@mx.example.test>",
        "t01-0123456789@sub.canary.test",
    ],
)
def test_canary_forms_are_allowed(address):
    assert policy().routes_to_canary(address)


@pytest.mark.parametrize(
    "address",
    [
        "t11p02-0123456789@example.net",
        "postmaster@canary.test",  # not a probe local part
        "<t12p11-0123456789%example.net@[127.0.0.1]>",
        "<t12p15-0123456789@canary.test@[203.0.113.1]>",
        "<example.net!t12p21-0123456789>",
        "<t12p12-0123456789%canary.test@mx.example.net>",
        "t09-0123456789@canary.test.evil.example",
        "t12p11-0123456789@[127.0.0.1]",
        "",
    ],
)
def test_other_forms_are_refused(address):
    assert not policy().routes_to_canary(address)


def test_hosted_domains_are_hops_only_when_the_engine_names_them():
    """The engine passes a target's hosted domains as own names (engine.Target.own_names): the
    percent hack through a backup MX's relay domain may then carry DATA to the canary; a name the
    server only claims (its greeting) is not among them."""
    from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine

    target = engine.Target(
        {"name": "backup", "addresses": ["127.0.0.1"], "hostname": "backup.other.test", "relay_domains": ["relay.test"], "local_domains": ["example.test"]}, 0
    )
    hosted = S.SafetyPolicy("canary.test", None, target.own_names())
    assert hosted.routes_to_canary("<t12p12-0123456789%canary.test@relay.test>")
    assert hosted.routes_to_canary("<t12p17-0123456789@canary.test@example.test>")
    assert not hosted.routes_to_canary("<t12p12-0123456789%canary.test@gw.example.test>")
    assert not hosted.routes_to_canary("<t12p12-0123456789%example.net@relay.test>")
    assert not hosted.routes_to_canary("<t11p02-0123456789@relay.test>")  # no canary named: never DATA


def test_guard_blocks_data_to_a_foreign_recipient():
    guard = policy().guard()
    guard.inspect(b"MAIL FROM:<probe@canary.test>\r\nRCPT TO:<t11p02-0123456789@example.net>\r\n", False)
    with pytest.raises(S.UnsafeProbe):
        guard.inspect(b"DATA\r\n", False)


def test_guard_counts_every_recipient_and_smuggled_ones():
    guard = policy().guard()
    guard.inspect(b"RCPT TO:<t09-0123456789@canary.test>\r\nDATA\r\n", True)
    # a smuggled second transaction inside a body, with bare LF line ends
    with pytest.raises(S.UnsafeProbe):
        guard.inspect(b"body\n.\nMAIL FROM:<x@canary.test>\nRCPT TO:<victim@example.net>\nDATA\n", True)


def test_no_canary_means_no_data_at_all():
    guard = policy(canary=None, mailbox="alice@example.test").guard(allow_local_mailbox=True)
    guard.inspect(b"RCPT TO:<alice@example.test>\r\n", False)
    with pytest.raises(S.UnsafeProbe, match="no canary"):
        guard.inspect(b"DATA\r\n", False)


def test_local_mailbox_only_where_allowed():
    allowed = policy(mailbox="alice@example.test").guard(allow_local_mailbox=True)
    allowed.inspect(b"RCPT TO:<alice@example.test>\r\nDATA\r\n", False)
    denied = policy(mailbox="alice@example.test").guard(allow_local_mailbox=False)
    denied.inspect(b"RCPT TO:<alice@example.test>\r\n", False)
    with pytest.raises(S.UnsafeProbe):
        denied.inspect(b"DATA\r\n", False)


def test_rset_clears_recipients_and_data_without_recipient_is_refused():
    guard = policy().guard()
    guard.inspect(b"RCPT TO:<t11p02-0123456789@example.net>\r\nRSET\r\n", False)
    with pytest.raises(S.UnsafeProbe, match="without a recipient"):
        guard.inspect(b"DATA\r\n", False)


def test_real_credentials_never_before_tls():
    real = S.Credentials("alice", PASSWORD, real=True)
    guard = policy(creds=[real]).guard()
    with pytest.raises(S.UnsafeProbe):
        guard.check_credentials(real, tls_active=False)
    for form in real.secret_forms():
        with pytest.raises(S.UnsafeProbe):
            guard.inspect(("AUTH PLAIN %s\r\n" % form).encode(), tls_active=False)
    guard.check_credentials(real, tls_active=True)
    guard.inspect(("AUTH PLAIN %s\r\n" % real.plain_token()).encode(), tls_active=True)
    guard.check_credentials(S.DUMMY_CREDENTIALS, tls_active=False)
    assert PASSWORD not in repr(real)


def test_client_never_writes_forbidden_bytes(tls_context):
    """Through a real client: blocked writes never reach an accept-everything server."""

    async def go():
        server = fakesmtp.FakeSMTP(fakesmtp.Behaviour(relay="accept", auth_on_mx=True, auth_before_tls=True), tls_context)
        port = await server.start()
        real = S.Credentials("alice", PASSWORD, real=True)
        client = C.SMTPClient("127.0.0.1", port, guard=policy(creds=[real]).guard(), timeout=2)
        await client.connect()
        await client.ehlo()
        with pytest.raises(S.UnsafeProbe):
            await client.auth("PLAIN", real)
        with pytest.raises(S.UnsafeProbe):
            await client.send_raw(("AUTH PLAIN %s\r\n" % real.plain_token()).encode())
        assert (await client.mail("<probe@canary.test>")).code == 250
        assert (await client.rcpt("<t11p02-0123456789@example.net>")).code == 250
        with pytest.raises(S.UnsafeProbe):
            await client.data(b"Subject: must never be sent\r\n\r\nx\r\n")
        with pytest.raises(S.UnsafeProbe):
            await client.command("DATA")
        await client.quit()
        await server.stop()
        return server, client

    server, client = asyncio.run(go())
    assert not any(line.upper().startswith(("AUTH", "DATA")) for line in server.commands), server.commands
    assert server.transactions == []
    assert not any(PASSWORD in line for line in client.transcript)


def _routes_only_to_canary(rcpt, mailbox):
    """Independent of the guard: what a DATA recipient may look like on the server side."""
    bare = rcpt.strip().strip("<>").replace('"', "").lower()
    if bare == mailbox:
        return True
    hosts = re.findall(r"\[[^\]]*\]|[a-z0-9-]+(?:\.[a-z0-9-]+)+", bare)
    # the target's own names: host name, address literal and hosted domain (trick forms hide the
    # canary behind them, e.g. the percent hack of a backup MX through its relay domain)
    return "canary.test" in hosts and set(hosts) <= {"canary.test", "mx.example.test", "[127.0.0.1]", "example.test"}


def test_whole_matrix_against_accept_everything_sends_data_only_to_the_canary(scenario):
    """Every listener accepts everything (relay, AUTH in cleartext, smuggling, pipelining, XCLIENT):
    the matrix must still send DATA only to canary recipients or the given local test mailbox."""
    anything = dict(
        role="mx",
        relay="accept",
        auth_on_mx=True,
        auth_before_tls=True,
        smuggle_vulnerable=True,
        forbid_pipelining=False,
        xclient=True,
        tls_required=False,
        users={"alice": PASSWORD, "probe-invalid@example.invalid": "not-a-valid-password"},
    )
    outcome, host = scenario(mx=anything, submission=anything, submissions=anything)
    data_rcpts = [rcpt for t in host.transactions for rcpt in t["rcpts"]]
    # the smuggled transactions the vulnerable server accepted are in the same record
    assert len(host.transactions) >= 20, "the test must exercise DATA to prove anything"
    bad = [rcpt for rcpt in data_rcpts if not _routes_only_to_canary(rcpt, "alice@example.test")]
    assert bad == []
    # trick forms through every own name were tried, hosted domain included
    assert any("%canary.test@example.test" in c for s in host.servers for c in s.commands if c.startswith("RCPT"))
    assert verdicts(outcome, "T11")[("T11", "P02")] == "FAIL"
    # the dummy credentials are accepted by this server, but real ones never went out in cleartext
    secrets = S.Credentials("alice", PASSWORD, True).secret_forms()
    log = [(tls, line) for server in host.servers for tls, line in server.command_log]
    with_secret = [tls for tls, line in log if any(secret in line for secret in secrets)]
    assert with_secret and all(with_secret), "real credentials are sent (T09), and only inside TLS"
    assert any(not tls and line.upper().startswith("AUTH") for tls, line in log)  # dummy ones before TLS
    assert PASSWORD not in repr(outcome)


def test_without_canary_the_matrix_sends_no_data(scenario):
    outcome, host = scenario(mx=dict(relay="accept", smuggle_vulnerable=True, forbid_pipelining=False), canary=False)
    assert host.transactions == []
    assert not any(c.upper().startswith("DATA") for s in host.servers for c in s.commands)
    assert verdicts(outcome, "T17")[("T17", None)] == "SKIP"


def test_client_never_sends_a_command_with_a_line_break(tls_context):
    """A CR, LF or NUL inside a command (from any caller's value) would start a second command on the
    server: the client refuses the whole write, and the server's record shows nothing of it."""

    async def go():
        server = fakesmtp.FakeSMTP(fakesmtp.Behaviour(relay="accept"), tls_context)
        port = await server.start()
        client = C.SMTPClient("127.0.0.1", port, guard=policy().guard(), timeout=2)
        await client.connect()
        await client.ehlo()
        for line in (
            "MAIL FROM:<probe@canary.test>\r\nVRFY root",
            "RCPT TO:<a@example.test>\nRSET",
            "NOOP\x00VRFY root",
            "MAIL FROM:<probe@ex\u0430mple.test>",
        ):
            with pytest.raises(S.UnsafeProbe, match="line break"):
                await client.command(line)
        assert (await client.command("NOOP")).code == 250  # the session goes on, nothing half-sent
        await client.quit()
        await server.stop()
        return server

    server = asyncio.run(go())
    assert server.commands == ["EHLO prober.mailsec.test", "NOOP", "QUIT"]
