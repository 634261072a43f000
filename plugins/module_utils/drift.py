# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drift: compare the relay policy an MTA really enforces with the desired effective policy.

Both sides have the effective-policy shape of docs/policy-model.md: the desired one comes from
``mailsec.relay.relay_policy`` (fact ``mailsec_relay_effective``), the actual one from
``mailsec.relay.mta_facts`` (``postfix_readback`` / ``exim_readback``).

The comparison is semantic: networks are compared as merged address sets (order, spelling,
``[v6]/n`` brackets, split or merged CIDRs are not drift), domains as sets, listeners by
(address, port). Each finding is ``{host, check, verdict, expected, actual, detail}`` with verdict
``PASS`` or ``FAIL``; a FAIL says "from what to what".

This code runs inside the module on the managed host, where netaddr is usually not installed,
so address sets use the standard library's ``ipaddress`` (same set semantics as netaddr.IPSet).
"""

from __future__ import annotations

import ipaddress

from ansible_collections.mailsec.relay.plugins.module_utils.readback_common import normalize_address, normalize_smarthost, smarthost_text

# The address sets and the relay rule live in relay_rules; re-exported here for existing callers.
from ansible_collections.mailsec.relay.plugins.module_utils.relay_rules import (  # noqa: F401  pylint: disable=unused-import
    LOOPBACK,
    LOOPBACK_TEXT,
    NetSet,
    parse_network,
    split_loopback,
    unauth_grants,
    without_loopback,
)

# --------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------


def finding(host, check, ok, expected, actual, detail=""):
    return {
        "host": host,
        "check": check,
        "verdict": "PASS" if ok else "FAIL",
        "expected": expected,
        "actual": actual,
        "detail": detail,
    }


def _domains(items, drop=()):
    return sorted(set(str(d).strip().lower().rstrip(".") for d in items or [] if str(d).strip()) - set(drop))


def _net_detail(expected, actual, extra_word="extra", missing_word="missing"):
    extra = actual - expected
    missing = expected - actual
    parts = []
    if extra:
        parts.append("%s %s" % (extra_word, extra.describe()))
    if missing:
        parts.append("%s %s" % (missing_word, missing.describe()))
    # Half an address family or more granted: that is an open relay, whatever is carved out.
    if extra and any(extra.share(version) >= 0.5 for version in (4, 6)):
        parts.insert(0, "OPEN RELAY")
    return "; ".join(parts)


def listener_key(listener):
    return (normalize_address(listener.get("address")), int(listener.get("port")))


def listener_label(listener):
    address = normalize_address(listener.get("address"))
    if ":" in address:
        address = "[%s]" % address
    return "%s:%s" % (address, listener.get("port"))


def compare(desired, actual, host="localhost"):
    """Findings for one host: desired effective policy vs the read-back one (both policy-shaped).

    ``actual`` is ``readback['policy']``; per-listener ``grants`` (unauthenticated relay, loopback
    included) and ``never`` sets come from the readback when present.
    """
    out = []
    add = out.append

    if actual is None:
        add(finding(host, "mta", False, "a running Postfix or Exim", None, "no MTA found to read the policy from"))
        return out

    # -- names and domains --------------------------------------------------------------------
    want, have = desired.get("hostname"), actual.get("hostname")
    add(finding(host, "hostname", want == have, want, have, "" if want == have else "hostname from %s to %s" % (want, have)))

    drop = {"localhost", "@", str(desired.get("hostname") or "").lower(), str(actual.get("hostname") or "").lower()}
    for key in ("local_domains", "relay_domains"):
        want = _domains(desired.get(key), drop)
        have = _domains(actual.get(key), drop)
        extra, missing = sorted(set(have) - set(want)), sorted(set(want) - set(have))
        parts = ["extra %s" % ", ".join(extra)] if extra else []
        parts += ["missing %s" % ", ".join(missing)] if missing else []
        detail = "; ".join(parts)
        add(finding(host, key, not detail, want, have, detail))

    out.extend(compare_hosted(desired, actual, host))

    # -- relay grants -------------------------------------------------------------------------
    want = NetSet(desired.get("relay_networks") or [])
    have = NetSet(actual.get("relay_networks") or [])
    detail = _net_detail(want, have, "extra relay grant", "missing relay network")
    add(finding(host, "relay_networks", want == have, want.cidrs(), have.cidrs(), detail))

    want = NetSet(desired.get("never_relay_networks") or [])
    have = NetSet(actual.get("never_relay_networks") or [])
    add(
        finding(
            host,
            "never_relay_networks",
            want == have,
            want.cidrs(),
            have.cidrs(),
            _net_detail(want, have, "extra never-relay entry", "missing never-relay entry (these hosts may relay again)"),
        )
    )

    want, have = bool(desired.get("trust_loopback")), bool(actual.get("trust_loopback"))
    add(finding(host, "trust_loopback", want == have, want, have, "" if want == have else "loopback relay from %s to %s" % (want, have)))

    for key in ("connect_allow", "connect_deny"):
        if key not in actual:
            continue
        want, have = NetSet(desired.get(key) or []), NetSet(actual.get(key) or [])
        add(finding(host, key, want == have, want.cidrs(), have.cidrs(), _net_detail(want, have)))

    want, have = bool(desired.get("auth_relay")), bool(actual.get("auth_relay"))
    add(finding(host, "auth_relay", want == have, want, have, "" if want == have else "authenticated relay from %s to %s" % (want, have)))

    want = normalize_smarthost(desired.get("smarthost"))
    have = normalize_smarthost(actual.get("smarthost"))
    add(
        finding(
            host,
            "smarthost",
            want == have,
            smarthost_text(want),
            smarthost_text(have),
            "" if want == have else "smarthost from %s to %s" % (smarthost_text(want), smarthost_text(have)),
        )
    )

    # -- listeners ------------------------------------------------------------------------------
    out.extend(compare_listeners(desired, actual, host))
    out.extend(compare_client_limits(desired, actual, host))
    out.extend(compare_sender_rate_limits(desired, actual, host))
    if "smarthost_tls" in actual:
        want, have = desired.get("smarthost_tls") or "none", actual["smarthost_tls"]
        add(finding(host, "smarthost_tls", want == have, want, have, "" if want == have else "TLS to the smarthost from %s to %s" % (want, have)))
    if actual.get("smarthost_tls") == "verify" and desired.get("smarthost_tls") == "verify":
        want, have = desired.get("smarthost_tls_ca_file"), actual.get("smarthost_tls_ca_file")
        add(finding(host, "smarthost_tls_ca_file", want == have, want, have, "" if want == have else "smarthost CA file from %s to %s" % (want, have)))
    out.extend(compare_smarthost_auth(desired, actual, host))
    return out


def compare_smarthost_auth(desired, actual, host):
    """SMTP AUTH to the smarthost (issue 14): the user name, and a credentials file only root may change
    and nobody else may read. Nothing about the password is compared (it is never read back)."""
    out = []
    if "smarthost_auth" not in actual:
        return out
    want = (desired.get("smarthost_auth") or {}).get("username")
    have_auth = actual.get("smarthost_auth") or {}
    have = have_auth.get("username") if have_auth else None
    if not want and not have_auth:
        return out
    detail = ""
    if want != have:
        detail = "SMTP AUTH to the smarthost from %s to %s" % (want or "off", have or ("on, user unreadable" if have_auth else "off"))
    out.append(finding(host, "smarthost_auth", want == have, want or "off", have or ("unknown" if have_auth else "off"), detail))
    meta = have_auth.get("file")
    if want and meta is not None:
        problems = []
        if not meta.get("exists"):
            problems.append("missing")
        else:
            mode = int(meta.get("mode") or "0", 8)
            if meta.get("owner") != "root":
                problems.append("owned by %s, not root" % meta.get("owner"))
            if mode & 0o007:
                problems.append("mode %s: other users may read it" % meta.get("mode"))
            if mode & 0o020:
                problems.append("mode %s: its group may change it" % meta.get("mode"))
        state = "missing" if not meta.get("exists") else "%s:%s %s" % (meta.get("owner"), meta.get("group"), meta.get("mode"))
        text = "credentials file %s %s" % (meta.get("path"), "; ".join(problems)) if problems else ""
        out.append(finding(host, "smarthost credentials file", not problems, "root-owned, not readable by others", state, text))
    return out


def compare_client_limits(desired, actual, host):
    """Per-client brakes (issue 14), for the limits the readback could read (0 = off)."""
    out = []
    wanted = desired.get("client_limits") or {}
    for key, have in sorted((actual.get("client_limits") or {}).items()):
        if key not in wanted:
            continue
        want = wanted[key]
        detail = "" if want == have else "client limit %s from %s to %s%s" % (key, want, have, " (off)" if have == 0 else "")
        out.append(finding(host, "client_limits %s" % key, want == have, want, have, detail))
    return out


def compare_sender_rate_limits(desired, actual, host):
    """Per-login message/recipient limits (issue 14), when the readback could read them (0 = off)."""
    have = actual.get("sender_rate_limits")
    if have is None:
        return []
    want = desired.get("sender_rate_limits") or {}
    out = []
    for key in ("messages", "recipients"):
        w, h = int(want.get(key) or 0), int(have.get(key) or 0)
        detail = "" if w == h else "%s per login from %s to %s%s" % (key, w, h, ": a stolen login sends without limit" if not h else "")
        out.append(finding(host, "sender_rate_limits %s" % key, w == h, w, h, detail))
    if (want.get("messages") or want.get("recipients")) and (have.get("messages") or have.get("recipients")):
        w, h = want.get("window"), have.get("window")
        out.append(finding(host, "sender_rate_limits window", w == h, w, h, "" if w == h else "window from %ss to %ss" % (w, h)))
    if have.get("service"):
        state = have["service"]
        out.append(finding(host, "sender_rate_limits service", False, "running", state, "the rate limit service is %s" % state))
    return out


def sender_identity_finding(host, check, want, have):
    """Whether an authenticated login must own MAIL FROM on a listener, as wanted (issue 14)."""
    w, h = bool(want.get("sender_login_match")), bool(have.get("sender_login_match"))
    detail = "" if w == h else "sender identity check from %s to %s%s" % (w, h, ": a stolen login can send as any address" if w else "")
    return finding(host, "%s sender_login_match" % check, w == h, w, h, detail)


def compare_hosted(desired, actual, host):
    """Hosted domain kinds, recipient validation, blocked domains, postscreen (issue 15).

    Compared only where the readback knows them and the policy says something: an unset kind or
    postscreen means "keep what the host has", which is never drift.
    """
    out = []
    for key in ("virtual_mailbox_domains", "virtual_alias_domains", "blocked_domains"):
        if key not in actual or (not desired.get(key) and key != "blocked_domains"):
            continue
        want, have = _domains(desired.get(key)), _domains(actual.get(key))
        extra, missing = sorted(set(have) - set(want)), sorted(set(want) - set(have))
        parts = ["extra %s" % ", ".join(extra)] if extra else []
        parts += ["missing %s" % ", ".join(missing)] if missing else []
        out.append(finding(host, key, not parts, want, have, "; ".join(parts)))
    if "relay_recipient_validation" in actual and desired.get("relay_recipient_validation"):
        have = bool(actual.get("relay_recipient_validation"))
        out.append(
            finding(
                host,
                "relay_recipient_validation",
                have,
                True,
                have,
                "" if have else "recipient validation for relay domains is gone (map removed or unset: unknown recipients are accepted, a backscatter source)",
            )
        )
    if "postscreen" in actual and desired.get("postscreen") is not None:
        want, have = bool(desired.get("postscreen")), bool(actual.get("postscreen"))
        out.append(finding(host, "postscreen", want == have, want, have, "" if want == have else "postscreen from %s to %s" % (want, have)))
    return out


def _loopback_only(listener):
    """True for a listener bound to a loopback address that grants unauthenticated relay to loopback only."""
    address = normalize_address(listener.get("address"))
    try:
        bound = ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
    grants = NetSet(listener.get("grants") or [])
    return bound and not (grants - LOOPBACK) and not listener.get("auth")


def compare_listeners(desired, actual, host):
    out = []
    add = out.append
    have_by_key = dict((listener_key(item), item) for item in actual.get("listeners") or [])
    want_keys = set()
    for want in desired.get("listeners") or []:
        key = listener_key(want)
        want_keys.add(key)
        label = listener_label(want)
        have = have_by_key.get(key)
        check = "listener %s" % label
        if have is None:
            add(finding(host, check, False, "%s (%s)" % (label, want.get("role")), None, "listener %s is missing" % label))
            continue
        add(finding(host, check, True, label, label))
        for attr in ("tls", "auth"):
            w, h = want.get(attr), have.get(attr)
            detail = "" if w == h else "%s from %s to %s" % (attr, w, h)
            if attr == "auth" and h and (want.get("role") == "mx" or int(want["port"]) == 25):
                detail = "AUTH offered on %s (an mx listener): password guessers can relay through it" % label
            add(finding(host, "%s %s" % (check, attr), w == h, w, h, detail))
        if "sender_login_match" in have:
            add(sender_identity_finding(host, check, want, have))
        w = unauth_grants(desired, want)
        h = NetSet(have["grants"]) if "grants" in have else unauth_grants(actual, have)
        detail = _net_detail(w, h, "extra relay grant", "missing relay grant")
        add(finding(host, "%s relay" % check, w == h, w.cidrs(), h.cidrs(), detail))
        if "never" in have:
            w = NetSet(desired.get("never_relay_networks") or [])
            h = NetSet(have["never"])
            missing = w - h
            add(
                finding(
                    host,
                    "%s never_relay" % check,
                    not missing,
                    w.cidrs(),
                    h.cidrs(),
                    "missing never-relay entry %s on this listener" % ", ".join(missing.cidrs()) if missing else "",
                )
            )
    for key, have in sorted(have_by_key.items()):
        if key in want_keys:
            continue
        label = listener_label(have)
        if _loopback_only(have):
            # A content filter's re-injection listener (declared or kept as found): unreachable from
            # outside and relaying for loopback only, so it is no drift of the relay policy.
            add(
                finding(
                    host,
                    "listener %s" % label,
                    True,
                    None,
                    label,
                    "kept loopback listener %s (e.g. a content filter's re-injection): relays for loopback only" % label,
                )
            )
            continue
        detail = "unexpected listener %s (tls %s, auth %s)" % (label, have.get("tls"), have.get("auth"))
        add(finding(host, "listener %s" % label, False, None, label, detail))
    return out


def spot_check_findings(host, checks):
    """Findings from behavioural spot checks (e.g. ``exim -bh``): expectation vs what the MTA did."""
    out = []
    for check in checks or []:
        ok = check.get("verdict") == check.get("expect")
        out.append(
            finding(
                host,
                "spot %s" % check.get("name"),
                ok,
                check.get("expect"),
                check.get("verdict"),
                ""
                if ok
                else "expected %s, the MTA answered %s at %s: %s" % (check.get("expect"), check.get("verdict"), check.get("stage"), check.get("reply")),
            )
        )
    return out


def summarize(findings):
    """{'PASS': n, 'FAIL': n, 'drifted': bool, 'failed_checks': [...]}."""
    failed = [f for f in findings if f["verdict"] == "FAIL"]
    return {
        "PASS": len(findings) - len(failed),
        "FAIL": len(failed),
        "drifted": bool(failed),
        "failed_checks": [f["check"] for f in failed],
    }


def _fmt(value):
    if isinstance(value, list):
        return "[%s]" % ", ".join(str(v) for v in value)
    return str(value)


def lines(findings):
    """One line per FAIL: ``check: expected -> actual (detail)``."""
    return [
        "%s: %s -> %s%s" % (f["check"], _fmt(f["expected"]), _fmt(f["actual"]), " (%s)" % f["detail"] if f["detail"] else "")
        for f in findings
        if f["verdict"] != "PASS"
    ]


def diff(findings):
    """Ansible --diff: one line per setting, desired (before) vs actual (after), FAILs only."""
    before, after = [], []
    for item in findings:
        if item["verdict"] != "FAIL":
            continue
        before.append("%s: %s" % (item["check"], _fmt(item["expected"])))
        after.append("%s: %s%s" % (item["check"], _fmt(item["actual"]), "  # " + item["detail"] if item["detail"] else ""))
    return {
        "before_header": "desired relay policy",
        "after_header": "effective (read back)",
        "before": "\n".join(before) + ("\n" if before else ""),
        "after": "\n".join(after) + ("\n" if after else ""),
    }
