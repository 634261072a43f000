# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canary sink for the mailsec.relay lab: an SMTP server that accepts everything and keeps it.

Every MTA in the lab routes non-local mail here (relayhost / smarthost), so a message that
arrives proves that a relay happened. Each message becomes one file in the spool directory:
a few ``X-Canary-*`` header lines with what the sink saw (client address, HELO, envelope), then
the message bytes exactly as received. Files appear atomically (written to a dot-file, then
renamed), so a reader polling the directory never sees half a message.

Run in the foreground (``canary-sink``) or as a daemon (``canary-sink --daemon``), which
returns only once the listeners are bound and is a no-op when a sink is already running.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import logging
import os
import signal
import sys

from aiosmtpd.smtp import SMTP

LOG = logging.getLogger("canary-sink")


class SpoolHandler:
    """aiosmtpd handler: accept any recipient, write each message to the spool."""

    def __init__(self, spool: str) -> None:
        self.spool = spool
        self._seq = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # A sink must never be the reason a relay looks refused: take every recipient.
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = self.write(session, envelope)
        LOG.info("stored %s from %s <%s> -> %s", name, session.peer[0], envelope.mail_from, ", ".join(envelope.rcpt_tos))
        return "250 OK stored as %s" % name

    def write(self, session, envelope) -> str:
        now = datetime.datetime.now(datetime.timezone.utc)
        name = "%s-%d-%06d.eml" % (now.strftime("%Y%m%dT%H%M%S.%fZ"), os.getpid(), next(self._seq))
        header = [
            "X-Canary-Peer: %s" % session.peer[0],
            "X-Canary-Helo: %s" % (session.host_name or ""),
            "X-Canary-Mail-From: <%s>" % (envelope.mail_from or ""),
        ]
        header += ["X-Canary-Rcpt-To: <%s>" % rcpt for rcpt in envelope.rcpt_tos]
        header.append("X-Canary-Received-At: %s" % now.isoformat())
        tmp = os.path.join(self.spool, "." + name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(("\r\n".join(header) + "\r\n").encode("utf-8", "surrogateescape"))
            fh.write(envelope.original_content or b"")
        os.rename(tmp, os.path.join(self.spool, name))
        return name


async def serve(args, ready_fd: int | None) -> None:
    os.makedirs(args.spool, exist_ok=True)
    handler = SpoolHandler(args.spool)
    loop = asyncio.get_running_loop()
    # asyncio sets IPV6_V6ONLY on the "::" socket, so each family has its own listener and
    # the peer address is never an IPv4-mapped IPv6 address.
    server = await loop.create_server(
        lambda: SMTP(handler, hostname=args.hostname, decode_data=False, data_size_limit=args.max_size, enable_SMTPUTF8=True), host=args.listen, port=args.port
    )
    LOG.info("listening on %s port %d, spool %s", ", ".join(args.listen), args.port, args.spool)
    if ready_fd is not None:
        os.write(ready_fd, b"ok")
        os.close(ready_fd)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def running_pid(pidfile: str) -> int | None:
    try:
        with open(pidfile) as fh:
            pid = int(fh.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def daemonize(args) -> None:
    """Fork; the parent exits 0 once the child is listening, 1 if the child failed to bind."""
    if running_pid(args.pidfile):
        print("canary-sink already running (pid %d)" % running_pid(args.pidfile))
        sys.exit(0)
    read_fd, write_fd = os.pipe()
    if os.fork():
        os.close(write_fd)
        ok = os.read(read_fd, 2) == b"ok"
        print("canary-sink started" if ok else "canary-sink failed: see %s" % args.logfile)
        sys.exit(0 if ok else 1)
    os.close(read_fd)
    os.setsid()
    if os.fork():
        os._exit(0)
    with open(args.pidfile, "w") as fh:
        fh.write("%d\n" % os.getpid())
    log = os.open(args.logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        asyncio.run(serve(args, write_fd))
    finally:
        os.unlink(args.pidfile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", action="append", help="address to bind (repeatable; default 0.0.0.0 and ::)")
    parser.add_argument("--port", type=int, default=25)
    parser.add_argument("--spool", default="/var/spool/canary")
    parser.add_argument("--hostname", default="sink.canary.test")
    parser.add_argument("--max-size", type=int, default=10 * 1024 * 1024)
    parser.add_argument("--daemon", action="store_true")
    parser.add_argument("--pidfile", default="/run/canary-sink.pid")
    parser.add_argument("--logfile", default="/var/log/canary-sink.log")
    args = parser.parse_args()
    args.listen = args.listen or ["0.0.0.0", "::"]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    if args.daemon:
        daemonize(args)
    else:
        asyncio.run(serve(args, None))


if __name__ == "__main__":
    main()
