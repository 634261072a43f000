# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The listener check shared by the Postfix and Exim appliers (module_utils/mta_common.py).

An in-process SMTP server on 127.0.0.1 (one thread per test) plays the listener: plain, STARTTLS
or implicit TLS, with the greeting and EHLO reply each test asks for.
"""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from ansible_collections.mailsec.relay.plugins.module_utils import mta_common

EHLO_TLS = b"250-fake.example.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
EHLO_PLAIN = b"250-fake.example.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory):
    """Server-side TLS context with a throwaway self-signed certificate."""
    import datetime

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake.example.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certfile), str(keyfile))
    return context


class FakeListener:
    """Serves ``sessions`` connections one after the other, then stops; records the commands seen."""

    def __init__(
        self,
        greeting=b"220 fake.example.test ESMTP\r\n",
        ehlo=EHLO_TLS,
        tls=None,
        implicit=False,
        starttls_reply=b"220 2.0.0 Ready to start TLS\r\n",
        sessions=1,
        start=True,
    ):
        self.greeting, self.ehlo, self.tls, self.implicit = greeting, ehlo, tls, implicit
        self.starttls_reply = starttls_reply
        self.commands = []
        self.handshakes = 0
        self.errors = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # bound but not listening yet: connections are refused
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, args=(sessions,), daemon=True)
        if start:
            self.start()

    def start(self):
        self.sock.listen(4)
        self.thread.start()

    def _serve(self, sessions):
        try:
            for dummy in range(sessions):
                conn, dummy = self.sock.accept()
                conn.settimeout(10)
                try:
                    self._session(conn)
                finally:
                    conn.close()
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(exc)
        finally:
            self.sock.close()

    def _session(self, conn):
        if self.implicit:
            conn = self.tls.wrap_socket(conn, server_side=True)
            self.handshakes += 1
        conn.sendall(self.greeting)
        reader = conn.makefile("rb")
        while True:
            line = reader.readline()
            if not line:
                return
            command = line.strip().decode("ascii", "replace")
            self.commands.append(command)
            verb = command.split(" ")[0].upper()
            if verb == "EHLO":
                conn.sendall(self.ehlo)
            elif verb == "STARTTLS":
                conn.sendall(self.starttls_reply)
                if self.starttls_reply.startswith(b"220"):
                    reader.close()
                    conn = self.tls.wrap_socket(conn, server_side=True)
                    self.handshakes += 1
                    reader = conn.makefile("rb")
            elif verb == "QUIT":
                try:
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                except OSError:  # the client does not wait for the 221 (nor does a real check)
                    pass
                return
            else:
                conn.sendall(b"502 5.5.2 Error: command not recognized\r\n")

    def join(self):
        self.thread.join(10)
        assert not self.thread.is_alive()


def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ---------------------------------------------------------------------------------------------
# read_reply
# ---------------------------------------------------------------------------------------------


class Lines:
    def __init__(self, data):
        self.lines = data.splitlines(True)

    def readline(self, limit=-1):
        return self.lines.pop(0) if self.lines else b""


def test_read_reply_multiline():
    code, lines = mta_common.read_reply(Lines(b"220-first\r\n220-second\r\n220 last\r\nignored\r\n"))
    assert code == 220 and lines == ["220-first", "220-second", "220 last"]


def test_read_reply_bare_code_and_errors():
    assert mta_common.read_reply(Lines(b"220\r\n")) == (220, ["220"])
    with pytest.raises(mta_common.SMTPCheckError, match="closed without a reply"):
        mta_common.read_reply(Lines(b"220-only a continuation\r\n"))
    with pytest.raises(mta_common.SMTPCheckError, match="not an SMTP reply"):
        mta_common.read_reply(Lines(b"SSH-2.0-OpenSSH_9.2\r\n"))


# ---------------------------------------------------------------------------------------------
# greet
# ---------------------------------------------------------------------------------------------


def test_plain_greeting_then_quit():
    server = FakeListener()
    assert mta_common.greet("127.0.0.1", server.port) == ["220 fake.example.test ESMTP"]
    server.join()
    assert server.commands == ["QUIT"]


def test_greeting_code_must_be_wanted_unless_any_reply_counts():
    server = FakeListener(greeting=b"554 5.7.1 Connection refused by policy\r\n", sessions=2)
    with pytest.raises(mta_common.SMTPCheckError, match="greeting '554 5.7.1"):
        mta_common.greet("127.0.0.1", server.port)
    assert mta_common.greet("127.0.0.1", server.port, codes=None) == ["554 5.7.1 Connection refused by policy"]
    server.join()


def test_starttls_completes_the_handshake(server_tls):
    server = FakeListener(tls=server_tls)
    mta_common.greet("127.0.0.1", server.port, starttls=True)
    server.join()
    assert server.commands == ["EHLO " + mta_common.EHLO_NAME, "STARTTLS", "QUIT"]
    assert server.handshakes == 1 and not server.errors


def test_starttls_not_offered(server_tls):
    server = FakeListener(ehlo=EHLO_PLAIN, tls=server_tls)
    with pytest.raises(mta_common.StartTLSNotOffered):
        mta_common.greet("127.0.0.1", server.port, starttls=True)
    server.join()
    assert "STARTTLS" not in server.commands


def test_starttls_refused(server_tls):
    server = FakeListener(tls=server_tls, starttls_reply=b"454 4.7.0 TLS not available due to local problem\r\n")
    with pytest.raises(mta_common.SMTPCheckError, match="STARTTLS refused: '454"):
        mta_common.greet("127.0.0.1", server.port, starttls=True)
    server.join()


def test_ehlo_refused(server_tls):
    server = FakeListener(tls=server_tls, ehlo=b"554 5.5.1 go away\r\n")
    with pytest.raises(mta_common.SMTPCheckError, match="EHLO refused"):
        mta_common.greet("127.0.0.1", server.port, starttls=True)
    server.join()


def test_implicit_tls(server_tls):
    server = FakeListener(tls=server_tls, implicit=True)
    assert mta_common.greet("127.0.0.1", server.port, implicit_tls=True) == ["220 fake.example.test ESMTP"]
    server.join()
    assert server.handshakes == 1 and server.commands == ["QUIT"]


def test_implicit_tls_against_a_plain_listener_fails():
    server = FakeListener()
    with pytest.raises(ssl.SSLError):
        mta_common.greet("127.0.0.1", server.port, implicit_tls=True, timeout=3)
    server.join()


def test_nothing_listening():
    with pytest.raises(OSError):
        mta_common.greet("127.0.0.1", closed_port(), timeout=2)


# ---------------------------------------------------------------------------------------------
# confirm_all
# ---------------------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_confirm_all_retries_until_each_target_passed_once():
    clock = Clock()
    calls = []

    def check(target):
        calls.append(target)
        if target == "slow" and calls.count("slow") < 3:
            raise ConnectionRefusedError("refused")
        return "ok " + target

    passed, failed = mta_common.confirm_all(["fast", "slow"], check, 10, clock=clock.time, sleep=clock.sleep)
    assert passed == {"fast": "ok fast", "slow": "ok slow"} and failed == {}
    # A target that passed is not checked again.
    assert calls == ["fast", "slow", "slow", "slow"] and clock.sleeps == [0.5, 0.5]


def test_confirm_all_gives_up_at_the_deadline_with_the_last_error():
    clock = Clock()
    attempts = []

    def check(target):
        attempts.append(clock.now)
        raise mta_common.SMTPCheckError("greeting '421 try %d'" % len(attempts))

    passed, failed = mta_common.confirm_all(["a"], check, 2, interval=0.5, clock=clock.time, sleep=clock.sleep)
    assert passed == {} and failed == {"a": "greeting '421 try 5'"}
    assert attempts == [1000.0, 1000.5, 1001.0, 1001.5, 1002.0]


def test_confirm_all_tries_once_even_without_time_and_lets_other_errors_through():
    clock = Clock()
    passed, failed = mta_common.confirm_all(["a"], lambda t: 1, 0, clock=clock.time, sleep=clock.sleep)
    assert passed == {"a": 1} and not failed and not clock.sleeps

    def broken(target):
        raise ValueError("a bug, not a listener problem")

    with pytest.raises(ValueError):
        mta_common.confirm_all(["a"], broken, 5, clock=clock.time, sleep=clock.sleep)


def test_confirm_all_against_a_listener_that_comes_up_late():
    server = FakeListener(start=False)
    target = ("127.0.0.1", server.port)
    attempts = []

    def check(item):
        attempts.append(item)
        if len(attempts) == 3:
            server.start()
        return mta_common.greet(item[0], item[1], timeout=2)

    passed, failed = mta_common.confirm_all([target], check, 5, interval=0.05)
    assert not failed and passed[target] == ["220 fake.example.test ESMTP"] and len(attempts) == 3
    server.join()
