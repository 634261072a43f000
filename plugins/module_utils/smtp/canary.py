# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watch the canary sink's spool (one file per message) for probe tokens.

The probe runs beside the sink (tests/lab/canary_sink.py), so arrival is a file in a local
directory. Files appear atomically (the sink renames dot-files), so a file is read once.
"""

from __future__ import annotations

import asyncio
import os
import re
import time

_RECEIVED_IP = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")


# The nonce that ends every probe token (ProbeContext.token: "t<probe><case>-<10 hex digits>"): the
# spool's messages are indexed by the nonces they hold, so a look-up reads only the messages that may
# hold the token, not every message so far.
_NONCE = re.compile(r"-([0-9a-f]{10})")
_TOKEN_NONCE = re.compile(r"-([0-9a-f]{10})$")


class CanaryWatcher:
    """The canary spool as seen from one run: every message that arrived since shortly before it.

    Waits share one poller: the spool is listed once per ``poll`` seconds while anyone waits (not once
    per wait: 78 waits for messages that never came, over the zoo, each listed the spool and searched
    every message 20 times a second), and a wait ends as soon as its message is there, or at its
    deadline, never earlier: a message that did not arrive is only said so after the whole wait."""

    def __init__(self, spool: str, poll: float = 0.05, max_bytes: int = 1 << 20) -> None:
        self.spool = spool
        self.poll = poll
        self.max_bytes = max_bytes
        self.since = time.time() - 5  # files older than the run cannot hold this run's tokens
        self._seen = set()
        self._texts = []
        self._by_nonce = {}  # nonce -> indexes into _texts, in arrival order
        self._last_scan = 0.0
        self._listed_mtime, self._listed_settled = None, False
        self._waiters = []  # (token, unless, future) of the waits in progress
        self._poller = None

    def usable(self) -> bool:
        return bool(self.spool) and os.path.isdir(self.spool) and os.access(self.spool, os.R_OK | os.X_OK)

    def _scan(self, force: bool = False) -> None:
        """Read the messages that arrived since the last look (at most one look per ``poll / 2``
        unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_scan < self.poll / 2:
            return
        self._last_scan = now
        # A spool that has not changed since the last listing is not listed again (a long-lived sink
        # holds many thousands of files, and listing them 20 times a second cost the event loop more
        # than the probes). A rename in the same timestamp tick as that listing would leave the
        # directory's mtime as it was, so an unchanged mtime counts only when it was already 0.1 s
        # old at the listing; a forced scan (every wait's deadline) always lists.
        try:
            mtime = os.stat(self.spool).st_mtime_ns
        except OSError:
            return
        if not force and mtime == self._listed_mtime and self._listed_settled:
            return
        listed_at = time.time_ns()
        try:
            names = os.listdir(self.spool)
        except OSError:
            return
        self._listed_mtime, self._listed_settled = mtime, listed_at - mtime > 100_000_000
        for name in names:
            if name.startswith(".") or name in self._seen:
                continue
            path = os.path.join(self.spool, name)
            try:
                if os.stat(path).st_mtime < self.since:
                    self._seen.add(name)
                    continue
                with open(path, "rb") as handle:
                    text = handle.read(self.max_bytes).decode("latin-1")
            except OSError:
                continue
            self._seen.add(name)
            index = len(self._texts)
            self._texts.append(text)
            for nonce in set(_NONCE.findall(text)):
                self._by_nonce.setdefault(nonce, []).append(index)

    def _lookup(self, token: str, unless: str = None):
        match = _TOKEN_NONCE.search(token)
        candidates = (self._texts[i] for i in self._by_nonce.get(match.group(1), ())) if match else self._texts
        for text in candidates:
            if token in text and (unless is None or unless not in text):
                return text
        return None

    def find(self, token: str, unless: str = None):
        """The first stored message holding ``token`` (and not ``unless``), or None."""
        self._scan()
        return self._lookup(token, unless)

    async def wait(self, token: str, seconds: float, unless: str = None):
        """The message holding ``token``, as soon as it is in the spool; None after ``seconds``."""
        text = self.find(token, unless)
        if text is not None or seconds <= 0:
            return text
        entry = (token, unless, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll())
        try:
            return await asyncio.wait_for(entry[2], seconds)
        except asyncio.TimeoutError:
            # a last look at the deadline, even just after the poller's: a message that came in
            # between is still in time
            self._scan(force=True)
            return self._lookup(token, unless)
        finally:
            self._waiters.remove(entry)

    async def _poll(self):
        checked = len(self._texts)  # every wait looked at these itself when it began
        while self._waiters:
            await asyncio.sleep(self.poll)
            self._scan()
            if len(self._texts) == checked:
                continue  # (a find() elsewhere may have read the new messages: they count too)
            checked = len(self._texts)
            for token, unless, future in list(self._waiters):
                if not future.done():
                    text = self._lookup(token, unless)
                    if text is not None:
                        future.set_result(text)


def received_client(message: str):
    """Client address the relaying MTA recorded: the first bracketed IP of its Received: header."""
    lines = message.splitlines()
    for index, line in enumerate(lines):
        if line.lower().startswith("received:"):
            header = [line]
            for folded in lines[index + 1 :]:
                if not folded[:1].isspace():
                    break
                header.append(folded)
            match = _RECEIVED_IP.search(" ".join(header))
            return match.group(1) if match else None
    return None
