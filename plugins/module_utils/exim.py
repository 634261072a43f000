# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exim (Debian exim4, split configuration) for the mailsec.relay policy.

Three parts, all without Ansible imports so that tests and the filter use them directly:

- ``render(effective)``: the effective relay policy (docs/policy-model.md) -> the files we own
  under /etc/exim4 (a main macro file, our ACLs, the Dovecot authenticators, the smarthost router
  and update-exim4.conf.conf). Debian's own conf.d files are never edited.
- ``derive_checks(effective)``: the ``exim -bh`` test matrix the candidate configuration must pass
  (expectations come from the policy semantics, not from the rendered ACL).
- ``EximConfig``: stage /etc/exim4 in a temp dir, build and validate the candidate (``-bV`` and the
  ``-bh`` matrix), and only then install, regenerate, reload, confirm and roll back on failure.

Why split config with our own files only: the Debian ACL cannot be patched from outside for
never-relay (its relay accepts come before any local hook), and editing its conffiles causes
dpkg prompts. Debian reads ``MAIN_ACL_CHECK_RCPT`` etc. as ``.ifndef`` macros, and the macros
update-exim4.conf generates from dc_* are ``.ifndef`` too, so the macros defined in our main file
(sorted first: ``000_``) win, including ``MAIN_RELAY_NETS``, to which update-exim4.conf would
otherwise always append loopback.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import stat
import tempfile
import time

from ansible_collections.mailsec.relay.plugins.module_utils import grammar, relay_rules
from ansible_collections.mailsec.relay.plugins.module_utils.mta_common import confirm_all, greet

ETC_EXIM = "/etc/exim4"
MAIN_FILE = "/etc/exim4/conf.d/main/000_mailsec_relay"
ACL_FILE = "/etc/exim4/conf.d/acl/35_mailsec_relay"
AUTH_FILE = "/etc/exim4/conf.d/auth/05_mailsec_dovecot"
ROUTER_FILE = "/etc/exim4/conf.d/router/050_mailsec_smarthost"
UPDATE_CONF = "/etc/exim4/update-exim4.conf.conf"
# Outbound through an authenticated smarthost (issue 14): our own transport requires TLS and AUTH.
# The login itself is Debian's client authenticator "plain" (conf.d/auth/30_exim4-config_examples: it
# sends only inside TLS), fed from Debian's credentials file, where the role writes the smarthost's line
# under no_log (README.Debian: "Using Exim as a smarthost client"). Exim refuses a second client
# authenticator with the same public name, so we cannot bring our own. The password is never rendered.
TRANSPORT_FILE = "/etc/exim4/conf.d/transport/30_mailsec_smarthost"
SMARTHOST_PASSWD_FILE = "/etc/exim4/passwd.client"
SMARTHOST_TRANSPORT = "mailsec_smarthost_smtp"
SMARTHOST_AUTHENTICATOR = "plain"
# Exim reads this file instead of everything else when it exists (Debian README): never ours.
OVERRIDE_FILE = "/etc/exim4/exim4.conf"
OWNED_FILES = (MAIN_FILE, ACL_FILE, AUTH_FILE, ROUTER_FILE, UPDATE_CONF, TRANSPORT_FILE)

DOVECOT_SOCKET = "/var/run/dovecot/auth-client"
AUTHENTICATOR_PLAIN = "mailsec_dovecot_plain"
AUTHENTICATOR_LOGIN = "mailsec_dovecot_login"
HEADER = "# Managed by mailsec.relay (role mailsec.relay.exim): local changes are overwritten.\n"

CHECK_SENDER = "mailsec-check@example.com"
CHECK_FOREIGN_RCPT = "mailsec-check@example.net"
# A local part no relay domain's recipient list names (recipient validation checks).
CHECK_UNKNOWN_LOCAL_PART = "mailsec-unknown-recipient"
# Addresses tried, in order, as "a client outside every list" for the -bh matrix (documentation ranges).
OUTSIDE_CANDIDATES = ("203.0.113.254", "198.51.100.254", "2001:db8:ffff::fe", "203.0.113.1", "198.51.100.1")


class EximError(Exception):
    """A failure of the Exim configuration cycle; ``details`` go to the module result."""

    def __init__(self, message, **details):
        super(EximError, self).__init__(message)
        self.details = details


# --------------------------------------------------------------------------------------------
# Rendering: effective policy -> files
# --------------------------------------------------------------------------------------------


def _hostlist(items):
    """An Exim host list with ';' as separator (IPv6 addresses contain ':')."""
    items = [str(item) for item in items]
    return "<; " + " ; ".join(items) if items else ""


def _domainlist(items):
    return " : ".join(items)


def _listener_test(listener, listeners):
    """Exim expansion condition (no ${if}) that is true on connections received by ``listener``.

    A wildcard listener yields to listeners bound to a specific address on the same port, so the
    most specific listener wins, as the policy model says.
    """
    port = "eq{$received_port}{%d}" % int(listener["port"])
    if listener["address"] != "*":
        return "and{{%s}{match_ip{$received_ip_address}{<; %s}}}" % (port, listener["address"])
    specific = [other["address"] for other in listeners if other["port"] == listener["port"] and other["address"] != "*"]
    if not specific:
        return port
    return "and{{%s}{!match_ip{$received_ip_address}{%s}}}" % (port, _hostlist(specific))


def _any_listener(selected, listeners):
    """``${if or{...}}`` over the selected listeners; a condition that is never true when none."""
    if not selected:
        return "${if eq{1}{0}}"
    return "${if or{%s}}" % "".join("{%s}" % _listener_test(item, listeners) for item in selected)


def list_name(kind, listener):
    """The hostlist name of one listener's ``kind`` list (public: exim_readback reads these back)."""
    return "mailsec_%s_%s" % (kind, re.sub(r"[^a-z0-9_]", "_", listener["name"].lower()))


_list_name = list_name  # the renderer's own callers, unchanged


def _smarthost_route(smarthost):
    """'host', '[host]', '[host]:port' (policy form) -> an Exim host list with ';' separators."""
    text = smarthost.strip()
    match = re.match(r"^\[([^\]]+)\](?::(\d+))?$", text)
    if match:
        host, port = match.group(1), match.group(2)
    elif text.count(":") == 1:
        host, _sep, port = text.partition(":")
    else:
        host, port = text, None
    # No blank after '<;': manualroute splits route_data at white space into hosts and options.
    if not port:
        return "<;%s" % host
    # With ';' as separator a port follows a single ':'; an IPv6 literal needs brackets then.
    return "<;[%s]:%s" % (host, port) if ":" in host else "<;%s:%s" % (host, port)


# GnuTLS priority string: its NORMAL set without the versions below TLS 1.2.
GNUTLS_PRIORITY = "NORMAL:-VERS-TLS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"


def tls_enabled(effective):
    tls = effective.get("tls") or {}
    return bool(tls.get("cert") and tls.get("key")) and any(item["tls"] != "none" for item in effective["listeners"])


def auth_listeners(effective):
    return [item for item in effective["listeners"] if item["role"] == "submission" and item.get("auth")]


def local_interfaces(effective):
    """local_interfaces with explicit ports: a wildcard listener binds both address families."""
    items = []
    for item in effective["listeners"]:
        addresses = ["::0", "0.0.0.0"] if item["address"] == "*" else [item["address"]]
        for address in addresses:
            entry = "%s.%d" % (address, int(item["port"]))
            if entry not in items:
                items.append(entry)
    return _hostlist(items)


def hosted_local_domains(effective):
    """Domains Exim delivers itself: local, virtual mailbox and virtual alias (issue 15)."""
    domains = list(effective["local_domains"])
    for kind in ("virtual_mailbox_domains", "virtual_alias_domains"):
        domains += [domain for domain in effective.get(kind) or [] if domain not in domains]
    return domains


def relay_recipient_list(effective):
    """Exim address list of the recipients a relay domain accepts ('' when validation is off).

    Postfix's '@domain' catch-all is Exim's '*@domain'; file maps are read with lsearch (the
    source text of a hash table), where '*@domain' entries match as catch-alls too.
    """
    if not effective.get("relay_recipient_validation"):
        return ""
    items = [("*" + item if item.startswith("@") else item) for item in effective.get("relay_recipients") or []]
    for ref in effective.get("relay_recipient_maps") or []:
        kind, _colon, path = ref.partition(":")
        if kind not in ("hash", "btree", "lmdb", "cdb", "dbm", "texthash") or not path.startswith("/"):
            raise EximError("relay recipient map %s: Exim reads only file tables (hash, btree, lmdb, cdb, dbm, texthash)" % ref)
        items.append("lsearch*@;%s" % path)
    return "<; " + " ; ".join(items)


def render_main(effective):
    listeners = effective["listeners"]
    ports = []
    for item in listeners:
        if int(item["port"]) not in ports:
            ports.append(int(item["port"]))
    lines = [
        HEADER,
        "# Policy: profile %s. Macros here are defined before Debian's .ifndef defaults and before" % effective["profile"],
        "# the macros update-exim4.conf generates from dc_*, so these values win.",
        "",
        "MAIN_HARDCODE_PRIMARY_HOSTNAME = %s" % effective["hostname"],
        # Qualify unqualified addresses (RCPT TO:<postmaster>, RFC 5321 4.5.1) with our own name,
        # not /etc/mailname, so that they are local.
        "MAIN_QUALIFY_DOMAIN = %s" % effective["hostname"],
        # '@' is the primary hostname: the host's own name is always local, as on Debian.
        # Virtual mailbox and alias domains are local to Exim; their routers (delivery) stay the host's.
        "MAIN_LOCAL_DOMAINS = %s" % _domainlist(["@", "localhost"] + hosted_local_domains(effective)),
        "MAIN_RELAY_TO_DOMAINS = %s" % _domainlist(effective["relay_domains"]),
        # Replaces dc_relay_nets, to which update-exim4.conf always appends 127.0.0.1 : ::1.
        "MAIN_RELAY_NETS = %s" % _hostlist(list(effective["relay_networks"]) + list(effective["loopback_networks"])),
        "MAIN_LOCAL_INTERFACES = %s" % local_interfaces(effective),
        "MAIN_ACL_CHECK_MAIL = acl_mailsec_mail",
        "MAIN_ACL_CHECK_RCPT = acl_mailsec_rcpt",
        "",
        "domainlist mailsec_blocked_domains = %s" % _domainlist(effective.get("blocked_domains") or []),
        "hostlist mailsec_never_relay_hosts = %s" % _hostlist(effective["never_relay_networks"]),
        "hostlist mailsec_loopback_hosts = %s" % _hostlist(effective["loopback_networks"]),
    ]
    for item in listeners:
        if item["role"] == "mx":
            grants = list(item["relay_networks"])
            if effective.get("client_names"):
                # Names need rDNS + forward confirmation; an unresolvable client simply does not match.
                grants += ["+ignore_unknown"] + ["*" + name if name.startswith(".") else name for name in effective["client_names"]]
            lines.append("hostlist %s = %s" % (_list_name("relay", item), _hostlist(grants)))
        if item.get("connect_allow"):
            lines.append("hostlist %s = %s" % (_list_name("connect_allow", item), _hostlist(item["connect_allow"])))
        if item.get("connect_deny"):
            lines.append("hostlist %s = %s" % (_list_name("connect_deny", item), _hostlist(item["connect_deny"])))
    lines += [
        "",
        "daemon_smtp_ports = %s" % " : ".join(str(port) for port in ports),
        "acl_smtp_connect = acl_mailsec_connect",
        # CVE-2023-51766 (Exim < 4.97.1 ends DATA at <LF>.<CR><LF>), mitigated as Postfix's
        # reject_unauth_pipelining does: a transaction smuggled behind a fake end of data must
        # not get through. With a predata ACL Exim checks at DATA that nothing was sent ahead
        # of its 354 (554 synchronization error, then it drops the connection); BDAT has no
        # such check, so no CHUNKING; and no PIPECONNECT (commands before the greeting).
        "acl_smtp_predata = acl_mailsec_predata",
        "chunking_advertise_hosts =",
        "pipelining_connect_advertise_hosts =",
    ]
    lines += _client_limit_main(effective)
    if effective.get("smarthost_tls") in ("encrypt", "verify"):
        # Debian's remote_smtp transport (used by the mailsec_smarthost router): TLS or stay queued.
        lines.insert(lines.index("MAIN_ACL_CHECK_MAIL = acl_mailsec_mail"), "REMOTE_SMTP_HOSTS_REQUIRE_TLS = *")
    implicit = [int(item["port"]) for item in listeners if item["tls"] == "implicit"]
    if tls_enabled(effective):
        starttls = [item for item in listeners if item["tls"] in ("starttls", "required")]
        lines += [
            "MAIN_TLS_ENABLE = yes",
            "MAIN_TLS_CERTIFICATE = %s" % effective["tls"]["cert"],
            "MAIN_TLS_PRIVATEKEY = %s" % effective["tls"]["key"],
            # STARTTLS only where a listener offers it (tls: none stays plain).
            "MAIN_TLS_ADVERTISE_HOSTS = %s" % _any_listener_hosts(starttls, listeners),
            # Debian builds Exim with GnuTLS, whose system default still completes TLS 1.0/1.1:
            # TLS 1.2 is the floor (RFC 8996, as Postfix's smtpd_tls_protocols here).
            "tls_require_ciphers = %s" % GNUTLS_PRIORITY,
        ]
        if implicit:
            lines.append("tls_on_connect_ports = %s" % " : ".join(str(port) for port in implicit))
    # AUTH only on submission listeners and only inside TLS; never on mx listeners (port 25).
    auth = auth_listeners(effective)
    if auth and tls_enabled(effective):
        lines.append("auth_advertise_hosts = ${if and{{%s}{def:tls_in_cipher}}{*}{}}" % _any_listener(auth, listeners)[len("${if ") : -1])
    else:
        lines.append("auth_advertise_hosts =")
    return "\n".join(lines) + "\n"


def _any_listener_hosts(selected, listeners):
    """A host list expansion: '*' on the selected listeners, empty (nobody) elsewhere."""
    if not selected:
        return ""
    return "${if or{%s}{*}{}}" % "".join("{%s}" % _listener_test(item, listeners) for item in selected)


def render_acl(effective):
    listeners = effective["listeners"]
    mx = [item for item in listeners if item["role"] == "mx"]
    submission = [item for item in listeners if item["role"] == "submission"]
    tls_required = [item for item in listeners if item["tls"] == "required"]
    auth = auth_listeners(effective)
    deny_relay = "550 5.7.1 Relay not permitted"
    out = [HEADER]

    out += [
        "acl_mailsec_connect:",
        "  # local SMTP sessions (exim -bs from this host's own processes)",
        "  accept  hosts = :",
    ]
    for item in listeners:
        if item.get("connect_deny"):
            out += [
                "  deny    condition = %s" % _any_listener([item], listeners),
                "          hosts = +%s" % _list_name("connect_deny", item),
                "          message = 554 5.7.1 Connection refused by policy",
            ]
        if item.get("connect_allow"):
            out += [
                "  deny    condition = %s" % _any_listener([item], listeners),
                "          !hosts = +%s" % _list_name("connect_allow", item),
                "          message = 554 5.7.1 Connection refused by policy",
            ]
    out += _client_limit_connect_acl(effective)
    out += ["  accept", ""]
    out += _auth_limit_acl(effective)

    out += [
        "acl_mailsec_mail:",
        "  accept  hosts = :",
    ]
    if tls_required:
        # AUTH is only advertised inside TLS, so an authenticated session has had TLS already.
        out += [
            "  deny    condition = %s" % _any_listener(tls_required, listeners),
            "          !encrypted = *",
            "          !authenticated = *",
            "          message = 530 5.7.0 Must issue a STARTTLS command first",
        ]
    if submission:
        # RFC 6409 4.3: submission refuses MAIL before AUTH with 530.
        out += [
            "  deny    condition = %s" % _any_listener(submission, listeners),
            "          !authenticated = *",
            "          message = 530 5.7.0 Authentication required",
        ]
    out += _sender_identity_acl(effective)
    out += ["  accept", ""]

    out += [
        "acl_mailsec_predata:",
        "  # Its presence makes Exim refuse message data sent before the 354 (see the main file).",
    ]
    out += sender_rate_acl(effective)
    out += [
        "  accept",
        "",
    ]

    out += [
        "acl_mailsec_rcpt:",
        "  accept  hosts = :",
        "          control = dkim_disable_verify",
        "  # Debian's restricted local parts: percent hack, bang paths, hidden '@', pipes",
        "  deny    domains = +local_domains",
        "          local_parts = ^[.] : ^.*[@%!/|`#&?]",
        "          message = 550 5.7.1 Restricted characters in address",
        "  deny    domains = !+local_domains",
        "          local_parts = ^[./|] : ^.*[@%!`#&?] : ^.*/\\\\.\\\\./",
        "          message = 550 5.7.1 Restricted characters in address",
        "  # blocked domains: refused for everyone, trusted and authenticated clients included",
        "  deny    domains = +mailsec_blocked_domains",
        "          message = 554 5.7.1 Mail for $domain is not accepted here",
        "  # never-relay comes before every grant, AUTH included",
        "  deny    hosts = +mailsec_never_relay_hosts",
        "          domains = !+local_domains : !+relay_to_domains",
        "          message = %s" % deny_relay,
    ]
    if submission:
        out += [
            "  # submission: nothing without AUTH, and AUTH relays only where the policy allows it",
            "  deny    condition = %s" % _any_listener(submission, listeners),
            "          !authenticated = *",
            "          message = 530 5.7.0 Authentication required",
        ]
        if auth:
            out += [
                "  accept  condition = %s" % _any_listener(auth, listeners),
                "          authenticated = *",
                "          control = submission/sender_retain",
                "          control = dkim_disable_verify",
            ]
        out += [
            "  deny    condition = %s" % _any_listener(submission, listeners),
            "          message = %s" % deny_relay,
        ]
    validated = relay_recipient_list(effective)
    if mx and validated:
        out += [
            "  # recipient validation for relay domains: unknown recipients refused here, not bounced later",
            "  deny    domains = +relay_to_domains",
            "          !recipients = %s" % validated,
            "          message = 550 5.1.1 Unknown user in a relay domain",
        ]
    if mx:
        out += [
            "  # inbound on mx listeners: local and relay domains from anyone",
            "  accept  condition = %s" % _any_listener(mx, listeners),
            "          local_parts = postmaster",
            "          domains = +local_domains : +relay_to_domains",
            "  accept  condition = %s" % _any_listener(mx, listeners),
            "          domains = +local_domains : +relay_to_domains",
            "          endpass",
            "          message = 550 5.1.1 Unknown user",
            "          verify = recipient",
            "  # relay networks per listener (and trusted loopback), never AUTH on these listeners",
        ]
        for item in mx:
            out += [
                "  accept  condition = %s" % _any_listener([item], listeners),
                "          hosts = +%s : +mailsec_loopback_hosts" % _list_name("relay", item),
                "          control = submission/sender_retain",
                "          control = dkim_disable_verify",
            ]
    out += ["  deny    message = %s" % deny_relay, ""]
    return "\n".join(out) + "\n"


def _client_limit_main(effective):
    """Main options for the per-client brakes (issue 14); 0 leaves a limit off."""
    limits = effective.get("client_limits")
    if not limits:
        return []
    # Relay networks and trusted loopback are exempt, as Postfix exempts $mynetworks.
    count = int(limits["connection_count"])
    lines = ["smtp_accept_max_per_host = ${if match_ip{$sender_host_address}{+relay_from_hosts}{0}{%d}}" % count] if count else []
    if limits["auth_rate"]:
        lines.append("acl_smtp_auth = acl_mailsec_auth")
    return lines


def _client_limit_connect_acl(effective):
    limits = effective.get("client_limits") or {}
    if not limits.get("connection_rate"):
        return []
    return [
        "  # connections per client and minute ('strict': a client that keeps trying stays refused)",
        "  defer   !hosts = +relay_from_hosts",
        "          ratelimit = %d / 1m / per_conn / strict / mailsec_conn:$sender_host_address" % int(limits["connection_rate"]),
        "          message = 421 4.7.0 Too many connections from your address, try later",
    ]


def _auth_limit_acl(effective):
    """AUTH commands per client and minute, as Postfix's smtpd_client_auth_rate_limit counts them."""
    limits = effective.get("client_limits") or {}
    if not limits.get("auth_rate"):
        return []
    return [
        "acl_mailsec_auth:",
        "  accept  hosts = :",
        "  # a password guesser is slowed down here and by Dovecot's auth penalty behind it",
        "  defer   !hosts = +relay_from_hosts",
        "          ratelimit = %d / 1m / per_cmd / strict / mailsec_auth:$sender_host_address" % int(limits["auth_rate"]),
        "          message = 454 4.7.0 Too many AUTH attempts from your address, try later",
        "  accept",
        "",
    ]


def sender_rate_acl(effective):
    """Per-login rate limits (issue 14), at DATA before the body is sent, as Postfix asks postfwd.

    ratelimit keyed on $authenticated_id: per_mail counts one per message, per_rcpt (outside the
    RCPT ACL) adds $recipients_count. Leaky (the default): refused messages do not count, so a
    throttled login gets its rate back as the window passes. Unauthenticated clients never reach
    DATA on submission listeners (530 at MAIL); port 25 is not limited here.
    """
    limits = effective.get("sender_rate_limits") or {}
    window = int(limits.get("window") or 0)
    out = []
    for key, per, reply in (
        ("messages", "per_mail", "451 4.7.1 Message limit reached for this login"),
        ("recipients", "per_rcpt", "451 4.7.1 Recipient limit reached for this login"),
    ):
        if not limits.get(key) or not auth_listeners(effective):
            continue
        out += [
            "  # %s per authenticated login per %ds" % (key, window),
            "  defer   authenticated = *",
            "          ratelimit = %d / %ds / %s / %s:$authenticated_id" % (int(limits[key]), window, per, SENDER_RATE_KEYS[key]),
            "          message = %s" % reply,
        ]
    return out


# ratelimit database keys of the per-login limits (the readback finds the limits by them).
SENDER_RATE_KEYS = {"messages": "mailsec_msg", "recipients": "mailsec_rcpt"}


def _sender_identity_acl(effective):
    """MAIL ACL lines: on sender_login_match listeners the login must own MAIL FROM (issue 14).

    Pairs 'login address' in one ';' list (logins have no whitespace, addresses no ';' or '$', as the
    policy checks); an address no login owns is refused as Postfix's
    reject_authenticated_sender_login_mismatch does. The null sender (bounces) is not checked.
    """
    listeners = effective["listeners"]
    checked = [item for item in listeners if item.get("sender_login_match") and item.get("auth")]
    if not checked:
        return []
    owners = effective.get("sender_logins") or {}
    pairs = " ; ".join("%s %s" % (login, address) for address in sorted(owners) for login in owners[address])
    return [
        "  # sender identity: an authenticated login sends only as the addresses it owns",
        "  deny    condition = %s" % _any_listener(checked, listeners),
        "          authenticated = *",
        "          !senders = :",
        "          !condition = ${if inlisti{$authenticated_id $sender_address}{<; %s}}" % pairs,
        "          message = 553 5.7.1 Sender address not owned by the authenticated login",
    ]


def render_auth(effective):
    """Dovecot authenticators, advertised only inside TLS (and only on submission listeners)."""
    out = [HEADER]
    for name, public, set_id in (
        (AUTHENTICATOR_PLAIN, "PLAIN", "$auth1"),
        (AUTHENTICATOR_LOGIN, "LOGIN", "$auth1"),
    ):
        out += [
            "%s:" % name,
            "  driver = dovecot",
            "  public_name = %s" % public,
            "  server_socket = %s" % DOVECOT_SOCKET,
            "  server_set_id = %s" % set_id,
            "  server_advertise_condition = ${if def:tls_in_cipher}",
            "",
        ]
    return "\n".join(out)


def render_router(effective):
    """Everything that is not local goes to the policy's smarthost (labs: the canary sink)."""
    return "\n".join(
        [
            HEADER,
            "mailsec_smarthost:",
            "  driver = manualroute",
            "  domains = ! +local_domains",
            "  transport = %s" % (SMARTHOST_TRANSPORT if uses_smarthost_transport(effective) else "remote_smtp"),
            "  route_data = %s%s" % (_smarthost_route(effective["smarthost"]), _lookup_option(effective["smarthost"])),
            "  host_find_failed = defer",
            "  same_domain_copy_routing = yes",
            "  no_more",
            "",
        ]
    )


def _lookup_option(smarthost):
    """A smarthost name is looked up by getaddrinfo (/etc/hosts, then DNS as the host resolves), as
    Postfix with smtp_host_lookup = native: manualroute's default tries DNS first and defers on a timeout."""
    return "" if grammar.parse_ip(smarthost_host(smarthost)) is not None else " byname"


def uses_smarthost_transport(effective):
    """Our own smtp transport serves the smarthost when it must authenticate or verify the certificate."""
    return bool(effective.get("smarthost") and (effective.get("smarthost_auth") or effective.get("smarthost_tls") == "verify"))


def smarthost_host(smarthost):
    """The $host Exim sees for the smarthost: the name or address without brackets and port."""
    return _smarthost_route(smarthost)[2:].rsplit(":", 1)[0].strip("[]") if re.search(r":\d+$", smarthost) else smarthost.strip("[]")


def smarthost_passwd_key(smarthost):
    """The smarthost's key in passwd.client: its $host, in double quotes when it holds a ':' (IPv6),
    which lsearch would otherwise take for the end of the key."""
    host = smarthost_host(smarthost)
    return '"%s"' % host if ":" in host else host


def render_transport(effective):
    """The smarthost transport: TLS (and AUTH) required, so a failure defers and the mail stays queued."""
    mode = effective.get("smarthost_tls") or "none"
    lines = [
        HEADER,
        "%s:" % SMARTHOST_TRANSPORT,
        "  driver = smtp",
    ]
    if mode in ("encrypt", "verify"):
        lines += ["  hosts_require_tls = *", "  tls_require_ciphers = %s" % GNUTLS_PRIORITY]
    if mode == "verify":
        # Chain to the CA bundle and the certificate name to the host the router chose.
        lines += [
            "  tls_verify_hosts = *",
            "  tls_verify_certificates = %s" % effective["smarthost_tls_ca_file"],
            "  tls_verify_cert_hostnames = *",
        ]
    if effective.get("smarthost_auth"):
        # No AUTH, or a refused one, is a temporary error: nothing goes out unauthenticated.
        lines.append("  hosts_require_auth = *")
    return "\n".join(lines) + "\n"


def render_update_conf(effective):
    """update-exim4.conf.conf: split config, and dc_* values that grant nothing by themselves."""
    values = [
        # 'internet' keeps Debian's dnslookup router for non-local mail when there is no smarthost.
        ("dc_eximconfig_configtype", "internet"),
        ("dc_other_hostnames", ""),
        ("dc_local_interfaces", ""),
        ("dc_readhost", ""),
        ("dc_relay_domains", ""),
        ("dc_minimaldns", "false"),
        # Still gets '127.0.0.1 : ::1' appended by update-exim4.conf; MAIN_RELAY_NETS overrides it.
        ("dc_relay_nets", ""),
        ("dc_smarthost", ""),
        ("CFILEMODE", "644"),
        ("dc_use_split_config", "true"),
        ("dc_hide_mailname", ""),
        ("dc_mailname_in_oh", "true"),
        ("dc_localdelivery", "mail_spool"),
    ]
    return HEADER + "".join("%s='%s'\n" % item for item in values)


def check_effective(effective):
    """Second wall (docs/security.md): refuse a policy with any value outside its grammar, whoever built it."""
    try:
        grammar.check_effective(effective)
    except grammar.GrammarError as exc:
        raise EximError("refusing to render the policy: %s" % exc)


def render(effective):
    """The files for this policy: {path: {'content': str, 'mode': '0644', 'state': 'present'|'absent'}}."""
    check_effective(effective)
    files = {
        UPDATE_CONF: render_update_conf(effective),
        MAIN_FILE: render_main(effective),
        ACL_FILE: render_acl(effective),
        AUTH_FILE: render_auth(effective) if auth_listeners(effective) else None,
        ROUTER_FILE: render_router(effective) if effective.get("smarthost") else None,
        TRANSPORT_FILE: render_transport(effective) if uses_smarthost_transport(effective) else None,
    }
    return {path: {"content": content, "mode": "0644", "state": "present"} if content is not None else {"state": "absent"} for path, content in files.items()}


# --------------------------------------------------------------------------------------------
# The -bh matrix: expectations from the policy semantics
# --------------------------------------------------------------------------------------------


def _networks(items):
    return [ipaddress.ip_network(str(item), strict=False) for item in items or []]


def _inside(address, networks):
    address = ipaddress.ip_address(address)
    return any(address.version == net.version and address in net for net in networks)


def expected_verdict(effective, listener, client, domain, authenticated=False, local_part=None):
    """What the policy says happens to RCPT TO:<x@domain> from ``client`` on ``listener``.

    Returns 'accept' or 'deny'. This is the policy model, written independently of the ACL, so
    that the -bh matrix really tests the rendering.
    """
    if _inside(client, _networks(listener.get("connect_deny"))):
        return "deny"
    if listener.get("connect_allow") and not _inside(client, _networks(listener["connect_allow"])):
        return "deny"
    domain = domain.lower()
    if domain in (effective.get("blocked_domains") or []):
        return "deny"
    ours = domain in hosted_local_domains(effective) or domain in effective["relay_domains"]
    never = relay_rules.is_never_relay(effective, client)
    if listener["role"] == "submission":
        if not authenticated or not listener.get("auth"):
            return "deny"
        return "accept" if ours or not never else "deny"
    if domain in effective["relay_domains"] and effective.get("relay_recipient_validation") and local_part is not None:
        known = effective.get("relay_recipients") or []
        if "%s@%s" % (local_part.lower(), domain) not in known and "@%s" % domain not in known:
            return "deny"
    if ours:
        return "accept"
    return "accept" if relay_rules.may_relay_unauthenticated(effective, listener, client) else "deny"


def _hosts_of(network):
    """A few addresses of a network to choose from (first, last, and the network address for /32)."""
    net = ipaddress.ip_network(str(network), strict=False)
    if net.num_addresses <= 2:
        return [net.network_address, net.broadcast_address]
    return [net.network_address + 1, net.broadcast_address - 1, net.network_address + net.num_addresses // 2]


def _pick(candidates, avoid):
    for candidate in candidates:
        if not _inside(candidate, avoid):
            return str(candidate)
    return None


def sample_clients(effective, listener):
    """Representative clients for a listener: name -> address (only those that exist)."""
    never = _networks(effective["never_relay_networks"])
    deny = _networks(listener.get("connect_deny"))
    relay = _networks(listener.get("relay_networks"))
    loopback = _networks(effective.get("loopback_networks"))
    allow = _networks(listener.get("connect_allow"))
    clients = {}
    outside = list(OUTSIDE_CANDIDATES)
    if allow:
        # Outsiders must still be allowed to connect, or every check would stop at connect.
        outside = [host for net in allow for host in _hosts_of(net)] + outside
        outside = [host for host in outside if _inside(host, allow)]
    external = _pick(outside, never + deny + relay + loopback)
    if external:
        clients["external"] = external
    # The global relay networks too: on submission listeners they must not grant anything.
    relay_hosts = [host for net in relay + _networks(effective["relay_networks"]) for host in _hosts_of(net)]
    trusted = _pick(relay_hosts, never + deny)
    if trusted:
        clients["relay_network"] = trusted
    # A never-relay client inside a relay network is the interesting case: never must win.
    never_hosts = [host for net in never for host in _hosts_of(net)]
    in_both = [host for host in never_hosts if _inside(host, relay)]
    never_client = _pick(in_both + never_hosts, deny)
    if never_client:
        clients["never_relay"] = never_client
    for net in deny:
        clients.setdefault("connect_denied", str(_hosts_of(net)[0]))
    if allow:
        refused = _pick([ipaddress.ip_address(item) for item in OUTSIDE_CANDIDATES], allow)
        if refused:
            clients["not_connect_allowed"] = refused
    if effective.get("trust_loopback") is not None:
        clients["loopback"] = "127.0.0.1"
    return clients


def derive_checks(effective, interface_address="127.0.0.1"):
    """The -bh matrix for a policy: one check per listener x client x recipient kind x AUTH.

    ``interface_address`` stands for the host's address on wildcard listeners.
    """
    listeners = effective["listeners"]
    specific = {item["address"] for item in listeners if item["address"] != "*"}
    checks = []
    for listener in listeners:
        if listener["address"] != "*":
            interface = listener["address"]
        elif interface_address in specific:
            # The sample address would hit another listener; any address that is not bound specifically will do.
            interface = _pick([ipaddress.ip_address(item) for item in OUTSIDE_CANDIDATES], _networks(specific)) or "::1"
        else:
            interface = interface_address
        recipients = [("foreign", CHECK_FOREIGN_RCPT)]
        for domain in effective["local_domains"][:1] + effective["relay_domains"][:1]:
            recipients.append(("domain %s" % domain, "postmaster@%s" % domain))
        for domain in (effective.get("blocked_domains") or [])[:1]:
            recipients.append(("blocked %s" % domain, "postmaster@%s" % domain))
        if effective.get("relay_recipient_validation") and not effective.get("relay_recipient_maps"):
            known = effective.get("relay_recipients") or []
            for domain in [d for d in effective["relay_domains"] if "@%s" % d not in known][:1]:
                recipients.append(("unknown in %s" % domain, "%s@%s" % (CHECK_UNKNOWN_LOCAL_PART, domain)))
        auth_cases = [False, True] if listener["role"] == "submission" or listener is listeners[0] else [False]
        for client_kind, client in sorted(sample_clients(effective, listener).items()):
            for rcpt_kind, rcpt in recipients:
                for authenticated in auth_cases:
                    if authenticated and client_kind not in ("external", "never_relay", "relay_network"):
                        continue
                    local_part, _at, domain = rcpt.rpartition("@")
                    checks.append(
                        {
                            "name": "%s: %s client %s -> %s%s" % (listener["name"], client_kind, client, rcpt_kind, ", authenticated" if authenticated else ""),
                            "client": client,
                            "interface": interface,
                            "port": int(listener["port"]),
                            "sender": CHECK_SENDER,
                            "recipient": rcpt,
                            "authenticated": authenticated,
                            "expect": expected_verdict(effective, listener, client, domain, authenticated, local_part),
                        }
                    )
    return _sender_identity_checks(effective, checks)


def _sender_identity_checks(effective, checks):
    """On sender_login_match listeners authenticated checks send as a login's own address, and one
    more check per listener proves that another address is refused at MAIL."""
    owners = effective.get("sender_logins") or {}
    if not owners:
        return checks
    address = sorted(owners)[0]
    login = owners[address][0]
    by_port = dict((int(item["port"]), item) for item in effective["listeners"] if item.get("sender_login_match"))
    extra = []
    for check in checks:
        listener = by_port.get(check["port"])
        if listener is None or not check.get("authenticated") or listener["address"] not in ("*", check["interface"]):
            continue
        check.update({"user": login, "sender": address})
        if not any(item["port"] == check["port"] for item in extra):
            extra.append(
                dict(
                    check,
                    name="%s: authenticated %s as another sender" % (listener["name"], login),
                    sender="mailsec-not-owned@%s" % address.rpartition("@")[2],
                    expect="deny",
                )
            )
    return checks + extra


def derive_route_checks(effective):
    """Address tests (-bt): non-local mail must route to the smarthost, so nothing leaves the lab.

    The -bh sessions never route a relayed recipient, so only these catch a broken router.
    """
    if not effective.get("smarthost"):
        return []
    return [
        {
            "name": "route: %s -> smarthost %s" % (CHECK_FOREIGN_RCPT, effective["smarthost"]),
            "kind": "route",
            "recipient": CHECK_FOREIGN_RCPT,
            "router": "mailsec_smarthost",
            "expect": "accept",
        }
    ]


def settings(effective, interface_address="127.0.0.1"):
    """Everything the role hands to the exim_config module: files and the -bh matrix."""
    check_effective(effective)
    if not grammar.is_listen_address(interface_address) or interface_address == "*":
        raise EximError("refusing to render the policy: interface address %r is not one IP address" % (interface_address,))
    return {
        "files": render(effective),
        "checks": derive_checks(effective, interface_address) + derive_route_checks(effective),
        # The key of the smarthost's line in passwd.client ($host at delivery time), for the role.
        "smarthost_passwd_key": smarthost_passwd_key(effective["smarthost"]) if effective.get("smarthost") else None,
    }


# --------------------------------------------------------------------------------------------
# -bh sessions
# --------------------------------------------------------------------------------------------

_REPLY = re.compile(r"^(\d{3})([ -])(.*)$")


def bh_command(exim, config, check):
    """argv for one -bh session (an authenticated session is simulated with -oMaa/-oMai)."""
    argv = [exim, "-C", config, "-bh", check["client"], "-oMi", "%s.%d" % (check["interface"], int(check["port"]))]
    if check.get("authenticated"):
        argv += ["-oMaa", AUTHENTICATOR_PLAIN, "-oMai", check.get("user") or "mailsec-check"]
    return argv


def bh_input(check):
    return "EHLO mailsec-check.example.com\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nQUIT\r\n" % (
        check.get("sender") or CHECK_SENDER,
        check["recipient"],
    )


def parse_replies(output):
    """SMTP replies in a -bh transcript: [(code, text)], multi-line replies joined."""
    replies, current = [], []
    for line in output.splitlines():
        match = _REPLY.match(line)
        if not match:
            continue
        current.append(match.group(3))
        if match.group(2) == " ":
            replies.append((int(match.group(1)), " / ".join(current)))
            current = []
    return replies


def route_verdict(rc, output, router=None):
    """(verdict, stage, detail) of an -bt address test: 'accept' when it routes (via ``router``)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    detail = " / ".join(line for line in lines if not line.startswith("LOG:"))[:300]
    if rc != 0:
        return "deny", "route", detail
    if router and "router = %s," % router not in output:
        return "deny", "route", detail
    return "accept", "route", detail


def bh_verdict(output):
    """(verdict, stage, reply) from a -bh transcript: accept only if RCPT got 2xx.

    A 4xx anywhere is an 'error' (a test that says nothing), not a deny.
    """
    replies = parse_replies(output)
    stages = ("connect", "EHLO", "MAIL", "RCPT")
    for stage, (code, text) in zip(stages, replies):
        if code >= 400:
            return ("deny" if code >= 500 else "error"), stage, "%d %s" % (code, text)
        if stage == "RCPT":
            return "accept", stage, "%d %s" % (code, text)
    return "error", "session", "no reply to RCPT (%d replies)" % len(replies)


# --------------------------------------------------------------------------------------------
# The configuration cycle
# --------------------------------------------------------------------------------------------


def _read(path):
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _mode(path):
    try:
        return "0%o" % stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def _write(path, content, mode):
    """Atomic write: a temp file in the same directory, then rename."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    handle, temp = tempfile.mkstemp(prefix=".mailsec-", dir=directory)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(content)
        os.chmod(temp, int(mode, 8))
        os.rename(temp, path)
    except Exception:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _remove(path):
    if os.path.lexists(path):
        os.unlink(path)


class EximConfig(object):
    """One configuration cycle on one host.

    ``run(argv, data=None) -> (rc, stdout, stderr)`` runs a command (AnsibleModule.run_command in
    the module, subprocess in tests); ``root`` relocates /etc/exim4 for tests.
    """

    def __init__(
        self,
        run,
        files,
        checks=(),
        exim="exim4",
        update="update-exim4.conf",
        root=ETC_EXIM,
        pid_file="/run/exim4/exim.pid",
        confirm=("127.0.0.1", 25),
        confirm_timeout=15,
    ):
        self.run = run
        self.files = self._validate_files(files, root)
        self.checks = [self._validate_check(check) for check in checks or []]
        self.exim = exim
        self.update = update
        self.root = root
        self.pid_file = pid_file
        self.confirm = confirm
        self.confirm_timeout = confirm_timeout

    @staticmethod
    def _validate_files(files, root):
        clean = {}
        for path, spec in (files or {}).items():
            real = os.path.normpath(path)
            if not real.startswith(root.rstrip("/") + "/"):
                raise EximError("%s is outside %s: exim_config only manages files of the Exim configuration" % (path, root))
            if os.path.basename(real) == "exim4.conf" and os.path.dirname(real) == root.rstrip("/"):
                raise EximError("%s would silently replace the whole Debian configuration: never managed here" % path)
            spec = dict(spec or {})
            spec.setdefault("state", "present")
            spec.setdefault("mode", "0644")
            if spec["state"] == "present" and spec.get("content") is None:
                raise EximError("%s: state present needs content" % path)
            clean[real] = spec
        return clean

    @staticmethod
    def _validate_check(check):
        check = dict(check)
        check["kind"] = check.get("kind") or "session"
        needed = ("recipient", "expect") if check["kind"] == "route" else ("client", "interface", "port", "recipient", "expect")
        missing = [key for key in needed if check.get(key) in (None, "")]
        if missing or check["kind"] not in ("session", "route") or check["expect"] not in ("accept", "deny"):
            raise EximError("invalid check %r: needs %s, kind session|route, expect accept|deny" % (check, ", ".join(needed)))
        # These go into exim's argv (-bt, -bh, -oMi, -oMai) and its SMTP input: only values inside their grammar.
        for key, valid in (
            ("recipient", grammar.is_email),
            ("sender", grammar.is_email),
            ("user", grammar.is_login),
            ("client", grammar.parse_ip),
            ("interface", grammar.parse_ip),
            ("router", grammar.is_name),
        ):
            if check.get(key) not in (None, "") and not valid(check[key]):
                raise EximError("invalid check: %s %r is outside its grammar (docs/security.md)" % (key, check[key]))
        if check.get("port") is not None and grammar.parse_port(check["port"]) is None:
            raise EximError("invalid check: port %r" % (check["port"],))
        return check

    # -- planning ---------------------------------------------------------------------------

    def plan(self):
        """Per-file changes and the Ansible diff for them."""
        changes, diffs = [], []
        for path in sorted(self.files):
            spec = self.files[path]
            before = _read(path)
            if spec["state"] == "absent":
                if before is not None or os.path.lexists(path):
                    changes.append(path)
                    diffs.append({"before_header": path, "after_header": path + " (absent)", "before": before or "", "after": ""})
                continue
            if before != spec["content"] or _mode(path) != "0%o" % int(spec["mode"], 8):
                changes.append(path)
                diffs.append(
                    {
                        "before_header": path if before is not None else path + " (absent)",
                        "after_header": path,
                        "before": before or "",
                        "after": spec["content"],
                    }
                )
        return changes, diffs

    # -- validation on a staged copy --------------------------------------------------------

    def stage(self, workdir):
        """Copy /etc/exim4 into ``workdir`` and apply our files there."""
        staged = os.path.join(workdir, "exim4")
        shutil.copytree(self.root, staged, symlinks=True)
        for path, spec in self.files.items():
            target = os.path.join(staged, os.path.relpath(path, self.root))
            if spec["state"] == "absent":
                _remove(target)
            else:
                _write(target, spec["content"], spec["mode"])
        return staged

    def build_candidate(self, staged, output):
        rc, out, err = self.run([self.update, "-d", staged, "-o", output])
        if rc != 0 or not os.path.exists(output):
            raise EximError("update-exim4.conf could not build the candidate configuration", rc=rc, stdout=out, stderr=err)
        rc, out, err = self.run([self.exim, "-C", output, "-bV"])
        if rc != 0:
            raise EximError("exim -bV rejected the candidate configuration: nothing was installed", rc=rc, stdout=out, stderr=err, candidate=_read(output))
        return output

    def run_checks(self, config):
        """Run the -bh matrix against ``config``; returns (results, failures)."""
        results, failures = [], []
        for check in self.checks:
            if check.get("kind") == "route":
                rc, out, err = self.run([self.exim, "-C", config, "-bt", check["recipient"]])
                verdict, stage, reply = route_verdict(rc, out, check.get("router"))
            else:
                rc, out, err = self.run(bh_command(self.exim, config, check), data=bh_input(check))
                verdict, stage, reply = bh_verdict(out)
            result = {
                "name": check.get("name") or "%s -> %s on %s" % (check.get("client"), check["recipient"], check.get("port")),
                "kind": check.get("kind") or "session",
                "client": check.get("client"),
                "port": check.get("port"),
                "recipient": check["recipient"],
                "authenticated": bool(check.get("authenticated")),
                "expect": check["expect"],
                "verdict": verdict,
                "stage": stage,
                "reply": reply,
            }
            if verdict != check["expect"]:
                # -bh writes its ACL trace to stderr: the end of it explains the verdict.
                result["trace"] = err.strip().splitlines()[-25:]
                failures.append(result)
            results.append(result)
        return results, failures

    def validate(self):
        """Build and test the candidate in a temp dir; raises EximError when it must not go live."""
        workdir = tempfile.mkdtemp(prefix="mailsec-exim-")
        try:
            staged = self.stage(workdir)
            candidate = self.build_candidate(staged, os.path.join(workdir, "candidate.conf"))
            results, failures = self.run_checks(candidate)
            if failures:
                raise EximError(
                    "%d of %d -bh checks disagree with the policy: nothing was installed" % (len(failures), len(results)),
                    checks=results,
                    failed_checks=failures,
                )
            return results
        except (OSError, UnicodeError) as exc:  # copying or writing the stage: a reason, not a traceback
            raise EximError("staging the candidate configuration failed: %s; nothing was installed" % exc)
        finally:
            # The staged copy of /etc/exim4 and the candidate never outlive the check, whatever failed.
            shutil.rmtree(workdir, ignore_errors=True)

    # -- going live ---------------------------------------------------------------------------

    def daemon_pid(self):
        text = _read(self.pid_file)
        try:
            pid = int((text or "").split()[0])
            os.kill(pid, 0)
            return pid
        except (ValueError, IndexError, OSError):
            return None

    def answers(self):
        """(True, greeting) when the confirm address greets with an SMTP reply (the daemon re-execs on HUP).

        Any reply code counts: the daemon is back even when its connect ACL refuses this client (554)."""
        target = tuple(self.confirm)
        passed, failed = confirm_all([target], lambda item: greet(item[0], item[1], timeout=3, codes=None), self.confirm_timeout)
        if failed:
            return False, failed[target]
        return True, "\n".join(passed[target])

    def regenerate_and_reload(self, reload):
        rc, out, err = self.run([self.update])
        if rc != 0:
            raise EximError("update-exim4.conf failed on the installed files", rc=rc, stdout=out, stderr=err)
        if not reload:
            return False
        pid = self.daemon_pid()
        if pid is None:
            return False
        # SIGHUP makes the daemon re-exec itself with the regenerated configuration.
        os.kill(pid, signal.SIGHUP)
        time.sleep(0.5)
        ok, detail = self.answers()
        if not ok:
            raise EximError("exim did not answer on %s:%s after the reload: %s" % (self.confirm[0], self.confirm[1], detail))
        return True

    def install(self, changes, reload=True, backup=False):
        """Install the changed files; on any failure restore the previous ones and reload again."""
        saved = {path: (_read(path), _mode(path)) for path in changes}
        backups = []
        stamp = time.strftime("%Y-%m-%d@%H:%M:%S")
        # Outside conf.d/<section>/ a backup would be concatenated into the config.
        backup_dir = os.path.join(self.root, ".mailsec-backup")
        backup_dir_existed = os.path.isdir(backup_dir)
        try:
            for path in changes:
                spec = self.files[path]
                if backup and saved[path][0] is not None:
                    dest = os.path.join(backup_dir, "%s.%s~" % (os.path.relpath(path, self.root).replace("/", "__"), stamp))
                    _write(dest, saved[path][0], saved[path][1] or "0644")
                    backups.append(dest)
                if spec["state"] == "absent":
                    _remove(path)
                else:
                    _write(path, spec["content"], spec["mode"])
            reloaded = self.regenerate_and_reload(reload)
        except Exception as exc:
            rollback_error = self.rollback(saved, reload)
            if rollback_error is None:
                # The previous files are live again: copies made for this failed attempt would only be strays.
                for dest in backups:
                    _remove(dest)
                if not backup_dir_existed and os.path.isdir(backup_dir) and not os.listdir(backup_dir):
                    os.rmdir(backup_dir)
                backups = []
            details = dict(getattr(exc, "details", {}))
            details["rolled_back"] = rollback_error is None
            if rollback_error:
                details["rollback_error"] = rollback_error
            raise EximError("%s; the previous configuration was restored" % exc, **details)
        return reloaded, backups

    def rollback(self, saved, reload):
        try:
            for path, (content, mode) in saved.items():
                if content is None:
                    _remove(path)
                else:
                    _write(path, content, mode or "0644")
            self.regenerate_and_reload(reload)
        except Exception as exc:  # reported, never masks the original failure
            return str(exc)
        return None

    def live_override(self):
        return os.path.exists(os.path.join(self.root, "exim4.conf"))
