# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read back the relay policy Postfix really enforces, in the effective-policy shape.

``collect`` runs four read-only commands (``postconf -n``, ``postconf -x <params>``, ``postconf -M``,
``postconf -Px``) and reads the cidr tables the restrictions reference; ``interpret`` is pure and
turns that raw text into ``{mta, version, policy, notes, explicit}`` where ``policy`` has the shape
of docs/policy-model.md, so drift.py compares like with like.

Relay semantics are evaluated, not pattern-matched: the relay and recipient restriction lists are
walked in order for an unauthenticated client and a foreign recipient, over address sets, so
``0.0.0.0/0`` in mynetworks, a ``permit`` before ``reject_unauth_destination`` or an emptied
never-relay table all show up as who-may-relay, per listener.
"""

from __future__ import annotations

import re
import socket

from ansible_collections.mailsec.relay.plugins.module_utils.postfix import (
    SENDER_RATE_RULES,
    parse_postconf_M,
    parse_postconf_n,
    parse_postconf_P,
    parse_sender_rate_rules,
)
from ansible_collections.mailsec.relay.plugins.module_utils.readback_common import (
    credentials_file,
    normalize_address,
)
from ansible_collections.mailsec.relay.plugins.module_utils.relay_rules import (
    LOOPBACK,
    NetSet,
    finish_policy,
    parse_network,
    split_loopback,
    without_loopback,
)

# Main parameters read with -x (expanded); per-service -o overrides may replace any of them.
PARAMS = (
    "mail_version",
    "myhostname",
    "mydestination",
    "mynetworks",
    "relay_domains",
    "relayhost",
    "inet_interfaces",
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_client_restrictions",
    "smtpd_sasl_auth_enable",
    "smtpd_tls_security_level",
    "smtpd_tls_wrappermode",
    "smtpd_enforce_tls",
    "smtpd_use_tls",
    "smtpd_tls_cert_file",
    "smtpd_tls_key_file",
    "smtpd_sender_restrictions",
    "smtpd_sender_login_maps",
    "smtpd_client_connection_count_limit",
    "smtpd_client_connection_rate_limit",
    "smtpd_client_auth_rate_limit",
    "smtp_tls_security_level",
    "smtp_tls_CAfile",
    "smtp_sasl_auth_enable",
    "smtp_sasl_password_maps",
    "virtual_mailbox_domains",
    "virtual_mailbox_maps",
    "virtual_alias_domains",
    "virtual_alias_maps",
    "relay_recipient_maps",
)
# Table types whose name is a file that must exist (for hash and friends: the source next to the .db).
FILE_TABLE_TYPES = ("hash", "btree", "lmdb", "cdb", "dbm", "texthash", "regexp", "pcre", "cidr")
PORT_NAMES = {"smtp": 25, "submission": 587, "submissions": 465, "smtps": 465}
EVERYONE = NetSet(["0.0.0.0/0", "::/0"])

# access(5) results, as seen by an unauthenticated client sending to a foreign domain.
_REFUSE_WORDS = ("REJECT", "DEFER", "DEFER_IF_PERMIT", "DEFER_IF_REJECT", "DISCARD", "reject", "defer", "reject_unauth_destination", "defer_unauth_destination")
_GRANT_WORDS = ("OK", "permit")
_TERMINAL_REFUSE = ("reject", "defer", "reject_unauth_destination", "defer_unauth_destination", "defer_if_permit")
_TOKEN_SPLIT = re.compile(r"[\s,]+")


def commands(postconf="postconf", config_dir=None):
    """The read-only commands, as argv lists (the capture script and the module use the same)."""
    base = [postconf] + (["-c", config_dir] if config_dir else [])
    return {
        "n": base + ["-n"],
        "x": base + ["-x"] + list(PARAMS),
        "M": base + ["-M"],
        "P": base + ["-P", "-x"],
    }


def restriction_tokens(value):
    return [t for t in _TOKEN_SPLIT.split(value or "") if t]


def referenced_tables(main, services):
    """cidr tables named by check_client_access in main or any -o override (paths to read)."""
    values = [main.get(k, "") for k in ("smtpd_relay_restrictions", "smtpd_recipient_restrictions", "smtpd_client_restrictions")]
    for entry in services.values():
        values += [v for k, v in entry["overrides"].items() if k.endswith("_restrictions")]
    paths = []
    for value in values:
        tokens = restriction_tokens(value)
        for index, token in enumerate(tokens[:-1]):
            if token == "check_client_access" and tokens[index + 1].startswith("cidr:"):
                path = tokens[index + 1][len("cidr:") :]
                if path not in paths:
                    paths.append(path)
    return paths


def collect(run, read_file, postconf="postconf", config_dir=None, stat_file=None):
    """Run the commands and read the tables. ``run(argv) -> (rc, out, err)``; ``read_file(path) -> str|None``;
    ``stat_file(path) -> {owner, group, mode}|None`` (the smarthost credentials file, when given)."""
    raw = {}
    for key, argv in commands(postconf, config_dir).items():
        rc, out, err = run(argv)
        if rc != 0:
            raise ReadbackError("%s failed (rc %s): %s" % (" ".join(argv), rc, (err or out).strip()))
        raw[key] = out
    main = parse_postconf_n(raw["x"])
    services = parse_postconf_P(raw["P"], parse_postconf_M(raw["M"]))
    raw["tables"] = dict((path, read_file(path)) for path in referenced_tables(main, services) + domain_tables(main))
    paths = _file_tables(main.get("smtp_sasl_password_maps"))
    if stat_file is not None and paths:
        # Only the user name and the file's owner and mode are kept: the password never enters raw.
        raw["smarthost_credentials"] = credentials_file(paths[0], read_file, stat_file, key=main.get("relayhost") or None)
    raw["sender_rate"] = read_sender_rate_service(read_file)
    return raw


POSTFWD_DEFAULTS = "/etc/default/postfwd"


def read_sender_rate_service(read_file):
    """What the postfwd policy service runs: its defaults file, the rules it loads, whether it runs.

    The rules file is the one /etc/default/postfwd names (CONF=), so drift sees what postfwd loads.
    """
    defaults = read_file(POSTFWD_DEFAULTS)
    if defaults is None:
        return None
    settings = dict(re.findall(r"(?m)^\s*([A-Z]+)=\"?([^\"\n]*)\"?\s*$", defaults))
    conf = settings.get("CONF") or ""
    pid = (read_file("/run/postfwd.pid") or read_file("/var/run/postfwd.pid") or "").strip()
    command = read_file("/proc/%s/cmdline" % pid) if pid.isdigit() else None
    return {
        "startup": settings.get("STARTUP") == "1",
        "conf": conf,
        "listen": "%s:%s" % (settings.get("INET") or "", settings.get("PORT") or ""),
        "rules": read_file(conf) if conf.startswith("/") else None,
        "running": bool(command and "postfwd" in command),
    }


def _file_tables(value):
    paths = []
    for token in restriction_tokens(value):
        kind, colon, path = token.partition(":")
        if colon and kind in FILE_TABLE_TYPES and path.startswith("/"):
            paths.append(path)
    return paths


def domain_tables(main):
    """Files of the recipient validation maps and of check_recipient_access (blocked domains): read so
    that a removed map shows as drift, not as a quiet change of who may receive."""
    paths = _file_tables(main.get("relay_recipient_maps"))
    tokens = restriction_tokens(main.get("smtpd_relay_restrictions"))
    for index, token in enumerate(tokens[:-1]):
        if token == "check_recipient_access":
            paths += _file_tables(tokens[index + 1])
    return [path for index, path in enumerate(paths) if path not in paths[:index]]


def hosted_domains(main, services, tables, notes):
    """The hosted domain kinds besides local and relay, recipient validation, blocked domains, postscreen."""
    result = {}
    for kind in ("virtual_mailbox", "virtual_alias"):
        result[kind + "_domains"] = _domain_words(main.get(kind + "_domains"), None, notes, kind + "_domains")
        result[kind + "_maps"] = restriction_tokens(main.get(kind + "_maps"))
    maps = restriction_tokens(main.get("relay_recipient_maps"))
    missing = [path for path in _file_tables(main.get("relay_recipient_maps")) if path in tables and tables[path] is None]
    for path in missing:
        notes.append("relay_recipient_maps: %s is missing: recipient validation does not work" % path)
    result["relay_recipient_maps"] = maps
    result["relay_recipient_validation"] = bool(maps) and not missing
    blocked = []
    tokens = restriction_tokens(main.get("smtpd_relay_restrictions"))
    for index, token in enumerate(tokens[:-1]):
        if token != "check_recipient_access":
            continue
        for path in _file_tables(tokens[index + 1]):
            for line in (tables.get(path) or "").splitlines():
                words = line.split()
                if len(words) >= 2 and not words[0].startswith("#") and classify_action(" ".join(words[1:])) == "refuse":
                    blocked.append(words[0].lower().rstrip("."))
    result["blocked_domains"] = sorted(set(blocked))
    fronts = [entry for (name, stype), entry in services.items() if stype == "inet" and _port(name.rpartition(":")[2]) == 25]
    result["postscreen"] = any(entry["command"].split()[:1] == ["postscreen"] for entry in fronts)
    return result


class ReadbackError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Tables and restriction lists
# --------------------------------------------------------------------------------------------


def parse_cidr_table(text):
    """cidr_table(5) text -> ([(network, action)], notes). First match wins, as in Postfix."""
    entries, notes = [], []
    depth = 0
    for raw_line in (text or "").splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if raw_line[:1].isspace() and entries:
            continue  # a continuation of the previous action text
        word = line.split(None, 1)[0]
        if word.lower() == "if":
            depth += 1
            notes.append("cidr if/endif blocks are not evaluated: %s" % line)
            continue
        if word.lower() == "endif":
            depth = max(0, depth - 1)
            continue
        if depth:
            continue
        pattern, _space, action = line.partition(" ")
        net = parse_network(pattern)
        if net is None:
            notes.append("cidr entry not understood: %s" % line)
            continue
        entries.append((net, action.strip()))
    return entries, notes


def classify_action(action):
    """'grant', 'refuse' or 'continue' for an access(5) result seen at RCPT for a foreign domain."""
    word = (action or "").split(None, 1)[0] if action else ""
    if not word:
        return "continue"
    if word in _GRANT_WORDS or word.isdigit() and len(word) != 3:
        return "grant"
    if word.isdigit() or re.match(r"^[45]\d\d$", word):
        return "refuse"
    if word.upper() in _REFUSE_WORDS or word in _REFUSE_WORDS or word.startswith(("reject", "defer")):
        return "refuse"
    if word.startswith("permit") and word not in ("permit_sasl_authenticated", "permit_auth_destination"):
        return "grant"
    return "continue"  # DUNNO, WARN, HOLD, PREPEND, FILTER, restriction names that do not decide relay


class _Walk(object):
    """Walk one restriction list for unauthenticated clients sending to a foreign domain."""

    def __init__(self, mynetworks, tables, notes):
        self.mynetworks = mynetworks
        self.tables = tables
        self.notes = notes

    def run(self, value, sasl_enabled):
        remaining = EVERYONE
        granted = NetSet()
        refused = NetSet()
        never = NetSet()
        configured = NetSet()  # what grant rules name, before earlier rules took their share
        auth_relay = False
        tokens = restriction_tokens(value)
        index = 0
        while index < len(tokens) and remaining:
            token = tokens[index]
            index += 1
            if token == "permit_mynetworks":
                part = remaining & self.mynetworks
                granted, remaining = granted | part, remaining - part
                configured = configured | self.mynetworks
            elif token == "permit":
                granted, remaining = granted | remaining, NetSet()
                configured = EVERYONE
            elif token in _TERMINAL_REFUSE:
                refused, remaining = refused | remaining, NetSet()
            elif token == "permit_sasl_authenticated":
                auth_relay = auth_relay or sasl_enabled
            elif token == "check_client_access" and index < len(tokens):
                table = tokens[index]
                index += 1
                entries = self.table(table)
                unmatched = remaining
                for net, action in entries:
                    kind = classify_action(action)
                    if kind == "grant":
                        configured = configured | NetSet([net])
                    part = unmatched & NetSet([net])
                    if not part:
                        continue
                    unmatched = unmatched - part
                    if kind == "grant":
                        granted, remaining = granted | part, remaining - part
                    elif kind == "refuse":
                        refused, remaining = refused | part, remaining - part
                        never = never | part
            elif token.startswith("check_") and index < len(tokens) and ":" in tokens[index]:
                index += 1  # other lookups (sender, recipient, helo...) do not decide by client address
        return granted, refused, never, remaining, auth_relay, configured

    def table(self, ref):
        kind, _colon, path = ref.partition(":")
        if kind != "cidr":
            self.notes.append("table %s is not evaluated (only cidr: tables are)" % ref)
            return []
        text = self.tables.get(path)
        if text is None:
            self.notes.append("table %s could not be read: treated as empty" % ref)
            return []
        entries, notes = parse_cidr_table(text)
        self.notes.extend("%s: %s" % (path, n) for n in notes)
        return entries


def relay_semantics(relay_value, recipient_value, mynetworks, tables, sasl_enabled, notes):
    """Who may relay unauthenticated (NetSet), who is explicitly refused (never), and auth relay."""
    walk = _Walk(mynetworks, tables, notes)
    g1, _r1, never1, undecided1, auth1, conf1 = walk.run(relay_value, sasl_enabled)
    g2, r2, never2, _u2, auth2, conf2 = walk.run(recipient_value, sasl_enabled)
    # Both lists must pass; a list that decides nothing permits (its default), but with no
    # reject_unauth_destination anywhere smtpd refuses all mail, so "undecided twice" is refused.
    grants = (g1 - r2) | (undecided1 & g2)
    if not restriction_tokens(relay_value) and not any(t in _TERMINAL_REFUSE for t in restriction_tokens(recipient_value)):
        notes.append("neither restriction list ends in reject_unauth_destination: smtpd refuses mail")
    auth_relay = sasl_enabled and (auth1 or (not restriction_tokens(relay_value) and auth2))
    return grants, never1 | never2, auth_relay, conf1 | conf2


def connect_lists(value, tables, notes):
    """(connect_allow, connect_deny) from smtpd_client_restrictions: REJECT entries deny; OK + reject allow."""
    allow, deny = NetSet(), NetSet()
    tokens = restriction_tokens(value)
    walk = _Walk(NetSet(), tables, notes)
    for index, token in enumerate(tokens[:-1]):
        if token != "check_client_access":
            continue
        ends_in_reject = "reject" in tokens[index + 2 :]
        for net, action in walk.table(tokens[index + 1]):
            kind = classify_action(action)
            if kind == "refuse":
                deny = deny | NetSet([net])
            elif kind == "grant" and ends_in_reject:
                allow = allow | NetSet([net])
    return allow, deny


# --------------------------------------------------------------------------------------------
# Listeners
# --------------------------------------------------------------------------------------------


def _port(name):
    if name.isdigit():
        return int(name)
    if name in PORT_NAMES:
        return PORT_NAMES[name]
    try:
        return socket.getservbyname(name, "tcp")
    except OSError:
        return None


def _yes(value):
    return str(value or "").strip().lower() == "yes"


def tls_mode(settings):
    if _yes(settings.get("smtpd_tls_wrappermode")):
        return "implicit"
    level = (settings.get("smtpd_tls_security_level") or "").strip()
    if level == "encrypt" or (not level and _yes(settings.get("smtpd_enforce_tls"))):
        return "required"
    if level in ("may", "encrypt") or (not level and _yes(settings.get("smtpd_use_tls"))):
        return "starttls"
    return "none"


def _bind_address(service_name, interfaces, notes):
    host, sep, _port_name = service_name.rpartition(":")
    if sep and host:
        return normalize_address(host.strip("[]"))
    words = restriction_tokens(interfaces)
    if not words or "all" in words:
        return "*"
    if words in (["loopback-only"], ["localhost"]):
        return "127.0.0.1"
    if len(words) == 1:
        return normalize_address(words[0])
    notes.append("inet_interfaces lists several addresses (%s): listeners read as '*'" % interfaces)
    return "*"


_CLIENT_LIMIT_PARAMS = (
    ("connection_count", "smtpd_client_connection_count_limit"),
    ("connection_rate", "smtpd_client_connection_rate_limit"),
    ("auth_rate", "smtpd_client_auth_rate_limit"),
)


def client_limits(main):
    """The per-client anvil limits in force (0 = off), for the keys postconf reported."""
    limits = {}
    for key, param in _CLIENT_LIMIT_PARAMS:
        value = (main.get(param) or "").strip()
        if value.isdigit():
            limits[key] = int(value)
    return limits


_SENDER_LOGIN_CHECKS = ("reject_sender_login_mismatch", "reject_authenticated_sender_login_mismatch")


def sender_login_match(settings):
    """Whether authenticated senders must own MAIL FROM on a service (a login map and its check)."""
    if not (settings.get("smtpd_sender_login_maps") or "").strip():
        return False
    return any(
        token in _SENDER_LOGIN_CHECKS
        for key in ("smtpd_sender_restrictions", "smtpd_relay_restrictions", "smtpd_recipient_restrictions")
        for token in restriction_tokens(settings.get(key))
    )


def sender_rate_check(settings):
    """The policy service asked at DATA on a service (check_policy_service inet:host:port), or None."""
    tokens = restriction_tokens((settings.get("smtpd_data_restrictions") or "").replace("{", " ").replace("}", " "))
    for index, token in enumerate(tokens[:-1]):
        if token == "check_policy_service" and tokens[index + 1].startswith("inet:"):
            return tokens[index + 1][len("inet:") :]
    return None


def sender_rate_limits(listeners, service, notes):
    """Per-login limits in force (issue 14): postfwd's rules, when every AUTH listener asks postfwd
    at DATA and postfwd runs; {messages: 0, recipients: 0} otherwise (not in force)."""
    off = {"messages": 0, "recipients": 0}
    auth = [item for item in listeners if item["auth"] and item["role"] == "submission"]
    wired = [item for item in auth if item.get("sender_rate_check")]
    if not wired:
        return off
    if not service or not service.get("rules"):
        notes.append("check_policy_service at DATA but no postfwd rules could be read (%s)" % POSTFWD_DEFAULTS)
        return dict(off, service="missing")
    limits = parse_sender_rate_rules(service["rules"])
    if not service["conf"].endswith("/" + SENDER_RATE_RULES):
        notes.append("postfwd loads %s, not the rules this collection writes" % service["conf"])
    if len(wired) != len(auth):
        notes.append("listeners without the rate check: %s" % ", ".join(item["name"] for item in auth if item not in wired))
        return dict(off, service="partial")
    if any(item["sender_rate_check"] != service["listen"] for item in wired):
        notes.append("Postfix asks %s, postfwd listens on %s" % (wired[0]["sender_rate_check"], service["listen"]))
        return dict(off, service="elsewhere")
    if not service["running"]:
        # Fail closed: Postfix defers authenticated mail (451) while the service is down.
        notes.append("postfwd is not running: authenticated mail is deferred")
        return dict(limits, service="stopped")
    return limits


def interpret(raw):
    """Raw command output -> {mta, version, policy, notes, explicit}. Pure."""
    notes = []
    main = parse_postconf_n(raw["x"])
    explicit = parse_postconf_n(raw.get("n") or "")
    services = parse_postconf_P(raw.get("P") or "", parse_postconf_M(raw.get("M") or ""))
    tables = raw.get("tables") or {}

    mynetworks_words = restriction_tokens(main.get("mynetworks"))
    bad = [w for w in mynetworks_words if parse_network(w) is None]
    if bad:
        notes.append("mynetworks entries not evaluated (tables or names): %s" % ", ".join(bad))
    mynetworks = NetSet(mynetworks_words)
    relay_part, _loop_part = split_loopback(mynetworks_words)

    pass_overrides = {}
    for (name, stype), entry in services.items():
        if stype == "pass" and entry["command"].split()[:1] == ["smtpd"]:
            pass_overrides = entry["overrides"]

    listeners = []
    for (name, stype), entry in sorted(services.items(), key=lambda item: item[0]):
        program = entry["command"].split()[:1]
        if stype != "inet" or program not in (["smtpd"], ["postscreen"]):
            continue
        overrides = dict(entry["overrides"])
        if program == ["postscreen"]:
            notes.append("%s: postscreen in front of smtpd; the smtpd pass service settings apply" % name)
            overrides = dict(pass_overrides, **overrides)
        settings = dict(main)
        settings.update(overrides)
        port = _port(name.rpartition(":")[2])
        if port is None:
            notes.append("service %s: unknown port name" % name)
            continue
        sasl = _yes(settings.get("smtpd_sasl_auth_enable"))
        lnotes = []
        # A -o mynetworks override (a re-injection listener's 127.0.0.0/8, or a careless 0.0.0.0/0)
        # is what permit_mynetworks means on that listener.
        own_mynetworks = NetSet(restriction_tokens(overrides["mynetworks"])) if "mynetworks" in overrides else mynetworks
        grants, never, auth_relay, configured = relay_semantics(
            settings.get("smtpd_relay_restrictions"), settings.get("smtpd_recipient_restrictions"), own_mynetworks, tables, sasl, lnotes
        )
        allow, deny = connect_lists(settings.get("smtpd_client_restrictions"), tables, lnotes)
        notes.extend("%s: %s" % (name, n) for n in lnotes if "%s: %s" % (name, n) not in notes)
        relay_networks = without_loopback(configured)
        tls = tls_mode(settings)
        if port == 25 or relay_networks or grants & LOOPBACK:
            role = "mx"
        else:
            role = "submission" if (sasl or tls in ("required", "implicit")) else "mx"
        listeners.append(
            {
                "name": name.rpartition(":")[2] if name.rpartition(":")[2] not in ("",) else name,
                "service": name,
                "address": _bind_address(name, main.get("inet_interfaces"), notes),
                "port": port,
                "role": role,
                "tls": tls,
                "auth": sasl,
                "auth_relay": auth_relay,
                "relay_networks": relay_networks.cidrs(),
                "grants": grants.cidrs(),
                "never": never.cidrs(),
                "connect_allow": allow.cidrs(),
                "connect_deny": deny.cidrs(),
                "sender_login_match": sender_login_match(settings),
                "sender_rate_check": sender_rate_check(settings),
            }
        )

    policy = {
        "hostname": main.get("myhostname"),
        "local_domains": _domain_words(main.get("mydestination"), main.get("myhostname"), notes, "mydestination"),
        "relay_domains": _domain_words(main.get("relay_domains"), None, notes, "relay_domains"),
        "relay_networks": relay_part.cidrs(),
        "listeners": listeners,
        "smarthost": main.get("relayhost") or None,
        "tls": {"cert": main.get("smtpd_tls_cert_file") or None, "key": main.get("smtpd_tls_key_file") or None},
    }
    finish_policy(policy)
    policy["client_limits"] = client_limits(main)
    policy["sender_rate_limits"] = sender_rate_limits(listeners, raw.get("sender_rate"), notes)
    level = (main.get("smtp_tls_security_level") or "").strip()
    policy["smarthost_tls"] = "verify" if level in ("verify", "secure", "dane-only") else "encrypt" if level == "encrypt" else "none"
    if policy["smarthost_tls"] == "verify":
        policy["smarthost_tls_ca_file"] = main.get("smtp_tls_CAfile") or None
    policy["smarthost_auth"] = None
    if _yes(main.get("smtp_sasl_auth_enable")) and main.get("smtp_sasl_password_maps"):
        credentials = raw.get("smarthost_credentials")
        policy["smarthost_auth"] = {"username": (credentials or {}).get("username"), "file": credentials}
    policy.update(hosted_domains(main, services, tables, notes))
    client_allow, client_deny = connect_lists(main.get("smtpd_client_restrictions"), tables, [])
    policy["connect_allow"] = client_allow.cidrs()
    policy["connect_deny"] = client_deny.cidrs()
    return {
        "mta": "postfix",
        "version": main.get("mail_version"),
        "policy": policy,
        "notes": notes,
        "explicit": explicit,
    }


def _domain_words(value, hostname, notes, param):
    result = []
    for word in restriction_tokens(value):
        if ":" in word or word.startswith("$"):
            notes.append("%s: %s is not evaluated (a table or an unexpanded name)" % (param, word))
            continue
        word = word.lower().rstrip(".")
        if word == (hostname or "").lower() or word in ("localhost",):
            continue
        if word not in result:
            result.append(word)
    return sorted(result)
