# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hand checks of a zoo server, independent of the verifier (standard library only).

The ground truth files (tests/zoo/*/truth.yml) were established with this script and with
openssl s_client, never with mailsec.relay's engine. Run it from the zoo prober's network namespace:

  nsenter -t $(podman inspect -f '{{.State.Pid}}' zoo-prober) -n \\
    python3 tests/zoo/handcheck.py 198.51.100.141 587 --starttls --auth zoouser:PASSWORD \\
    'MAIL FROM:<zoouser@postfix-submission.zoo.test>' 'RCPT TO:<x@canary.test>' DATA 'Subject: x' '' body .

Each argument is one line sent after EHLO (and STARTTLS/AUTH); the transcript is printed. '!raw:'
followed by a Python bytes literal sends raw bytes (bare LF tests). --tls-version pins 1.0-1.3.
"""

import argparse
import ast
import base64
import socket
import ssl
import sys
import time

VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1, "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def context(version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # the local OpenSSL must be able to offer old versions
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    return ctx


class Session:
    def __init__(self, sock, wait):
        self.sock, self.wait, self.buf = sock, wait, b""

    def reply(self):
        lines = []
        deadline = time.monotonic() + self.wait
        while True:
            while b"\n" not in self.buf:
                self.sock.settimeout(max(0.1, deadline - time.monotonic()))
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed by the server")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            text = line.decode("utf-8", "replace").rstrip("\r")
            print("<- " + text)
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return int(text[:3]), lines

    def send(self, line, show=None):
        print("-> " + (show or line))
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--implicit", action="store_true", help="TLS before the greeting (465)")
    parser.add_argument("--starttls", action="store_true")
    parser.add_argument("--tls-version", choices=sorted(VERSIONS))
    parser.add_argument("--auth", help="user:password (AUTH PLAIN)")
    parser.add_argument("--wait", type=float, default=15)
    parser.add_argument("lines", nargs="*")
    args = parser.parse_intermixed_args()
    sock = socket.create_connection((args.host, args.port), timeout=args.wait)
    if args.implicit:
        sock = context(args.tls_version).wrap_socket(sock)
        print("** TLS %s %s" % (sock.version(), sock.cipher()[0]))
    session = Session(sock, args.wait)
    session.reply()
    session.send("EHLO prober.zoo.test")
    if args.starttls:
        code = session.send("STARTTLS")[0]
        if code != 220:
            return 1
        session.sock = context(args.tls_version).wrap_socket(session.sock)
        print("** TLS %s %s" % (session.sock.version(), session.sock.cipher()[0]))
        session.send("EHLO prober.zoo.test")
    if args.auth:
        user, password = args.auth.split(":", 1)
        token = base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()
        session.send("AUTH PLAIN " + token, "AUTH PLAIN <%s, password>" % user)
    data = False
    for line in args.lines:
        if line.startswith("!raw:"):
            raw = ast.literal_eval(line[5:])
            print("-> %r" % raw)
            session.sock.sendall(raw)
            try:
                while True:
                    session.reply()
            except (socket.timeout, ConnectionError):
                pass
            continue
        if data:
            print("-> " + line)
            session.sock.sendall(line.encode() + b"\r\n")
            if line == ".":
                data = False
                session.reply()
            continue
        code = session.send(line)[0]
        data = code == 354
    try:
        session.send("QUIT")
    except (OSError, ConnectionError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
