# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lab smoke test, run inside the prober: banner + EHLO + QUIT on port 25 of each target.

Usage: python3 smoke.py [--wait SECONDS] [--max-banner SECONDS] [--quiet] name=address ...
Prints one line per target address; exits 1 if any target fails. Standard library only, so it
runs in any container with python3 (lab.sh pipes it into `podman exec -i prober python3 -`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import socket
import sys
import time

EHLO_NAME = "prober.example.test"


def read_reply(fh) -> tuple[int, list[str]]:
    """Read one (possibly multi-line) SMTP reply: (code, lines)."""
    lines = []
    while True:
        raw = fh.readline(4096)
        if not raw:
            raise ConnectionError("connection closed")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return int(line[:3]), lines


def connect(address: str, deadline: float, timeout: float) -> tuple[socket.socket, float]:
    """Connect to port 25, retrying refusals until the deadline (daemons may still be starting).

    Returns the socket and the time the successful attempt began, so the banner delay includes
    the TCP handshake and whatever the server does before greeting (client lookups, forks)."""
    while True:
        started = time.monotonic()
        try:
            return socket.create_connection((address, 25), timeout=timeout), started
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def check(name: str, address: str, wait: float, max_banner: float, timeout: float) -> tuple[bool, str]:
    try:
        sock, t0 = connect(address, time.monotonic() + wait, timeout)
    except OSError as exc:
        return False, "connect failed: %s" % exc
    with sock, sock.makefile("rb") as fh:
        try:
            code, banner = read_reply(fh)
            t_banner = time.monotonic() - t0
            if code != 220:
                return False, "banner %s" % banner[0]
            t0 = time.monotonic()
            sock.sendall(b"EHLO " + EHLO_NAME.encode() + b"\r\n")
            code, ehlo = read_reply(fh)
            t_ehlo = time.monotonic() - t0
            if code != 250:
                return False, "EHLO refused: %s" % ehlo[0]
            sock.sendall(b"QUIT\r\n")
            read_reply(fh)
        except (OSError, ConnectionError, ValueError) as exc:
            return False, "session failed: %s" % exc
    extensions = " ".join(line[4:].split()[0] for line in ehlo[1:])
    detail = "banner %.3f s, ehlo %.3f s | %s | %s" % (t_banner, t_ehlo, banner[0][4:], extensions)
    if t_banner > max_banner:
        return False, "banner too slow (limit %.1f s): %s" % (max_banner, detail)
    return True, detail


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait", type=float, default=0, help="retry refused connections this long")
    parser.add_argument("--max-banner", type=float, default=1.0, help="slowest acceptable banner")
    parser.add_argument("--timeout", type=float, default=5)
    parser.add_argument("--quiet", action="store_true", help="print failures only")
    parser.add_argument("targets", nargs="+", metavar="name=address")
    args = parser.parse_args()
    targets = [t.split("=", 1) for t in args.targets]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(targets)) as pool:
        results = list(pool.map(lambda t: check(t[0], t[1], args.wait, args.max_banner, args.timeout), targets))
    failed = 0
    for (name, address), (ok, detail) in zip(targets, results):
        failed += not ok
        if not ok or not args.quiet:
            print("%-8s %-16s %s %s" % (name, address, "OK  " if ok else "FAIL", detail))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
