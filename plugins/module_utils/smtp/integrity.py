# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verdict integrity and secrets, after the probes ran (docs/probe-contract.md, T22 and "Secrets").

* T22 "relay decision verified": a listener whose required relay checks ended INCONCLUSIVE gets
  one result saying so (FAIL by default, WARN with ``unverified: warn``): a host whose relay
  decision rests on nothing never passes.
* ``mask_secrets``: belt and braces behind the client, which never stores replies to AUTH. Every
  form of a password, and every piece of one of at least ``PIECE`` characters a server may have
  echoed (split over lines or replies), is masked in every result, except a piece inside a word
  the run names in public anyway (a domain, host name or address of its targets, the canary
  domain): with the password ``zoo-test-password-1``, ``<probe@canary.zoo.test>`` in a refusal
  stays evidence instead of becoming ``<probe@canary.zoo.****>``, and tells nothing of the
  password, as the plan and the report show that domain anyway.
"""

from __future__ import annotations

import re

from .probes import FAIL, INCONCLUSIVE, WARN

UNVERIFIED_MODES = ("fail", "warn")
UNVERIFIED = "T22"
# The relay checks a listener's relay decision rests on: the plain third-party relay form, MAIL
# before TLS/AUTH on submission, unauthenticated relay after TLS, and their per-vantage summary.
REQUIRED = (("T11", "P02"), ("T05", None), ("T06", "relay"))
PIECE = 4
MASK = "****"
# A word of a host name, domain or address: a password piece inside one the run names in public is
# no secret there.
_WORD = re.compile(r"[A-Za-z0-9._+-]+")


def _required(result):
    return (result["probe"], result["case"]) in REQUIRED or result["probe"] == "T20"


def unverified_results(results, opts):
    """One T22 result per listener whose required relay checks include an INCONCLUSIVE."""
    groups = {}
    for result in results:
        groups.setdefault((result["target"], result["address"], result["port"]), []).append(result)
    added = []
    for (name, address, port), group in groups.items():
        if any(r["probe"] == "T00" and r["verdict"] == FAIL for r in group):
            continue  # an unreachable listener already fails (T00); its relay checks were never run
        open_checks = [r for r in group if _required(r) and r["verdict"] == INCONCLUSIVE]
        if not open_checks:
            continue
        verdict = WARN if opts.unverified == "warn" else FAIL
        first = open_checks[0]
        added.append(
            {
                "target": name,
                "address": address,
                "port": port,
                "probe": UNVERIFIED,
                "case": None,
                "title": "relay decision verified",
                "verdict": verdict,
                "expected": "a verdict for every required relay check",
                "reason": "relay decision unverified: %s"
                % "; ".join("%s%s INCONCLUSIVE (%s)" % (r["probe"], "/" + r["case"] if r["case"] else "", r["reason"]) for r in open_checks),
                "reply": dict(first["reply"]),
                "transcript": [],
                "client_seen": first["client_seen"],
                "duration": 0.0,
                "vantage": opts.vantage,
                "source_address": first["source_address"],
                "finding": "unverified",
                "severity": "high" if verdict == FAIL else "medium",
            }
        )
    return added


def _public_word(word):
    return word.strip(".").lower()  # a host name's final dot, a sentence's full stop


class _Masker:
    def __init__(self, secrets, public=()):
        self.forms = sorted(set(s for s in secrets if s), key=len, reverse=True)
        self.pieces = set(form[i : i + PIECE] for form in self.forms for i in range(len(form) - PIECE + 1))
        # whole words only, without case (domains and host names): "test" alone is no public word
        # where "example.test" is one, so a piece echoed on its own stays masked
        self.public = set(_public_word(word) for text in public if text for word in _WORD.findall(str(text)))
        self.seen = {}

    def _public_words(self, text, hit):
        """Clear the hits inside words the run names in public (module docstring)."""
        for word in _WORD.finditer(text):
            start, end = word.span()
            if any(hit[start:end]) and _public_word(word.group()) in self.public:
                hit[start:end] = [False] * (end - start)

    def __call__(self, text, pieces=True):
        if not text or not isinstance(text, str):
            return text
        known = self.seen.get(text) if pieces else None
        if known is not None:
            return known
        masked = text
        for form in self.forms:
            if form in masked:
                masked = masked.replace(form, MASK)
        if pieces and any(piece in masked for piece in self.pieces):
            hit = [False] * len(masked)
            for index in range(len(masked) - PIECE + 1):
                if masked[index : index + PIECE] in self.pieces:
                    hit[index : index + PIECE] = [True] * PIECE
            if self.public:
                self._public_words(masked, hit)
            out, index = [], 0
            while index < len(masked):
                if hit[index]:
                    while index < len(masked) and hit[index]:
                        index += 1
                    out.append(MASK)
                else:
                    out.append(masked[index])
                    index += 1
            masked = "".join(out)
        if pieces and len(self.seen) < 10000:
            self.seen[text] = masked
        return masked


def mask_secrets(results, secrets, public=()):
    """Mask every password form and piece (>= PIECE characters) in every text of every result;
    ``public``: what the run names in public anyway (its targets' names, domains and addresses),
    inside whose words a piece is left as it is."""
    mask = _Masker(secrets, public)
    if not mask.forms:
        return
    for result in results:
        # title and expected are the engine's words about the caller's input: whole forms only
        for key in ("title", "expected"):
            result[key] = mask(result.get(key), pieces=False)
        result["reason"] = mask(result.get("reason"))
        reply = result.get("reply")
        if isinstance(reply, dict):
            reply["text"] = mask(reply.get("text"))
        result["transcript"] = [mask(line) for line in result.get("transcript") or []]
