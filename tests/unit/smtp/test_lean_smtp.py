# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""smtp_fakes/lean_smtp.py, the fleet bench's lightweight endpoint, must answer like FakeHost's hardened
defaults: the engine's results against both are compared case by case."""

from __future__ import annotations

import asyncio
import base64
import re
import ssl

from conftest import PASSWORD

from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine
from smtp_fakes import fakesmtp, hardened_host, lean_smtp

TOKEN = re.compile(r"t\d+[a-z0-9]*-[0-9a-f]{10}")


def _results(outcome, ports):
    """{(listener index, probe, case): what a result says}, random tokens and ports taken out."""
    index = {port: number for number, port in enumerate(ports)}
    table = {}
    for r in outcome["results"]:
        title = r["title"].replace("port %d" % r["port"], "port <%d>" % index[r["port"]])
        table[(index[r["port"]], r["probe"], r["case"])] = (
            r["verdict"],
            r["reply"]["code"],
            r["reply"]["enhanced"],
            TOKEN.sub("T", r["reply"]["text"]),
            r["reply"]["stage"],
            TOKEN.sub("T", r["reason"]),
            title,
            r["expected"],
        )
    return table


def test_lean_host_answers_like_the_fake_host(tls_context):
    async def go():
        fake = fakesmtp.FakeHost(tls_context)
        lean = lean_smtp.LeanHost(tls_context, "mx.example.test")
        await fake.start()
        await lean.start()
        try:
            spec = fake.target()
            # without T21: its handshakes change which shared worker takes which case (timing), and with
            # it the connection count; T21 on both servers is compared in test_smtp_hostile.py
            probes = [probe for probe in engine.DEFAULT_PROBES if probe != "T21"]
            fake_out = await engine.run_async({"targets": [spec], "timeout": 2, "retry_delay": 0.05, "probes": probes})
            for listener, server in zip(spec["listeners"], lean.servers):
                listener["port"] = server.port
            lean_out = await engine.run_async({"targets": [spec], "timeout": 2, "retry_delay": 0.05, "probes": probes})
            return fake_out, lean_out, fake, lean
        finally:
            await fake.stop()
            await lean.stop()

    fake_out, lean_out, fake, lean = asyncio.run(go())
    expected = _results(fake_out, [s.port for s in fake.servers])
    got = _results(lean_out, [s.port for s in lean.servers])
    assert len(expected) > 100
    assert got.keys() == expected.keys()
    assert [key for key in expected if got[key] != expected[key]] == []
    assert lean_out["summary"]["INCONCLUSIVE"] == 0 and lean_out["summary"]["FAIL"] == 0
    # the same number of connections and real TLS handshakes (STARTTLS and implicit) as the fake
    assert [s.connections for s in lean.servers] == [s.connections for s in fake.servers]
    assert sum(s.tls_handshakes for s in lean.servers) == sum(s.tls_handshakes for s in fake.servers) > 0


async def _read_reply(reader):
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), 2)
        assert line.endswith(b"\r\n"), line
        lines.append(line)
        if line[3:4] != b"-":
            return lines


def test_lean_pipelined_group_and_data(tls_context):
    """Replies to a pipelined group in order; DATA only after AUTH on submissions, and an
    unauthenticated DATA that does not end its group is refused and the connection closed."""

    async def go():
        lean = lean_smtp.LeanHost(tls_context, "mx.example.test")
        await lean.start()
        seen = {}
        try:
            client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client.check_hostname = False
            client.verify_mode = ssl.CERT_NONE
            reader, writer = await asyncio.open_connection("127.0.0.1", lean.submissions.port, ssl=client)
            seen["banner"] = await _read_reply(reader)
            writer.write(b"EHLO prober\r\nMAIL FROM:<a@example.net>\r\nNOOP\r\n")
            seen["group"] = [await _read_reply(reader) for unused in range(3)]
            token = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
            writer.write(("AUTH PLAIN %s\r\n" % token).encode())
            seen["auth"] = await _read_reply(reader)
            writer.write(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<x@canary.test>\r\nDATA\r\n")
            seen["data"] = [await _read_reply(reader) for unused in range(3)]
            writer.write(b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
            seen["end"] = [await _read_reply(reader) for unused in range(2)]
            writer.close()

            reader, writer = await asyncio.open_connection("127.0.0.1", lean.mx.port)
            await _read_reply(reader)
            writer.write(b"EHLO prober\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<postmaster@example.test>\r\nDATA\r\nSubject: x\r\n\r\n.\r\n")
            seen["mx"] = [await _read_reply(reader) for unused in range(4)]
            seen["mx_eof"] = await asyncio.wait_for(reader.read(), 2)
            writer.close()
        finally:
            await lean.stop()
        return seen

    seen = asyncio.run(go())
    assert seen["banner"][0].startswith(b"220-mx.example.test ESMTP")
    ehlo, mail, noop = seen["group"]
    assert b"250-AUTH PLAIN LOGIN\r\n" in ehlo and not any(b"STARTTLS" in line for line in ehlo)
    assert mail == [b"530 5.7.0 Authentication required\r\n"] and noop == [b"250 2.0.0 Ok\r\n"]
    assert seen["auth"] == [b"235 2.7.0 Authentication successful\r\n"]
    assert [reply[0][:3] for reply in seen["data"]] == [b"250", b"250", b"354"]
    assert seen["end"] == [[b"250 2.0.0 Ok: queued as FAKE1\r\n"], [b"221 2.0.0 Bye\r\n"]]
    assert [reply[-1][:3] for reply in seen["mx"]] == [b"250", b"250", b"250", b"554"]
    assert seen["mx"][3] == [b"554 5.5.0 Error: SMTP protocol synchronization\r\n"] and seen["mx_eof"] == b""


def test_both_servers_decode_sasl_with_the_shared_host():
    tokens = {
        base64.b64encode(b"\0user@example.test\0" + PASSWORD.encode()).decode(): ("user@example.test", PASSWORD),
        "": (None, None),
        "not base64!": (None, None),
        base64.b64encode(b"only\0one-nul").decode(): (None, None),
        base64.b64encode(b"\xff\xfe").decode(): (None, None),
        " dXNlcg== ": (None, None),
    }
    for token, expected in tokens.items():
        assert hardened_host.decode_plain(token) == expected, token
    assert hardened_host.b64(" dXNlcg== ") == "user" and hardened_host.b64("not base64!") is None
    # Neither server keeps a decoder of its own: both take it from hardened_host.
    for module in (fakesmtp, lean_smtp):
        assert not [name for name in vars(module) if "b64" in name or "decode" in name], module.__name__
