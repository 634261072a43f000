# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the fake hardened host answers, written once for both fake servers (loopback only).

fakesmtp.py (the tests' server: stream-based, every fault mode) and lean_smtp.py (the fleet
bench's endpoint: one buffered protocol per connection, no faults, less CPU) are two ways of
running the same host. Its defaults, the reply texts, the SASL decoding, which recipients are
local and the TLS material live here, so the two cannot drift apart; tests/unit/smtp/
test_lean_smtp.py still compares the engine's results against both, case by case.

Standard library only (the certificate needs ``cryptography``, imported when one is made).
"""

from __future__ import annotations

import base64
import os
import ssl

HOSTNAME = "mx.example.test"
LOCAL_DOMAINS = ("example.test",)
USERS = {"alice": "s3cret-Pass"}

# Reply texts (Postfix's wording), one place for both servers.
OK = "2.0.0 Ok"
BYE = "2.0.0 Bye"
UNKNOWN = "5.5.2 Error: command not recognized"
NOT_IMPLEMENTED = "5.5.1 Error: command not implemented"
READY_FOR_TLS = "2.0.0 Ready to start TLS"
AUTH_NOT_ENABLED = "5.5.1 Error: authentication not enabled"
AUTH_UNKNOWN_MECHANISM = "5.5.4 Unrecognized authentication type"
AUTH_ABORTED = "5.7.0 Authentication aborted"
AUTH_OK = "2.7.0 Authentication successful"
AUTH_FAILED = "5.7.8 Error: authentication failed"
USERNAME_PROMPT = "VXNlcm5hbWU6"  # base64 "Username:"
PASSWORD_PROMPT = "UGFzc3dvcmQ6"  # base64 "Password:"
MUST_STARTTLS = "5.7.0 Must issue a STARTTLS command first"
AUTH_REQUIRED = "5.7.0 Authentication required"
MAIL_OK = "2.1.0 Ok"
NEED_MAIL = "5.5.1 Error: need MAIL command"
RCPT_OK = "2.1.5 Ok"
BAD_RECIPIENT_SYNTAX = "5.1.3 Bad recipient address syntax"
RELAY_DENIED = "5.7.1 <%s>: Relay access denied"
NO_RECIPIENTS = "5.5.1 Error: no valid recipients"
OUT_OF_SYNC = "5.5.0 Error: SMTP protocol synchronization"
START_DATA = "End data with <CR><LF>.<CR><LF>"
QUEUED = "2.0.0 Ok: queued as FAKE%d"


def reply(code, *lines):
    """One SMTP reply as bytes: every line but the last with '-', CRLF endings."""
    lines = lines or ("",)
    last = len(lines) - 1
    return b"".join(("%d%s%s\r\n" % (code, " " if i == last else "-", text)).encode() for i, text in enumerate(lines))


def banner_lines(hostname):
    """The multi-line greeting (after the code 220)."""
    return ("%s ESMTP fake" % hostname, "this server is fake", "and multi-line")


def ehlo_lines(hostname, peer, starttls, auth, pipelining=True, xclient=False):
    """The EHLO reply's lines: greeting, extensions, ENHANCEDSTATUSCODES last."""
    lines = ["%s Hello [%s]" % (hostname, peer)] + (["PIPELINING"] if pipelining else []) + ["SIZE 10240000", "8BITMIME"]
    if starttls:
        lines.append("STARTTLS")
    if auth:
        lines.append("AUTH PLAIN LOGIN")
    if xclient:
        lines.append("XCLIENT ADDR NAME")
    return lines + ["ENHANCEDSTATUSCODES"]


def b64(text):
    """A base64 SASL line as text, or None when it is not valid base64 of UTF-8."""
    try:
        return base64.b64decode(text.strip(), validate=True).decode("utf-8")
    except Exception:  # noqa: BLE001
        return None


def decode_plain(token):
    """AUTH PLAIN's response -> (user, password), (None, None) when malformed."""
    decoded = b64(token or "")
    if decoded is None or decoded.count("\0") != 2:
        return None, None
    unused_authzid, user, password = decoded.split("\0")
    return user, password


def is_local(address, local_domains):
    """A recipient this host takes without relaying: postmaster, or one @ in a local domain."""
    address = address.strip().strip("<>").lower()
    if address == "postmaster":
        return True
    if address.count("@") != 1 or any(ch in address for ch in '%!":'):
        return False
    return address.rsplit("@", 1)[1] in local_domains


def make_cert(directory, hostname=HOSTNAME):
    """Self-signed EC certificate (fast handshakes) -> (certfile, keyfile)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(certfile, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(keyfile, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return certfile, keyfile


def server_context(certfile, keyfile):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context
