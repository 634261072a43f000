# -*- coding: utf-8 -*-
# Copyright (c) mailsec.relay developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Postfix backend of mailsec.relay.

Three parts, importable without Ansible so unit tests drive them directly:

* the renderer: effective relay policy -> ``{main, master, files}`` (``render_postfix``);
* the diff: current ``postconf -n/-M/-P`` state + desired state -> a ``ChangeSet`` (``compute_changes``);
* the applier: stage a copy of the configuration, validate it, swap it in file by file, reload,
  confirm the listeners answer, roll back on any failure (``PostfixApplier``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time

from ansible_collections.mailsec.relay.plugins.module_utils import grammar
from ansible_collections.mailsec.relay.plugins.module_utils.mta_common import (
    SMTPCheckError,
    StartTLSNotOffered,
    confirm_all,
    greet,
)

# --------------------------------------------------------------------------------------------
# Value helpers
# --------------------------------------------------------------------------------------------

MASTER_FIELDS = ("private", "unpriv", "chroot", "wakeup", "maxproc")
# Standard service names for the ports a policy uses; any other port is written as a number.
PORT_SERVICE_NAMES = {25: "smtp", 587: "submission", 465: "submissions"}
HASHED_MAP_TYPES = ("hash", "btree", "lmdb", "cdb", "dbm", "sdbm")
# main.cf restriction that answers MAIL without AUTH on submission listeners (RFC 6409 4.3).
AUTH_REQUIRED_PARAM = "mailsec_submission_auth_required"
AUTH_REQUIRED_VALUE = "check_sender_access static:{530 5.7.0 Authentication required}"
# Adopt mode (brownfield hosts). When the module takes over a service that exists, it replaces only the
# -o overrides that decide relaying, AUTH or TLS; any other override (content_filter, milters,
# receive_override_options, ...) is the user's and stays.
RELAY_OVERRIDE_RE = re.compile(
    r"_restrictions$|^mynetworks|^relay_|^smtpd_sasl_|^smtpd_tls_|^smtpd_(use|enforce)_tls$|^smtpd_client_|"
    r"^smtpd_authorized_|^smtpd_upstream_proxy|^smtpd_delay_reject$|^permit_mx_backup|^syslog_name$|"
    r"^smtpd_forbid_|^smtpd_helo_required$|^smtpd_data_|^disable_vrfy_command$"
)
# main.cf parameters that carry filters, milters, maps and hosted domains: reported as kept when the
# desired state does not set them (they are the user's and are never touched then).
KEPT_MAIN_RE = re.compile(
    r"_milters$|^milter_|^content_filter$|_maps$|_domains$|^virtual_transport$|"
    r"^receive_override_options$|^postscreen_|^smtpd_proxy_filter$"
)
# master.cf services a stock Postfix has: not worth a "kept" line each.
STOCK_SERVICES = frozenset(
    (
        "pickup/unix",
        "cleanup/unix",
        "qmgr/unix",
        "tlsmgr/unix",
        "rewrite/unix",
        "bounce/unix",
        "defer/unix",
        "trace/unix",
        "verify/unix",
        "flush/unix",
        "proxymap/unix",
        "proxywrite/unix",
        "smtp/unix",
        "relay/unix",
        "showq/unix",
        "error/unix",
        "retry/unix",
        "discard/unix",
        "local/unix",
        "virtual/unix",
        "lmtp/unix",
        "anvil/unix",
        "scache/unix",
        "postlog/unix-dgram",
        "maildrop/unix",
        "uucp/unix",
        "ifmail/unix",
        "bsmtp/unix",
        "scalemail-backend/unix",
        "mailman/unix",
        "pickup/fifo",
        "qmgr/fifo",
    )
)
OWNERSHIP_HEADER = "mailsec.relay ownership record: the master.cf services this collection wrote. Do not edit."
# Parameters whose value names a file smtpd/smtp must be able to open at run time.
FILE_PARAM_RE = re.compile(r"_(cert|key|dcert|dkey|eccert|eckey|dsa_cert|dsa_key)_file$|_chain_files$")


class PostfixError(Exception):
    """A failure with a reason fit for the user (never contains secrets)."""


def to_postconf_value(value):
    """Render a Python value as a main.cf/-o value; None stays None (= absent)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(to_postconf_value(v) for v in value)
    return str(value)


def normalize_value(value):
    """Postconf joins continuation lines with single spaces; compare values the same way."""
    if value is None:
        return None
    return " ".join(str(value).split())


def postfix_network(cidr, brackets=True):
    """Postfix network notation: IPv6 in brackets for mynetworks, bare for cidr tables."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.version == 6 and brackets:
        return "[%s]/%d" % (net.network_address, net.prefixlen)
    return str(net)


def version_tuple(version):
    parts = []
    for part in str(version or "").split("."):
        digits = re.match(r"\d+", part)
        parts.append(int(digits.group(0)) if digits else 0)
    return tuple(parts)


def supports_forbid_bare_newline(version):
    """smtpd_forbid_bare_newline shipped in 3.9 and was back-ported to 3.5.23, 3.6.13, 3.7.9, 3.8.4."""
    v = version_tuple(version)
    if not v or v[0] == 0:
        return False
    minimum = {(3, 5): (3, 5, 23), (3, 6): (3, 6, 13), (3, 7): (3, 7, 9), (3, 8): (3, 8, 4)}
    if v[:2] in minimum:
        return v[:3] >= minimum[v[:2]]
    return v[:2] >= (3, 9)


def default_compatibility_level(version):
    """The level to pin: 3.6 up to Postfix 3.8, 3.9 from 3.9 on (Debian 13's Postfix 3.10 defaults to
    3.9; pinning 3.6 there would bring back older defaults)."""
    return "3.9" if version_tuple(version)[:2] >= (3, 9) else "3.6"


# --------------------------------------------------------------------------------------------
# Renderer: effective policy -> Postfix settings
# --------------------------------------------------------------------------------------------

RENDER_DEFAULTS = {
    "config_dir": "/etc/postfix",
    "table_dir": "/etc/postfix/mailsec",
    "postfix_version": "3.7.11",
    "compatibility_level": None,  # None: default_compatibility_level(postfix_version)
    "chroot": True,
    "sasl_path": "private/auth",
    "extra_main": {},
    # The postfwd policy service the role runs for per-login rate limits (loopback only).
    "sender_rate_service": "inet:127.0.0.1:10040",
}


def _listener_service_name(listener):
    port = int(listener["port"])
    service = PORT_SERVICE_NAMES.get(port, str(port))
    address = listener.get("address") or "*"
    if address in ("*", ""):
        return service
    ip = ipaddress.ip_address(address)
    host = "[%s]" % ip if ip.version == 6 else str(ip)
    return "%s:%s" % (host, service)


def _cidr_table(networks, action):
    lines = ["# Managed by mailsec.relay: do not edit, changes are overwritten."]
    lines += ["%s %s" % (postfix_network(n, brackets=False), action) for n in networks]
    return "\n".join(lines) + "\n"


def _table_ref(options, kind, filename):
    return "%s:%s" % (kind, os.path.join(options["table_dir"], filename))


def _tls_overrides(listener):
    tls = listener.get("tls", "none")
    if tls == "implicit":
        return {"smtpd_tls_wrappermode": "yes", "smtpd_tls_security_level": "encrypt"}
    return {"smtpd_tls_security_level": {"none": "none", "starttls": "may", "required": "encrypt"}[tls]}


def _client_restrictions(allow, deny, refs):
    """Connect control (C7): deny table first, then allow table + reject when an allowlist exists."""
    parts = []
    if deny:
        parts.append("check_client_access " + refs["deny"])
    if allow:
        parts += ["check_client_access " + refs["allow"], "reject"]
    return ", ".join(parts)


# Authenticated clients only: an address no login owns is refused too (unauthenticated MAIL never
# gets this far on submission listeners: it is answered 530 first).
SENDER_LOGIN_CHECK = "reject_authenticated_sender_login_mismatch"


def _sender_logins_table(owners):
    """smtpd_sender_login_maps content: ``address login[,login]`` per owned sender address."""
    lines = ["# Managed by mailsec.relay: do not edit, changes are overwritten."]
    lines += ["%s %s" % (address, ",".join(logins)) for address, logins in sorted(owners.items())]
    return "\n".join(lines) + "\n"


def _client_limit_settings(limits):
    """Per-client brakes (anvil): connections at once, connections and AUTH commands per minute.

    Postfix exempts smtpd_client_event_limit_exceptions (default $mynetworks: the relay networks).
    """
    if not limits:
        return {}
    return {
        "anvil_rate_time_unit": "60s",
        "smtpd_client_connection_count_limit": str(int(limits["connection_count"])),
        "smtpd_client_connection_rate_limit": str(int(limits["connection_rate"])),
        "smtpd_client_auth_rate_limit": str(int(limits["auth_rate"])),
    }


# The smarthost credentials (SASL_README "Enabling SASL authentication in the Postfix SMTP client"):
# written root-only by the role under no_log, never rendered here.
SMARTHOST_PASSWD_FILE = "sasl/mailsec_smarthost_passwd"


def _smarthost_settings(effective, opts):
    """TLS and AUTH towards the relayhost. Nothing is written when the policy asks for neither."""
    mode = effective.get("smarthost_tls") or "none"
    main = {}
    if mode in ("encrypt", "verify"):
        # Mail for the relayhost stays queued unless TLS is negotiated; "secure" also verifies the
        # certificate chain and that the certificate names the relayhost (smtp_tls_secure_cert_match).
        main["smtp_tls_security_level"] = "secure" if mode == "verify" else "encrypt"
        main["smtp_tls_mandatory_protocols"] = ">=TLSv1.2"
    if mode == "verify":
        main["smtp_tls_CAfile"] = effective["smarthost_tls_ca_file"]
    if effective.get("smarthost_auth"):
        main.update(
            {
                "smtp_sasl_auth_enable": "yes",
                "smtp_sasl_password_maps": "hash:" + os.path.join(opts["config_dir"], SMARTHOST_PASSWD_FILE),
                "smtp_sasl_security_options": "noanonymous",
                "smtp_sasl_tls_security_options": "noanonymous",
                # A refused login defers (4xx): the mail stays queued, it neither bounces nor goes unauthenticated.
                "smtp_sasl_auth_soft_bounce": "yes",
            }
        )
    return main


# Sender rate limits (issue 14): postfwd (Debian package) counts per SASL login. Fail closed: while
# the service does not answer, authenticated mail is deferred (451), so a stolen login gets no
# unlimited sending because the limiter died; legitimate clients retry. A value with spaces needs
# braces of its own (smtpd refuses "default_action=451 4.3.5 ..." at startup), and no comma.
SENDER_RATE_PARAM = "mailsec_sender_rate_check"
SENDER_RATE_DEFAULT_ACTION = "451 4.3.5 Sender rate limit service unavailable"
SENDER_RATE_RULES = "sender_rate_limits.postfwd"
SENDER_RATE_MESSAGES_REPLY = "451 4.7.1 Message limit reached for this login"
SENDER_RATE_RECIPIENTS_REPLY = "451 4.7.1 Recipient limit reached for this login"


def sender_rate_limits_on(effective):
    """Whether any per-login limit is set and a listener offers AUTH (the only place it applies)."""
    limits = effective.get("sender_rate_limits") or {}
    wanted = bool(limits.get("messages") or limits.get("recipients"))
    return wanted and any(item.get("role") == "submission" and item.get("auth") for item in effective.get("listeners") or [])


def sender_rate_rules(limits):
    """postfwd(8) rules: messages and recipients per SASL login per window, asked at DATA.

    Both are counted at DATA (the recipients are known, the body not sent yet): rate() counts one
    per message, rcpt() adds recipient_count. postfwd keys each counter by rule id and login, so the
    two never mix; a request without a login (no AUTH) matches neither rule.
    """
    window = int(limits["window"])
    lines = ["# Managed by mailsec.relay: do not edit, changes are overwritten."]
    if limits.get("messages"):
        lines.append(
            "id=mailsec_messages; protocol_state==DATA; sasl_username=~.; action=rate(sasl_username/%d/%d/%s)"
            % (int(limits["messages"]), window, SENDER_RATE_MESSAGES_REPLY)
        )
    if limits.get("recipients"):
        lines.append(
            "id=mailsec_recipients; protocol_state==DATA; sasl_username=~.; action=rcpt(sasl_username/%d/%d/%s)"
            % (int(limits["recipients"]), window, SENDER_RATE_RECIPIENTS_REPLY)
        )
    return "\n".join(lines) + "\n"


def parse_sender_rate_rules(text):
    """postfwd rules as sender_rate_rules writes them -> {messages, recipients, window} (0 = off).

    Rules written by others are not interpreted: only our two ids count.
    """
    limits = {"messages": 0, "recipients": 0}
    for line in (text or "").splitlines():
        match = re.match(r"^id=mailsec_(messages|recipients);.*action=(?:rate|rcpt)\(sasl_username/(\d+)/(\d+)/", line.strip())
        if match:
            limits[match.group(1)] = int(match.group(2))
            limits["window"] = int(match.group(3))
    return limits


def render_postfix(effective, **options):
    """Map the effective relay policy (docs/policy-model.md) onto Postfix.

    Returns ``{'main': {name: value|None}, 'master': [service...], 'files': [file...]}`` in the
    shape the ``mailsec.relay.postconf`` module takes. Pure: no I/O.
    """
    opts = dict(RENDER_DEFAULTS)
    opts.update({k: v for k, v in options.items() if v is not None})
    opts["compatibility_level"] = opts["compatibility_level"] or default_compatibility_level(opts["postfix_version"])
    table_dir = opts["table_dir"]
    # Second wall (docs/security.md): whoever built this policy, no value outside its grammar is rendered.
    try:
        grammar.check_effective(effective)
        for name in ("config_dir", "table_dir"):
            if not grammar.is_abs_path(opts[name]):
                raise grammar.GrammarError("absolute path", opts[name], name)
        # extra_main is free by design, but a line break in it would write a line of its own.
        for name, value in (opts.get("extra_main") or {}).items():
            if not grammar.is_config_key(name):
                raise grammar.GrammarError("main.cf parameter name", name, "extra_main")
            if value is not None and not grammar.is_single_line(to_postconf_value(value)):
                raise grammar.GrammarError("single-line value", value, "extra_main.%s" % name)
        for name in ("postfix_version", "compatibility_level"):
            if not grammar.is_single_line(opts[name]):
                raise grammar.GrammarError("single-line value", opts[name], name)
    except grammar.GrammarError as exc:
        raise PostfixError("refusing to render the policy: %s" % exc)
    files = []
    refs = {}

    def add_table(filename, content, kind="cidr"):
        files.append({"path": os.path.join(table_dir, filename), "content": content, "mode": "0644", "map_type": kind})
        return _table_ref(opts, kind, filename)

    listeners = effective.get("listeners") or []
    if not listeners:
        raise PostfixError("the effective policy has no listeners")
    tls = effective.get("tls") or {}
    has_tls = bool(tls.get("cert") and tls.get("key"))
    for listener in listeners:
        if listener.get("tls", "none") != "none" and not has_tls:
            raise PostfixError("listener %s wants TLS (%s) but the policy has no certificate and key" % (listener["name"], listener["tls"]))

    loopback = list(effective.get("loopback_networks") or [])
    relay_networks = list(effective.get("relay_networks") or [])
    never = list(effective.get("never_relay_networks") or [])

    # C5: deny before allow. The table value is a restriction name (access(5)), so listed hosts
    # may still mail local/relay domains but never relay, whatever else they are granted.
    never_ref = add_table("relay_never.cidr", _cidr_table(never, "reject_unauth_destination"))
    never_check = "check_client_access " + never_ref
    blocked = list(effective.get("blocked_domains") or [])
    if blocked:
        # Blocked domains: refused for everyone (trusted and authenticated clients too), so the check
        # comes ahead of every grant. access(5) REJECT answers 554 5.7.1.
        content = "# Managed by mailsec.relay: do not edit.\n" + "".join("%s REJECT 5.7.1 Mail for %s is not accepted here\n" % (d, d) for d in blocked)
        never_check = "check_recipient_access %s, %s" % (add_table("blocked_domains", content, "hash"), never_check)

    relay_grants = ["permit_mynetworks"]
    client_names = list(effective.get("client_names") or [])
    if client_names:
        # C3: forward-confirmed client name; 'unknown' when FCrDNS fails, so a lookup never matches.
        content = "# Managed by mailsec.relay: do not edit.\n" + "".join("%s OK\n" % n for n in client_names)
        relay_grants.append("check_client_access " + add_table("relay_clients", content, "hash"))

    global_allow = list(effective.get("connect_allow") or [])
    global_deny = list(effective.get("connect_deny") or [])
    if global_deny:
        refs["deny"] = add_table("connect_deny.cidr", _cidr_table(global_deny, "REJECT"))
    if global_allow:
        refs["allow"] = add_table("connect_allow.cidr", _cidr_table(global_allow, "OK"))

    only_loopback = all((lst.get("address") or "*") not in ("*", "") and ipaddress.ip_address(lst["address"]).is_loopback for lst in listeners)

    smarthost = effective.get("smarthost")
    main = {
        # C1: never rely on defaults.
        "compatibility_level": opts["compatibility_level"],
        "myhostname": effective["hostname"],
        "mydestination": ", ".join(["$myhostname", "localhost"] + list(effective.get("local_domains") or [])),
        "mynetworks": " ".join(postfix_network(n) for n in loopback + relay_networks),
        "mynetworks_style": "host",
        "relay_domains": ", ".join(effective.get("relay_domains") or []),
        # Exact-match domains and client names: "example.com" must not also cover its subdomains.
        "parent_domain_matches_subdomains": "debug_peer_list, fast_flush_domains, mynetworks, permit_mx_backup_networks, qmqpd_authorized_clients",
        "smtpd_relay_restrictions": ", ".join([never_check] + relay_grants + ["reject_unauth_destination"]),
        "smtpd_client_restrictions": _client_restrictions(global_allow, global_deny, refs),
        "inet_interfaces": "loopback-only" if only_loopback else "all",
        "relayhost": smarthost or "",
        # C10/C11: no AUTH on 25; where AUTH is on, only over TLS and never anonymous.
        "smtpd_sasl_auth_enable": "no",
        "smtpd_sasl_type": effective.get("sasl", {}).get("backend") or "dovecot",
        "smtpd_sasl_path": opts["sasl_path"],
        "smtpd_sasl_security_options": "noanonymous, noplaintext",
        "smtpd_sasl_tls_security_options": "noanonymous",
        "smtpd_tls_auth_only": "yes",
        "smtpd_tls_security_level": "may" if has_tls else "none",
        "smtpd_tls_cert_file": tls.get("cert") if has_tls else None,
        "smtpd_tls_key_file": tls.get("key") if has_tls else None,
        "smtpd_tls_mandatory_protocols": ">=TLSv1.2",
        "smtpd_tls_protocols": ">=TLSv1.2",
        # Where TLS is mandatory (submission) the client must be able to authenticate the server
        # (RFC 8314 3.3): no anonymous suites there; port 25 stays opportunistic (RFC 7435).
        "smtpd_tls_mandatory_exclude_ciphers": "aNULL" if has_tls else None,
        # Anti-smuggling: refuse pipelined commands before the greeting and bare newlines.
        "smtpd_data_restrictions": "reject_unauth_pipelining",
        "smtpd_helo_required": "yes",
        "disable_vrfy_command": "yes",
    }
    # A plain "reject" answers 554 5.7.1; this access action answers RFC 6409's 530 5.7.0. It lives in
    # main.cf, referenced as $name from each submission listener, so master.cf values stay free of
    # braces (format_override refuses them) and the reply is written once.
    main[AUTH_REQUIRED_PARAM] = AUTH_REQUIRED_VALUE if any(lst.get("role") == "submission" for lst in listeners) else None
    # Hosted domain kinds (issue 15). Unset kinds and maps are not written: a host's own virtual
    # domains and maps stay as they are (adopt mode).
    for kind in ("virtual_mailbox", "virtual_alias"):
        if effective.get(kind + "_domains"):
            main[kind + "_domains"] = ", ".join(effective[kind + "_domains"])
        if effective.get(kind + "_maps"):
            main[kind + "_maps"] = ", ".join(effective[kind + "_maps"])
    if effective.get("relay_recipient_validation"):
        maps = list(effective.get("relay_recipient_maps") or [])
        if effective.get("relay_recipients"):
            content = "# Managed by mailsec.relay: do not edit.\n" + "".join("%s OK\n" % address for address in effective["relay_recipients"])
            maps.append(add_table("relay_recipients", content, "hash"))
        main["relay_recipient_maps"] = ", ".join(maps)
    if effective.get("milters"):
        main["smtpd_milters"] = ", ".join(effective["milters"])
    if effective.get("postscreen"):
        main["postscreen_greet_action"] = effective.get("postscreen_pregreet") or "enforce"
        # Trusted clients skip the tests (and their greeting delay), as the relay grants trust them.
        main["postscreen_access_list"] = "permit_mynetworks"
    if supports_forbid_bare_newline(opts["postfix_version"]):
        main["smtpd_forbid_bare_newline"] = "yes"
        # The default exempts $mynetworks; a trusted relay client could then still smuggle.
        main["smtpd_forbid_bare_newline_exclusions"] = ""
    # Sender identity: the login must own MAIL FROM (issue 14); the owners table is rendered once.
    sender_checked = any(lst.get("sender_login_match") for lst in listeners)
    main["smtpd_sender_login_maps"] = add_table("sender_logins", _sender_logins_table(effective.get("sender_logins") or {}), "hash") if sender_checked else None
    main.update(_client_limit_settings(effective.get("client_limits")))
    main.update(_smarthost_settings(effective, opts))
    rate_limited = sender_rate_limits_on(effective)
    if rate_limited:
        if not grammar.is_single_line(opts["sender_rate_service"]) or not re.fullmatch(r"inet:[0-9A-Za-z.:\[\]-]+:[0-9]{1,5}", opts["sender_rate_service"]):
            raise PostfixError("sender_rate_service must be inet:host:port, got %r" % (opts["sender_rate_service"],))
        files.append(
            {
                "path": os.path.join(table_dir, SENDER_RATE_RULES),
                "content": sender_rate_rules(effective["sender_rate_limits"]),
                "mode": "0644",
                "map_type": None,
            }
        )
    main[SENDER_RATE_PARAM] = (
        "check_policy_service { %s, { default_action = %s } }" % (opts["sender_rate_service"], SENDER_RATE_DEFAULT_ACTION) if rate_limited else None
    )
    main.update(opts.get("extra_main") or {})

    chroot = "y" if opts["chroot"] else "n"
    master = []
    for listener in listeners:
        name = _listener_service_name(listener)
        overrides = {"syslog_name": "postfix/%s" % listener["name"]}
        overrides.update(_tls_overrides(listener))
        if listener.get("role") == "submission":
            auth = bool(listener.get("auth"))
            overrides["smtpd_sasl_auth_enable"] = "yes" if auth else "no"
            grants = ["permit_sasl_authenticated"] if auth else []
            overrides["smtpd_relay_restrictions"] = ", ".join([never_check] + grants + ["reject"])
            # RFC 6409 4.3: refuse MAIL itself without AUTH (not just RCPT) with 530, so a failed
            # AUTH cannot be followed by a transaction; delay_reject=no makes the check run at MAIL.
            overrides["smtpd_delay_reject"] = "no"
            # Unauthenticated MAIL is refused by the 530 below whatever the sender, hosted domains included.
            owner_check = [SENDER_LOGIN_CHECK] if auth and listener.get("sender_login_match") else []
            overrides["smtpd_sender_restrictions"] = ", ".join(owner_check + grants + ["$" + AUTH_REQUIRED_PARAM])
            if auth and rate_limited:
                # Per-login limits only where clients authenticate (never on port 25).
                overrides["smtpd_data_restrictions"] = "%s, $%s" % (main["smtpd_data_restrictions"], SENDER_RATE_PARAM)
        else:
            overrides["smtpd_sasl_auth_enable"] = "no"
            lst_relay = list(listener.get("relay_networks") or [])
            if lst_relay != relay_networks:
                # C9: this listener's own relay networks, in its own table instead of mynetworks.
                table = add_table("relay_%s.cidr" % listener["name"], _cidr_table(loopback + lst_relay, "OK"))
                grants = ["check_client_access " + table] + relay_grants[1:]
                overrides["smtpd_relay_restrictions"] = ", ".join([never_check] + grants + ["reject_unauth_destination"])
        lst_allow = list(listener.get("connect_allow") or [])
        lst_deny = list(listener.get("connect_deny") or [])
        if (lst_allow, lst_deny) != (global_allow, global_deny):
            lrefs = {}
            if lst_deny:
                lrefs["deny"] = add_table("connect_deny_%s.cidr" % listener["name"], _cidr_table(lst_deny, "REJECT"))
            if lst_allow:
                lrefs["allow"] = add_table("connect_allow_%s.cidr" % listener["name"], _cidr_table(lst_allow, "OK"))
            overrides["smtpd_client_restrictions"] = _client_restrictions(lst_allow, lst_deny, lrefs)
        entry = {
            "name": name,
            "type": "inet",
            "private": "n",
            "unpriv": "-",
            "chroot": chroot,
            "wakeup": "-",
            "maxproc": "-",
            "command": "smtpd",
            "overrides": overrides,
            "state": "present",
        }
        fronted = listener.get("role") == "mx" and int(listener["port"]) == 25
        if fronted and effective.get("postscreen"):
            # POSTSCREEN_README: postscreen owns the port and hands clients to the smtpd pass service.
            master.append(dict(entry, maxproc="1", command="postscreen", overrides={}))
            master.append(dict(entry, name="smtpd", type="pass", private="-"))
            for helper in ("dnsblog", "tlsproxy"):
                master.append(
                    {
                        "name": helper,
                        "type": "unix",
                        "private": "-",
                        "unpriv": "-",
                        "chroot": chroot,
                        "wakeup": "-",
                        "maxproc": "0",
                        "command": helper,
                        "overrides": {},
                        "state": "present",
                    }
                )
            continue
        if fronted and effective.get("postscreen") is None:
            entry["keep_front"] = True  # a postscreen already in front of this port stays (adopt mode)
        master.append(entry)
    content_filter = effective.get("content_filter")
    if content_filter:
        master += _content_filter_services(content_filter, chroot)
        main["content_filter"] = "%s:%s" % (CONTENT_FILTER_TRANSPORT, content_filter["next_hop"])
    return {"main": main, "master": master, "files": files}


CONTENT_FILTER_TRANSPORT = "mailsec-filter"


def _content_filter_services(content_filter, chroot):
    """FILTER_README's advanced content filter: the transport to the filter and the re-injection
    listener, bound to loopback, relaying for loopback only, with no filter of its own (no loop)."""
    address = ipaddress.ip_address(content_filter["reinject_address"])
    host = "[%s]" % address if address.version == 6 else str(address)
    loopback = "127.0.0.0/8" if address.version == 4 else "[::1]/128"
    transport = {
        "name": CONTENT_FILTER_TRANSPORT,
        "type": "unix",
        "private": "-",
        "unpriv": "-",
        "chroot": chroot,
        "wakeup": "-",
        "maxproc": "10",
        "command": "smtp",
        "state": "present",
        "overrides": {"smtp_send_xforward_command": "yes", "disable_mime_output_conversion": "yes", "smtp_generic_maps": ""},
    }
    reinject = {
        "name": "%s:%d" % (host, int(content_filter["reinject_port"])),
        "type": "inet",
        "private": "n",
        "unpriv": "-",
        "chroot": "n",
        "wakeup": "-",
        "maxproc": "-",
        "command": "smtpd",
        "state": "present",
        "overrides": {
            "syslog_name": "postfix/reinject",
            "content_filter": "",
            "receive_override_options": "no_unknown_recipient_checks,no_header_body_checks,no_milters",
            "smtpd_helo_restrictions": "",
            "smtpd_client_restrictions": "",
            "smtpd_sender_restrictions": "",
            "smtpd_recipient_restrictions": "",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_sasl_auth_enable": "no",
            "mynetworks": loopback,
            "smtpd_authorized_xforward_hosts": loopback,
        },
    }
    return [transport, reinject]


# --------------------------------------------------------------------------------------------
# Reading postconf output
# --------------------------------------------------------------------------------------------


def parse_postconf_n(text):
    """``postconf -n`` -> {name: value}."""
    result = {}
    for line in text.splitlines():
        if " = " in line:
            name, value = line.split(" = ", 1)
        elif line.endswith(" ="):
            name, value = line[:-2], ""
        else:
            continue
        result[name.strip()] = value.strip()
    return result


def split_master_args(text):
    """Split a master.cf command tail into tokens; ``{ ... }`` groups stay one token."""
    tokens, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "{":
            depth, j = 0, i
            while j < n:
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            tokens.append(text[i : j + 1])
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            tokens.append(text[i:j])
            i = j
    return tokens


def parse_postconf_M(text):
    """``postconf -M`` (one entry per line) -> {(name, type): {fields..., command}}.

    The command keeps its non ``-o`` arguments; ``-o`` overrides come from ``postconf -P``.
    """
    services = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith((" ", "\t", "#")):
            continue
        parts = line.split(None, 7)
        if len(parts) < 8:
            continue
        name, stype = parts[0], parts[1]
        tokens = split_master_args(parts[7])
        command, skip = [], False
        for token in tokens:
            if skip:
                skip = False
                continue
            if token == "-o":
                skip = True
                continue
            command.append(token)
        entry = dict(zip(MASTER_FIELDS, parts[2:7]))
        entry["command"] = " ".join(command)
        entry["overrides"] = {}
        services[(name, stype)] = entry
    return services


def parse_postconf_P(text, services):
    """Merge ``postconf -P`` (service/type/param = value) into parsed services."""
    for line in text.splitlines():
        if " = " in line:
            key, value = line.split(" = ", 1)
        elif line.endswith(" ="):  # an empty override (-o content_filter=) prints without a value
            key, value = line[:-2], ""
        else:
            continue
        pieces = key.strip().split("/")
        if len(pieces) < 3:
            continue
        name, stype, param = "/".join(pieces[:-2]), pieces[-2], pieces[-1]
        entry = services.get((name, stype))
        if entry is not None:
            entry["overrides"][param] = value.strip()
    return services


def format_override(name, value):
    if "}" in value or "{" in value:
        raise PostfixError("master.cf override %s: braces are not allowed in a value" % name)
    # Short form cannot carry whitespace; the long form "{ name = value }" can (Postfix >= 3.0).
    if re.search(r"\s", value) or value == "":
        return "-o { %s = %s }" % (name, value)
    return "-o %s=%s" % (name, value)


def format_master_entry(service):
    fields = [service["name"], service.get("type", "inet")] + [str(service.get(f) or "-") for f in MASTER_FIELDS]
    line = " ".join(fields + [service["command"]])
    for name in sorted(service.get("overrides") or {}):
        value = to_postconf_value(service["overrides"][name])
        if value is not None:
            line += " " + format_override(name, value)
    return line


# --------------------------------------------------------------------------------------------
# The diff
# --------------------------------------------------------------------------------------------


class ChangeSet(object):
    def __init__(self):
        self.main = {}  # name -> (before, after); None = absent
        self.master = {}  # "name/type" -> (before_line|None, after_line|None)
        self.master_set = []  # full entries to (re)write
        self.master_remove = []  # "name/type" keys to remove
        self.files = {}  # path -> (before_content|None, after_content, reasons)
        self.kept = []  # what exists, is not ours and stays as found (adopt mode), in words

    @property
    def changed(self):
        return bool(self.main or self.master or self.files)

    def diff(self, hidden_paths=()):
        """Per-key before/after text for Ansible's --diff."""
        before, after = [], []
        for name in sorted(self.main):
            old, new = self.main[name]
            before.append("main.cf: %s" % ("%s = %s" % (name, old) if old is not None else "%s (absent)" % name))
            after.append("main.cf: %s" % ("%s = %s" % (name, new) if new is not None else "%s (absent)" % name))
        for key in sorted(self.master):
            old, new = self.master[key]
            before.append("master.cf: %s" % (old if old is not None else "%s (absent)" % key))
            after.append("master.cf: %s" % (new if new is not None else "%s (absent)" % key))
        for path in sorted(self.files):
            old, new, reasons = self.files[path]
            if path in hidden_paths:
                old = new = "(content hidden)"
            before.append("file %s:\n%s" % (path, old if old is not None else "(absent)"))
            after.append("file %s (%s):\n%s" % (path, ", ".join(reasons), new))
        # Kept elements on both sides: unchanged context in the diff, but visible.
        for item in self.kept:
            before.append("kept: %s" % item)
            after.append("kept: %s" % item)
        return {
            "before": "\n".join(before) + ("\n" if before else ""),
            "after": "\n".join(after) + ("\n" if after else ""),
            "before_header": "postfix (before)",
            "after_header": "postfix (after)",
        }

    def summary(self):
        return {
            "main": {k: {"before": v[0], "after": v[1]} for k, v in self.main.items()},
            "master": {k: {"before": v[0], "after": v[1]} for k, v in self.master.items()},
            "files": sorted(self.files),
            "kept": list(self.kept),
        }


def _service_line(name, stype, entry):
    if entry is None:
        return None
    service = dict(entry, name=name, type=stype)
    return format_master_entry(service)


def _front_target(current_master, service):
    """For a declared smtpd listener whose current entry runs postscreen (``keep_front``): the
    ``(name, type)`` of the smtpd pass service behind it, which takes the listener's settings, or None."""
    key = (service["name"], service.get("type", "inet"))
    have = current_master.get(key)
    if not service.get("keep_front") or have is None or have["command"].split()[:1] != ["postscreen"]:
        return None
    passes = [k for k, v in current_master.items() if k[1] == "pass" and v["command"].split()[:1] == ["smtpd"]]
    return passes[0] if len(passes) == 1 else None


def _kept_service_text(key, entry):
    program = entry["command"].split()[:1] or ["?"]
    return "%s %s %s (master.cf)" % (program[0], key[0], key[1])


def compute_changes(current_main, current_master, current_files, main, master, files, purge_commands=(), adopt=False, owned=None):
    """Compare the current state with the desired one.

    current_files: path -> {'content': str|None, 'mode': int|None, 'db_fresh': bool}.
    master services are exclusive about their -o overrides: a managed service ends up with
    exactly the declared ones, so a stale permissive override cannot survive.

    adopt (brownfield hosts): purge_commands removes only the services in ``owned`` (labels
    "name/type" an earlier run wrote, from the ownership record); an existing service keeps its
    overrides that do not decide relaying (RELAY_OVERRIDE_RE); everything else that exists and is
    not declared is listed in ``changes.kept``.
    """
    changes = ChangeSet()
    owned = set(owned or ())
    for name, value in (main or {}).items():
        want = to_postconf_value(value)
        have = current_main.get(name)
        if normalize_value(want) != normalize_value(have):
            changes.main[name] = (have, want)

    declared = set()
    for service in master or []:
        key = (service["name"], service.get("type", "inet"))
        declared.add(key)
        have = current_master.get(key)
        label = "%s/%s" % key
        if service.get("state", "present") == "absent":
            if have is not None:
                changes.master[label] = (_service_line(key[0], key[1], have), None)
                changes.master_remove.append(label)
            continue
        front = _front_target(current_master, service)
        if front is not None:
            # postscreen stays the front door; its smtpd pass service gets the listener's settings.
            changes.kept.append("postscreen %s %s in front of %s %s" % (key[0], key[1], front[0], front[1]))
            pass_entry = current_master[front]
            service = dict(service, name=front[0], type=front[1], **{f: pass_entry.get(f) for f in MASTER_FIELDS})
            key, have, label = front, pass_entry, "%s/%s" % front
            declared.add(key)
        want = {f: str(service.get(f) or "-") for f in MASTER_FIELDS}
        want["command"] = " ".join(str(service["command"]).split())
        want["overrides"] = {k: to_postconf_value(v) for k, v in (service.get("overrides") or {}).items() if v is not None}
        if adopt and have is not None:
            for name, value in sorted(have["overrides"].items()):
                if name not in want["overrides"] and not RELAY_OVERRIDE_RE.search(name):
                    want["overrides"][name] = value
                    changes.kept.append("%s/%s: -o %s=%s" % (key[0], key[1], name, value))
        if (
            have is None
            or any(have.get(f) != want[f] for f in MASTER_FIELDS + ("command",))
            or {k: normalize_value(v) for k, v in have["overrides"].items()} != {k: normalize_value(v) for k, v in want["overrides"].items()}
        ):
            new_line = format_master_entry(dict(service, **want))
            changes.master[label] = (_service_line(key[0], key[1], have), new_line)
            changes.master_set.append((label, new_line))

    for key, have in sorted(current_master.items()):
        if key in declared:
            continue
        label = "%s/%s" % key
        purge = purge_commands and key[1] == "inet" and have["command"].split()[0] in purge_commands
        if purge and (not adopt or label in owned):
            changes.master[label] = (_service_line(key[0], key[1], have), None)
            changes.master_remove.append(label)
        elif label not in STOCK_SERVICES:
            changes.kept.append(_kept_service_text(key, have))

    for name in sorted(current_main):
        if name not in (main or {}) and KEPT_MAIN_RE.search(name) and current_main[name] != "":
            changes.kept.append("%s = %s (main.cf)" % (name, current_main[name]))

    for spec in files or []:
        path = spec["path"]
        have = current_files.get(path) or {}
        reasons = []
        if have.get("content") != spec["content"]:
            reasons.append("content")
        if have.get("mode") is not None and have["mode"] != int(str(spec.get("mode") or "0644"), 8):
            reasons.append("mode")
        if spec.get("map_type") in HASHED_MAP_TYPES and not have.get("db_fresh"):
            reasons.append("postmap")
        if reasons:
            changes.files[path] = (have.get("content"), spec["content"], reasons)
    return changes


def ownership_record(master):
    """Content of the ownership record for the desired master.cf services (deterministic: a rerun
    with the same policy writes the same bytes, so it never counts as a change)."""
    labels = sorted(set("%s/%s" % (s["name"], s.get("type", "inet")) for s in master or [] if s.get("state", "present") == "present"))
    return json.dumps({"comment": OWNERSHIP_HEADER, "master": labels}, indent=1, sort_keys=True) + "\n"


def parse_ownership(text):
    """Labels an earlier run recorded as its own; None when there is no (readable) record: the host
    was never converged by this collection, so nothing on it is ours."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    labels = data.get("master") if isinstance(data, dict) else None
    return set(str(item) for item in labels) if isinstance(labels, list) else None


# --------------------------------------------------------------------------------------------
# The applier
# --------------------------------------------------------------------------------------------


class PostfixApplier(object):
    """Read, diff, stage, validate, commit, reload, confirm, roll back.

    ``run`` is a callable(args list) -> (rc, stdout, stderr), normally AnsibleModule.run_command.
    """

    def __init__(
        self,
        run,
        config_dir="/etc/postfix",
        backup_dir="/var/backups/postfix",
        postconf="postconf",
        postfix="postfix",
        postmap="postmap",
        confirm_timeout=15.0,
        run_tty=None,
    ):
        self.run = run
        self.config_dir = config_dir
        self.backup_dir = backup_dir
        self.postconf = postconf
        self.postfix = postfix
        self.postmap = postmap
        self.confirm_timeout = confirm_timeout
        self.run_tty = run_tty or run_with_tty
        self.log = []
        self.warnings = []

    # -- reading ---------------------------------------------------------------------------
    def _postconf(self, args, config_dir=None, strict=False):
        cmd = [self.postconf, "-c", config_dir or self.config_dir] + list(args)
        rc, out, err = self.run(cmd)
        if rc != 0 or (strict and err.strip()):
            raise PostfixError("%s failed (rc=%s): %s" % (" ".join(cmd), rc, (err or out).strip()))
        return out

    def read_state(self, config_dir=None):
        config_dir = config_dir or self.config_dir
        if not os.path.exists(os.path.join(config_dir, "main.cf")):
            main = {}
        else:
            main = parse_postconf_n(self._postconf(["-n"], config_dir))
        if not os.path.exists(os.path.join(config_dir, "master.cf")):
            return main, {}
        services = parse_postconf_M(self._postconf(["-M"], config_dir))
        parse_postconf_P(self._postconf(["-P"], config_dir), services)
        return main, services

    def read_files(self, files):
        current = {}
        for spec in files or []:
            path = self._abs(spec["path"])
            info = {"content": None, "mode": None, "db_fresh": False}
            if os.path.exists(path):
                with open(path, "r") as handle:
                    info["content"] = handle.read()
                info["mode"] = stat.S_IMODE(os.stat(path).st_mode)
                db = path + ".db"
                if spec.get("map_type") in HASHED_MAP_TYPES and os.path.exists(db):
                    info["db_fresh"] = os.stat(db).st_mtime >= os.stat(path).st_mtime
            current[spec["path"]] = info
        return current

    def _abs(self, path):
        return path if os.path.isabs(path) else os.path.join(self.config_dir, path)

    def _rel(self, path):
        """Path of a managed file relative to config_dir (files must live under it)."""
        full = os.path.normpath(self._abs(path))
        root = os.path.normpath(self.config_dir)
        if not full.startswith(root + os.sep):
            raise PostfixError("file %s is outside %s: only files under the configuration directory are staged with it" % (path, root))
        return os.path.relpath(full, root)

    def plan(self, main, master, files, purge_commands=(), adopt=False, ownership_file=None):
        """The ChangeSet. With ``ownership_file`` (a path under config_dir) the record of what this
        collection wrote is read (purge in adopt mode removes only what it lists) and rewritten in the same
        transaction: ``files`` gets its spec appended (callers pass the same list to stage and validate)."""
        owned = None
        if ownership_file:
            owned = parse_ownership(self.read_files([{"path": ownership_file}])[ownership_file]["content"])
            files.append({"path": ownership_file, "content": ownership_record(master), "mode": "0644", "map_type": None})
        for spec in files or []:
            self._rel(spec["path"])
        cur_main, cur_master = self.read_state()
        cur_files = self.read_files(files)
        changes = compute_changes(cur_main, cur_master, cur_files, main, master, files, purge_commands, adopt=adopt, owned=owned)
        if ownership_file and owned is None:
            changes.kept.insert(0, "first run on this host: no ownership record (%s), nothing here is ours yet" % ownership_file)
        return changes

    # -- staging & validation ----------------------------------------------------------------
    def stage(self, changes, files):
        """A validated-later copy of config_dir with the changes applied; removed again if staging fails."""
        stage = tempfile.mkdtemp(prefix="mailsec-postfix-stage-")
        try:
            return self._stage_into(stage, changes, files)
        except BaseException:
            # No copy of /etc/postfix may stay behind in the temp dir, whatever failed.
            shutil.rmtree(stage, ignore_errors=True)
            raise

    def _stage_into(self, stage, changes, files):
        target = os.path.join(stage, "etc")
        shutil.copytree(self.config_dir, target, symlinks=True)
        for name in ("main.cf", "master.cf"):
            path = os.path.join(target, name)
            if not os.path.exists(path):
                open(path, "a").close()
        sets = ["%s=%s" % (n, v[1]) for n, v in sorted(changes.main.items()) if v[1] is not None]
        unsets = [n for n, v in sorted(changes.main.items()) if v[1] is None]
        if sets:
            self._postconf(["-e"] + sets, target)
        if unsets:
            self._postconf(["-X"] + unsets, target)
        for label, line in changes.master_set:
            self._postconf(["-M", "-e", "%s=%s" % (label, line)], target)
        if changes.master_remove:
            self._postconf(["-M", "-X"] + changes.master_remove, target)
        by_path = {spec["path"]: spec for spec in files or []}
        touched = ["main.cf", "master.cf"]
        for path in changes.files:
            spec = by_path[path]
            rel = self._rel(path)
            staged = os.path.join(target, rel)
            if not os.path.isdir(os.path.dirname(staged)):
                os.makedirs(os.path.dirname(staged), 0o755)
            with open(staged, "w") as handle:
                handle.write(spec["content"])
            os.chmod(staged, int(str(spec.get("mode") or "0644"), 8))
            touched.append(rel)
            if spec.get("map_type") in HASHED_MAP_TYPES:
                self._check_run([self.postmap, "-c", target, "%s:%s" % (spec["map_type"], staged)], "postmap")
                touched.append(rel + ".db")
        return stage, target, touched

    def _check_run(self, cmd, what, fail_on_stderr=True):
        rc, out, err = self.run(cmd)
        noise = [ln for ln in (err or "").splitlines() if ln.strip()]
        if rc != 0 or (fail_on_stderr and noise):
            detail = "; ".join(noise) or out.strip() or "rc=%s" % rc
            raise PostfixError("%s rejected the staged configuration: %s" % (what, detail))
        return out

    def validate(self, target, main, master, files, missing_files_fatal=True):
        # Warnings (unused/unknown parameters, bad master.cf lines) go to stderr: any is a failure.
        self._check_run([self.postconf, "-c", target, "-n"], "postconf -n")
        self._check_run([self.postconf, "-c", target, "-M"], "postconf -M")
        # postfix check: fatal problems (rc != 0) fail; its permission warnings concern the whole
        # installation, so they are reported, not fatal.
        rc, out = self.run_tty([self.postfix, "-c", target, "check"])
        if rc != 0:
            reasons = [ln.strip() for ln in out.splitlines() if "fatal" in ln or "error" in ln] or [out.strip()]
            raise PostfixError("postfix check rejected the staged configuration: %s" % "; ".join(reasons))
        for spec in files or []:
            if spec.get("map_type") == "cidr":
                staged = os.path.join(target, self._rel(spec["path"]))
                # rc 1 only means "not found"; syntax errors are warnings on stderr.
                rc, out, err = self.run([self.postmap, "-q", "0.0.0.0", "cidr:" + staged])
                if rc not in (0, 1) or err.strip():
                    raise PostfixError("cidr table %s is invalid: %s" % (spec["path"], (err or out).strip()))
        # Files that smtpd opens at run time (certificates, keys) must exist before we switch.
        staged_main = parse_postconf_n(self._postconf(["-n"], target))
        refs = [(n, v) for n, v in staged_main.items() if FILE_PARAM_RE.search(n)]
        for service in master or []:
            if service.get("state", "present") == "present":
                refs += [(n, to_postconf_value(v)) for n, v in (service.get("overrides") or {}).items() if v is not None and FILE_PARAM_RE.search(n)]
        for name, value in refs:
            for path in (value or "").replace(",", " ").split():
                if path.startswith("$"):
                    continue
                if not os.path.isfile(path) or not os.access(path, os.R_OK):
                    problem = "%s = %s: file missing or unreadable" % (name, path)
                    if missing_files_fatal:
                        raise PostfixError(problem)
                    self.warnings.append(problem)
        return out

    # -- committing --------------------------------------------------------------------------
    def commit(self, target, touched, backup_root, committed=None):
        """Swap staged files in one by one (each an atomic rename); return what was replaced.

        ``committed`` is filled as it goes, so a failure half-way still lets the caller roll back.
        """
        committed = [] if committed is None else committed
        for rel in touched:
            src = os.path.join(target, rel)
            dst = os.path.join(self.config_dir, rel)
            if not os.path.exists(src):
                continue
            if os.path.exists(dst) and _same_file_content(src, dst):
                continue
            existed = os.path.exists(dst)
            if existed:
                saved = os.path.join(backup_root, rel)
                if not os.path.isdir(os.path.dirname(saved)):
                    os.makedirs(os.path.dirname(saved), 0o700)
                shutil.copy2(dst, saved)
            elif not os.path.isdir(os.path.dirname(dst)):
                os.makedirs(os.path.dirname(dst), 0o755)
            tmp = dst + ".mailsec-new"
            _copy_then_rename(src, tmp, dst)
            committed.append((rel, existed))
        return committed

    def rollback(self, committed, backup_root):
        for rel, existed in reversed(committed):
            dst = os.path.join(self.config_dir, rel)
            if existed:
                _copy_then_rename(os.path.join(backup_root, rel), dst + ".mailsec-old", dst)
            elif os.path.exists(dst):
                os.unlink(dst)

    # -- running Postfix -----------------------------------------------------------------------
    def is_running(self):
        rc, out, err = self.run([self.postfix, "-c", self.config_dir, "status"])
        return rc == 0

    def _control(self, action):
        rc, out, err = self.run([self.postfix, "-c", self.config_dir, action])
        if rc != 0:
            raise PostfixError("postfix %s failed: %s" % (action, (err or out).strip()))
        self.log.append("postfix %s" % action)

    def activate(self, changes, was_running):
        restart_keys = ("inet_interfaces", "inet_protocols")
        if was_running and any(k in changes.main for k in restart_keys):
            # postconf(5): inet_interfaces/inet_protocols changes need stop + start, not reload.
            self._control("stop")
            self._control("start")
            return "restarted"
        if was_running:
            self._control("reload")
            return "reloaded"
        self._control("start")
        return "started"

    def _reactivate_previous(self, was_running):
        # A full restart, not a reload: master throttles a service whose processes died at startup,
        # and only a restart clears that at once.
        if self.is_running():
            self._control("stop")
        if was_running:
            self._control("start")
            self.confirm()

    def listeners(self):
        """(service, host, port, wrapper, starttls) for every inet smtpd service in the live config."""
        main, services = self.read_state()
        level = main.get("smtpd_tls_security_level", "none")
        interfaces = main.get("inet_interfaces", "all")
        result = []
        pass_overrides = {}
        for (name, stype), entry in services.items():
            if stype == "pass" and entry["command"].split()[:1] == ["smtpd"]:
                pass_overrides = entry["overrides"]
        for (name, stype), entry in sorted(services.items()):
            program = entry["command"].split()[:1]
            if stype != "inet" or program not in (["smtpd"], ["postscreen"]):
                continue
            host, dummy, port = name.rpartition(":")
            host = host.strip("[]")
            if not host:
                first = interfaces.replace(",", " ").split()[0] if interfaces else "all"
                host = "127.0.0.1" if first in ("all", "loopback-only", "localhost") or first.startswith("$") else first
            try:
                port_num = int(port) if port.isdigit() else socket.getservbyname(port, "tcp")
            except OSError:
                raise PostfixError("master.cf service %s: unknown port name %s" % (name, port))
            ov = entry["overrides"]
            if program == ["postscreen"]:
                # A postscreen front hands a trusted (loopback) client straight to its smtpd pass service.
                ov = dict(pass_overrides, **ov)
            wrapper = ov.get("smtpd_tls_wrappermode", main.get("smtpd_tls_wrappermode", "no")) == "yes"
            starttls = ov.get("smtpd_tls_security_level", level) in ("may", "encrypt") and not wrapper
            result.append((name, host, port_num, wrapper, starttls))
        return result

    def confirm(self):
        """Every smtpd listener must greet with 220 (and complete TLS where TLS is configured)."""
        pending = self.listeners()
        dummy, failed = confirm_all(
            pending, lambda item: smtp_greets(item[1], item[2], wrapper=item[3], starttls=item[4]), self.confirm_timeout, errors=(OSError, PostfixError)
        )
        if failed:
            raise PostfixError("listener check failed: %s" % "; ".join("%s:%s %s" % (item[1], item[2], failed[item]) for item in pending if item in failed))
        return True

    # -- the whole transaction ----------------------------------------------------------------
    def apply(self, changes, main, master, files, reload=True, backup=True, confirm=True):
        result = {"reloaded": False, "backup_path": None, "validation": None, "service": None}
        stage, target, touched = self.stage(changes, files)  # removes its own directory if it fails
        backup_root = os.path.join(self.backup_dir, time.strftime("%Y%m%dT%H%M%S") + "-%d" % os.getpid())
        committed = []
        try:
            was_running = self.is_running() if reload else False
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        try:
            result["validation"] = self.validate(target, main, master, files)
            os.makedirs(backup_root, 0o700)
            self.commit(target, touched, backup_root, committed)
            if reload:
                result["service"] = self.activate(changes, was_running)
                result["reloaded"] = True
                if confirm:
                    self.confirm()
        except (PostfixError, OSError) as exc:
            reason = str(exc)
            if committed:
                self.rollback(committed, backup_root)
                reason += "; rolled back to the previous configuration"
                if reload:
                    try:
                        self._reactivate_previous(was_running)
                    except PostfixError as again:
                        reason += " (and reactivating it failed too: %s)" % again
            raise PostfixError(reason)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            if (not backup or not committed) and os.path.isdir(backup_root):
                # Nothing was replaced (or no backup wanted): an empty or unwanted backup dir is a stray copy.
                shutil.rmtree(backup_root, ignore_errors=True)
        if backup and committed:
            result["backup_path"] = backup_root
        elif os.path.isdir(backup_root) and not os.listdir(backup_root):
            os.rmdir(backup_root)
        return result


def run_with_tty(cmd):
    """Run cmd with stderr on a pseudo-terminal: postfix(1) and postfix-script only print their
    warnings and fatal errors to stderr when it is a terminal (otherwise they go to syslog only)."""
    import pty
    import subprocess

    master_fd, slave_fd = pty.openpty()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave_fd, stderr=slave_fd, env=dict(os.environ, LANG="C", LC_ALL="C"))
        os.close(slave_fd)
        slave_fd = None
        chunks = []
        while True:
            try:
                data = os.read(master_fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        rc = proc.wait()
    finally:
        if slave_fd is not None:
            os.close(slave_fd)
        os.close(master_fd)
    return rc, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def _copy_then_rename(src, tmp, dst):
    """Copy src to tmp beside dst, then rename over dst (atomic); never leaves a partial tmp behind."""
    try:
        shutil.copy2(src, tmp)
        os.rename(tmp, dst)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _same_file_content(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return hashlib.sha256(fa.read()).digest() == hashlib.sha256(fb.read()).digest() and stat.S_IMODE(os.stat(a).st_mode) == stat.S_IMODE(os.stat(b).st_mode)


def smtp_greets(host, port, wrapper=False, starttls=False, timeout=5.0):
    """Connect, expect 220; with TLS configured also complete a TLS handshake (bad key/cert shows here).

    The SMTP exchange is mta_common.greet's; what is Postfix's own is that STARTTLS must be offered
    wherever TLS is configured. Raises PostfixError or OSError (ssl.SSLError included)."""
    try:
        greet(host, port, implicit_tls=wrapper, starttls=starttls, timeout=timeout)
    except StartTLSNotOffered as exc:
        # Postfix quietly stops offering STARTTLS when it cannot load its certificate or key.
        raise PostfixError("TLS is configured but STARTTLS is not offered") from exc
    except SMTPCheckError as exc:
        raise PostfixError(str(exc)) from exc
    return True
