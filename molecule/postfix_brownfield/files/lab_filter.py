#!/usr/bin/python3
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stand-in for amavisd in FILTER_README's advanced content filter: an SMTP server on
127.0.0.1:10024 that adds one header to every message, logs it, and re-injects it on
127.0.0.1:10025. Lab only: loopback, no TLS, no AUTH; it answers 451 when re-injection fails, so
Postfix keeps the message queued (never lost)."""

import asyncio
import os
import smtplib
import sys
import time

LISTEN = ("127.0.0.1", 10024)
REINJECT = ("127.0.0.1", 10025)
LOG = "/var/log/lab-filter.log"
PIDFILE = "/run/lab-filter.pid"
HEADER = b"X-Lab-Content-Filter: scanned by lab-filter on mx.example.test\r\n"


def log(text):
    with open(LOG, "a") as handle:
        handle.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), text))


def reinject(sender, recipients, data):
    with smtplib.SMTP(*REINJECT, timeout=30) as client:
        client.ehlo("lab-filter.mx.example.test")
        client.sendmail(sender, recipients, HEADER + data)


async def session(reader, writer):
    async def reply(line):
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    await reply("220 lab-filter ESMTP")
    sender, recipients = None, []
    while True:
        line = await reader.readline()
        if not line:
            break
        command = line.decode("latin-1").strip()
        verb = command[:4].upper()
        if verb in ("EHLO", "HELO"):
            await reply("250 lab-filter")
        elif verb == "MAIL":
            sender, recipients = command.split(":", 1)[1].strip().split()[0].strip("<>"), []
            await reply("250 2.1.0 Ok")
        elif verb == "RCPT":
            recipients.append(command.split(":", 1)[1].strip().split()[0].strip("<>"))
            await reply("250 2.1.5 Ok")
        elif verb == "DATA":
            await reply("354 End data with <CR><LF>.<CR><LF>")
            lines = []
            while True:
                chunk = await reader.readline()
                if not chunk or chunk in (b".\r\n", b".\n"):
                    break
                lines.append(chunk[1:] if chunk.startswith(b"..") else chunk)
            data = b"".join(lines)
            try:
                await asyncio.get_running_loop().run_in_executor(None, reinject, sender, recipients, data)
            except (OSError, smtplib.SMTPException) as exc:
                log("deferred %s -> %s: %s" % (sender, ",".join(recipients), exc))
                await reply("451 4.3.0 re-injection failed")
            else:
                log("scanned %s -> %s (%d bytes)" % (sender, ",".join(recipients), len(data)))
                await reply("250 2.0.0 Ok: scanned and re-injected")
            sender, recipients = None, []
        elif verb == "RSET":
            sender, recipients = None, []
            await reply("250 2.0.0 Ok")
        elif verb == "NOOP":
            await reply("250 2.0.0 Ok")
        elif verb == "QUIT":
            await reply("221 2.0.0 Bye")
            break
        else:
            await reply("502 5.5.2 Command not recognized")
    writer.close()


async def main():
    server = await asyncio.start_server(session, *LISTEN)
    with open(PIDFILE, "w") as handle:
        handle.write("%d\n" % os.getpid())
    log("listening on %s:%d, re-injecting to %s:%d" % (LISTEN + REINJECT))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
