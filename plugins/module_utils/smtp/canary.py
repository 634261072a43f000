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


class CanaryWatcher:
    def __init__(self, spool: str, poll: float = 0.05, max_bytes: int = 1 << 20) -> None:
        self.spool = spool
        self.poll = poll
        self.max_bytes = max_bytes
        self.since = time.time() - 5  # files older than the run cannot hold this run's tokens
        self._seen = set()
        self._texts = []
        self._last_scan = 0.0

    def usable(self) -> bool:
        return bool(self.spool) and os.path.isdir(self.spool) and os.access(self.spool, os.R_OK | os.X_OK)

    def _scan(self) -> None:
        now = time.monotonic()
        if now - self._last_scan < self.poll / 2:
            return
        self._last_scan = now
        try:
            names = os.listdir(self.spool)
        except OSError:
            return
        for name in names:
            if name.startswith(".") or name in self._seen:
                continue
            path = os.path.join(self.spool, name)
            try:
                if os.stat(path).st_mtime < self.since:
                    self._seen.add(name)
                    continue
                with open(path, "rb") as handle:
                    self._texts.append(handle.read(self.max_bytes).decode("latin-1"))
            except OSError:
                continue
            self._seen.add(name)

    def find(self, token: str, unless: str = None):
        """The first stored message holding ``token`` (and not ``unless``), or None."""
        self._scan()
        for text in self._texts:
            if token in text and (unless is None or unless not in text):
                return text
        return None

    async def wait(self, token: str, seconds: float, unless: str = None):
        deadline = time.monotonic() + max(0.0, seconds)
        while True:
            text = self.find(token, unless)
            if text is not None or time.monotonic() >= deadline:
                return text
            await asyncio.sleep(self.poll)


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
