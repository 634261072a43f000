# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read back the relay policy Exim really enforces, in the effective-policy shape.

Read-only commands: ``exim4 -bV`` (version, config parses), ``exim4 -bP`` (main options),
``exim4 -bP config`` (named lists and routers; the text itself never leaves this module: it may
hold secrets), ``exim4 -bP authenticators``, one ``exim4 -be -oMi <addr>.<port>`` per listener
(AUTH/STARTTLS advertisement evaluated as that listener would) and ``exim4 -bh`` spot checks:
SMTP sessions run through the live ACLs without a network or a log entry. An ACL is code, so the
spot checks are the evidence for "who may relay"; the lists are read back to say what changed.

``interpret`` is pure; ``collect`` runs the commands through a ``run(argv, data=None)`` callable.
"""

from __future__ import annotations

import re

from ansible_collections.mailsec.relay.plugins.module_utils import exim as exim_backend
from ansible_collections.mailsec.relay.plugins.module_utils.readback_common import (
    credentials_file,
    normalize_address,
    normalize_smarthost,
    smarthost_text,
)
from ansible_collections.mailsec.relay.plugins.module_utils.relay_rules import (
    LOOPBACK,
    NetSet,
    finish_policy,
    split_loopback,
    without_loopback,
)

OUR_RCPT_ACL = "acl_mailsec_rcpt"  # the ACL roles/exim renders (plugins/module_utils/exim.py)
DEBIAN_RCPT_ACL = "acl_check_rcpt"
PORT_NAMES = {"smtp": 25, "submission": 587, "submissions": 465, "smtps": 465}
STANDARD_NAMES = {25: "smtp", 587: "submission", 465: "submissions"}
SERVER_KEYS = ("server_condition", "server_secret", "server_socket", "server_password", "server_service")
SERVER_DRIVERS = ("cyrus_sasl", "gsasl", "heimdal_gssapi", "external", "tls")
FAKE_CIPHER = "TLS1.3:TLS_AES_256_GCM_SHA384:256"


class ReadbackError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Exim text formats
# --------------------------------------------------------------------------------------------


def parse_list(text):
    """An Exim list (``a : b``, ``<; a ; b``, ``::`` = a literal colon) -> [items]."""
    text = (text or "").strip()
    sep = ":"
    if text.startswith("<") and len(text) > 1 and not text[1].isspace():
        sep, text = text[1], text[2:]
    if sep == ":":
        items = [part.replace("\0", ":") for part in text.replace("::", "\0").split(":")]
    else:
        items = text.split(sep)
    return [item.strip() for item in items if item.strip()]


def parse_options(text):
    """``exim -bP`` -> {option: value}; ``no_x`` lines become ``x = false``."""
    options = {}
    for line in (text or "").splitlines():
        if " = " in line:
            name, value = line.split(" = ", 1)
            options[name.strip()] = value.strip()
        elif line.endswith(" ="):
            options[line[:-2].strip()] = ""
        elif re.match(r"^no_[a-z_0-9]+$", line.strip()):
            options[line.strip()[3:]] = "false"
        elif re.match(r"^[a-z_0-9]+$", line.strip()):
            options[line.strip()] = "true"
    return options


def parse_named_lists(config_text):
    """``hostlist|domainlist|addresslist|localpartlist name = value`` lines of ``exim -bP config``."""
    lists = {}
    for line in (config_text or "").splitlines():
        match = re.match(r"^(hostlist|domainlist|addresslist|localpartlist)\s+(\S+)\s*=\s*(.*)$", line.strip())
        if match:
            lists[match.group(2)] = {"type": match.group(1), "items": parse_list(match.group(3))}
    return lists


def parse_blocks(text, kind):
    """``exim -bP authenticators`` (kind 'authenticator') -> {name: {option: value}}."""
    blocks, current = {}, None
    for line in (text or "").splitlines():
        match = re.match(r"^(\S+) %s:$" % kind, line.strip())
        if match:
            current = blocks.setdefault(match.group(1), {})
            continue
        if current is not None and line.strip():
            current.update(parse_options(line))
    return blocks


def parse_routers(config_text):
    """Router name -> {option: value} from the ``begin routers`` section of ``exim -bP config``."""
    routers, current, inside = {}, None, False
    for line in (config_text or "").splitlines():
        stripped = line.strip()
        if stripped.startswith("begin "):
            inside = stripped == "begin routers"
            continue
        if not inside or not stripped or stripped.startswith("#"):
            continue
        match = re.match(r"^([A-Za-z0-9_]+):$", stripped)
        if match:
            current = routers.setdefault(match.group(1), {})
        elif current is not None and "=" in stripped:
            name, _eq, value = stripped.partition("=")
            current[name.strip()] = value.strip()
    return routers


def parse_version(text):
    match = re.search(r"Exim version (\S+)", text or "")
    return match.group(1) if match else None


def _port(word):
    word = word.strip()
    if word.isdigit():
        return int(word)
    return PORT_NAMES.get(word)


def _split_interface(entry):
    """``0.0.0.0.25`` / ``[::1]:587`` / ``198.51.100.1`` -> (address, port|None)."""
    match = re.match(r"^\[([^\]]+)\]:(\d+)$", entry)
    if match:
        return match.group(1), int(match.group(2))
    match = re.match(r"^(.*)\.(\d+)$", entry)
    if match and (":" in match.group(1) or match.group(1).count(".") == 3):
        return match.group(1), int(match.group(2))
    return entry, None


def listener_endpoints(options):
    """[(address, port)] the daemon binds: local_interfaces (with .port) x daemon_smtp_ports."""
    ports = [p for p in (_port(w) for w in parse_list(options.get("daemon_smtp_ports") or "25")) if p]
    interfaces = parse_list(options.get("local_interfaces") or "")
    endpoints = []
    if not interfaces:
        interfaces = ["*"]
    for entry in interfaces:
        address, port = _split_interface(entry)
        address = normalize_address(address)
        for one in [port] if port else ports:
            if (address, one) not in endpoints:
                endpoints.append((address, one))
    return endpoints


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def be_input(options, authenticators):
    """Lines for ``exim -be``: STARTTLS and AUTH advertisement, TLS assumed where AUTH needs it."""

    def with_tls(text):
        return (text or "").replace("def:tls_in_cipher", "eq{1}{1}").replace("$tls_in_cipher", FAKE_CIPHER)

    lines = ["tls=" + (options.get("tls_advertise_hosts") or ""), "auth=" + with_tls(options.get("auth_advertise_hosts"))]
    for name in sorted(authenticators):
        lines.append("authenticator %s=%s" % (name, with_tls(authenticators[name].get("server_advertise_condition")) or "yes"))
    # A line that expands to nothing still prints "> "; a marker keeps the count honest.
    return "\n".join(lines) + "\n"


def parse_be(output):
    """``exim -be`` output -> {key: expanded value}."""
    values = {}
    for line in (output or "").splitlines():
        if line.startswith("> "):
            line = line[2:]
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _truthy(value):
    return (value or "").strip().lower() not in ("", "0", "no", "false")


def server_authenticators(blocks):
    result = {}
    for name, opts in blocks.items():
        if opts.get("driver") in SERVER_DRIVERS or any(opts.get(key) for key in SERVER_KEYS):
            result[name] = opts
    return result


def spot_checks(desired, endpoints, lists):
    """-bh sessions: the relay cases that matter, expectations from the desired policy's semantics.

    With a desired policy, the Exim backend's own -bh matrix (exim.derive_checks) restricted to a
    foreign recipient from an outsider, a relay-network client and a never-relay client, plus AUTH
    for the never-relay client on submission listeners. Without one: an outsider must be refused
    relay on every listener.
    """
    if desired:
        wanted = set(("external", "relay_network", "never_relay"))
        checks = []
        for listener in desired.get("listeners") or []:
            clients = exim_backend.sample_clients(desired, listener)
            for kind, client in sorted(clients.items()):
                if kind not in wanted:
                    continue
                cases = [False]
                if kind == "never_relay" and listener.get("role") == "submission" and listener.get("auth"):
                    cases = [True]
                for authenticated in cases:
                    interface = listener["address"] if listener["address"] != "*" else "0.0.0.0"
                    checks.append(
                        {
                            "name": "%s:%s %s %s -> foreign%s"
                            % (listener["address"], listener["port"], kind, client, ", authenticated" if authenticated else ""),
                            "client": client,
                            "interface": interface,
                            "port": int(listener["port"]),
                            "sender": exim_backend.CHECK_SENDER,
                            "recipient": exim_backend.CHECK_FOREIGN_RCPT,
                            "authenticated": authenticated,
                            "expect": exim_backend.expected_verdict(desired, listener, client, "example.net", authenticated),
                        }
                    )
        return checks + sender_identity_checks(desired)
    trusted = NetSet()
    for info in lists.values():
        if info["type"] == "hostlist":
            trusted = trusted | NetSet(info["items"])
    outsider = next((c for c in exim_backend.OUTSIDE_CANDIDATES if not trusted.contains(c)), exim_backend.OUTSIDE_CANDIDATES[0])
    checks = []
    for address, port in endpoints:
        checks.append(
            {
                "name": "%s:%s external %s -> foreign" % (address, port, outsider),
                "client": outsider,
                "interface": "0.0.0.0" if address == "*" else address,
                "port": port,
                "sender": exim_backend.CHECK_SENDER,
                "recipient": exim_backend.CHECK_FOREIGN_RCPT,
                "authenticated": False,
                "expect": "deny",
            }
        )
    return checks


def sender_identity_checks(desired):
    """One -bh session per AUTH listener: a login sends as an address it does not own.

    Refused at MAIL means the listener enforces sender identity (sender_login_match); the
    expectation comes from the desired policy, so a mismatch is also a spot-check finding.
    """
    owners = desired.get("sender_logins") or {}
    login = owners[sorted(owners)[0]][0] if owners else "mailsec-check"
    checks = []
    for listener in desired.get("listeners") or []:
        if listener.get("role") != "submission" or not listener.get("auth"):
            continue
        client = exim_backend.sample_clients(desired, listener).get("external")
        if client is None:
            continue
        enforced = bool(listener.get("sender_login_match"))
        checks.append(
            {
                "name": "%s:%s authenticated %s as another sender" % (listener["address"], listener["port"], login),
                "client": client,
                "interface": listener["address"] if listener["address"] != "*" else "0.0.0.0",
                "port": int(listener["port"]),
                "sender": "mailsec-not-owned@example.net",
                "recipient": exim_backend.CHECK_FOREIGN_RCPT,
                "authenticated": True,
                "user": login,
                "sender_identity": True,
                "expect": "deny" if enforced else exim_backend.expected_verdict(desired, listener, client, "example.net", True),
            }
        )
    return checks


def client_limits(options):
    """Connections at once per client (smtp_accept_max_per_host, plain or as rendered with the
    relay-network exemption). The ratelimit ACLs are code: their rates are not read back."""
    if "smtp_accept_max_per_host" not in options:
        return {}
    value = (options.get("smtp_accept_max_per_host") or "").strip()
    match = re.match(r"^(?:\$\{if match_ip\{\$sender_host_address\}\{\+relay_from_hosts\}\{0\}\{(\d+)\}\}|(\d+))$", value)
    if not value:
        return {"connection_count": 0}
    if match:
        return {"connection_count": int(match.group(1) or match.group(2))}
    return {}


def _acl_ratelimits(config_text, acl):
    """{key: (count, period)} of the ``ratelimit = count / period / ... / key:...`` conditions in one
    ACL; None when the configuration text does not define that ACL (nothing to read)."""
    found, current, seen = {}, None, False
    for line in (config_text or "").splitlines():
        text = line.strip()
        block = re.match(r"^(\S+):$", text)
        if block:
            current = block.group(1)
            seen = seen or current == acl
            continue
        if re.match(r"^begin\s", text):
            current = None
        match = re.match(r"^ratelimit\s*=\s*(\d+)\s*/\s*(\w+)\s*/.*/\s*(\w+):\S+$", text)
        if acl and current == acl and match:
            found[match.group(3)] = (int(match.group(1)), match.group(2))
    return found if seen else None


def brake_limits(config_text, options):
    """The AUTH and connection-rate brakes the ACLs in use apply (issue 14), per minute; 0 = none.

    Only our ACLs are read: under another connect ACL the connection rate is not known (left out)."""
    limits = {}
    auth_acl = (options.get("acl_smtp_auth") or "").strip()
    rates = _acl_ratelimits(config_text, auth_acl) if auth_acl else {}
    if rates is not None:
        found = rates.get("mailsec_auth")
        limits["auth_rate"] = found[0] if found and found[1] == "1m" else 0
    connect_acl = (options.get("acl_smtp_connect") or "").strip()
    rates = _acl_ratelimits(config_text, connect_acl) if connect_acl == "acl_mailsec_connect" else None
    if rates is not None:
        found = rates.get("mailsec_conn")
        limits["connection_rate"] = found[0] if found and found[1] == "1m" else 0
    return limits


def sender_rate_limits(config_text, options):
    """Per-login limits (issue 14) in the predata ACL Exim uses: {messages, recipients, window}.

    Only ratelimit conditions keyed on $authenticated_id under our keys count (0 = not in force);
    None when the configuration text does not define that ACL (nothing to read).
    """
    limits = {"messages": 0, "recipients": 0}
    acl = (options.get("acl_smtp_predata") or "").strip()
    rates = _acl_ratelimits(config_text, acl) if acl else {}
    if rates is None:
        return None
    for key, name in exim_backend.SENDER_RATE_KEYS.items():
        found = rates.get(name)
        match = re.match(r"^(\d+)s$", found[1]) if found else None
        if match:
            limits[key] = found[0]
            limits["window"] = int(match.group(1))
    return limits


def collect(run, exim="exim4", desired=None, run_spot_checks=True, read_file=None, stat_file=None):
    """Run the read-only commands; returns the raw texts ``interpret`` takes.

    ``run(argv, data=None) -> (rc, out, err)``; ``read_file``/``stat_file`` read the smarthost
    credentials file (its user name, owner and mode only) when given.
    """
    raw = {}
    for key, argv in (
        ("bV", [exim, "-bV"]),
        ("bP", [exim, "-bP"]),
        ("config", [exim, "-bP", "config"]),
        ("authenticators", [exim, "-bP", "authenticators"]),
        ("transports", [exim, "-bP", "transports"]),
    ):
        rc, out, err = run(argv)
        if rc != 0:
            raise ReadbackError("%s failed (rc %s): %s" % (" ".join(argv), rc, (err or out).strip()[:500]))
        raw[key] = out
    options = parse_options(raw["bP"])
    auths = server_authenticators(parse_blocks(raw["authenticators"], "authenticator"))
    raw["be"] = {}
    for address, port in listener_endpoints(options):
        interface = "0.0.0.0" if address == "*" else address
        rc, out, err = run([exim, "-be", "-oMi", "%s.%d" % (interface, port)], data=be_input(options, auths))
        raw["be"]["%s.%d" % (address, port)] = out
    raw["bh"] = []
    if run_spot_checks:
        config_file = options.get("config_file") or _config_file(run, exim)
        endpoints = listener_endpoints(options)
        for check in spot_checks(desired, endpoints, parse_named_lists(raw["config"])):
            argv = exim_backend.bh_command(exim, config_file, check)
            rc, out, err = run(argv, data=exim_backend.bh_input(check))
            raw["bh"].append({"check": check, "output": out})
    router = parse_routers(raw["config"]).get("mailsec_smarthost") or {}
    if stat_file is not None and read_file is not None and router.get("route_data"):
        key = exim_backend.smarthost_passwd_key(smarthost_text(normalize_smarthost(_route_hosts(router["route_data"]))))
        raw["smarthost_credentials"] = credentials_file(exim_backend.SMARTHOST_PASSWD_FILE, read_file, stat_file, key=key, key_separator=":")
    return raw


def _route_hosts(route_data):
    """manualroute route_data without its trailing lookup options (byname, bydns)."""
    return re.sub(r"(\s+(byname|bydns))+\s*$", "", route_data or "") or None


def smarthost_settings(router, transports, authenticators, credentials):
    """TLS and AUTH towards the smarthost, from the transport our router names (issue 14)."""
    transport = transports.get((router or {}).get("transport") or "") or {}
    if transport.get("hosts_require_tls"):
        tls = "verify" if transport.get("tls_verify_hosts") else "encrypt"
    else:
        tls = "none"
    result = {"smarthost_tls": tls}
    if tls == "verify":
        result["smarthost_tls_ca_file"] = transport.get("tls_verify_certificates") or None
    auth = None
    client = authenticators.get(exim_backend.SMARTHOST_AUTHENTICATOR) or {}
    if transport.get("hosts_require_auth") and client:
        auth = {"username": (credentials or {}).get("username"), "file": credentials}
    result["smarthost_auth"] = auth
    return result


def _config_file(run, exim):
    rc, out, err = run([exim, "-bP", "config_file"])
    return out.strip().split(" = ", 1)[-1] if rc == 0 and out.strip() else "/var/lib/exim4/config.autogenerated"


# --------------------------------------------------------------------------------------------
# Interpretation
# --------------------------------------------------------------------------------------------


def _listener_names(desired):
    names = {}
    for item in (desired or {}).get("listeners") or []:
        names[(normalize_address(item.get("address")), int(item["port"]))] = item["name"]
    return names


def interpret(raw, desired=None):
    """Raw command output -> {mta, version, policy, notes, spot_checks}. Pure."""
    notes = []
    options = parse_options(raw["bP"])
    lists = parse_named_lists(raw.get("config"))
    auths = server_authenticators(parse_blocks(raw.get("authenticators"), "authenticator"))
    names = _listener_names(desired)

    def hostlist(name):
        info = lists.get(name)
        return info["items"] if info and info["type"] == "hostlist" else None

    def domainlist(name):
        info = lists.get(name)
        return info["items"] if info else []

    rcpt_acl = options.get("acl_smtp_rcpt") or ""
    ours = rcpt_acl == OUR_RCPT_ACL
    if not ours:
        notes.append("acl_smtp_rcpt is %s, not %s: relay grants read from relay_from_hosts, the -bh spot checks decide" % (rcpt_acl or "(unset)", OUR_RCPT_ACL))
    relay_from = hostlist("relay_from_hosts") or []
    never = NetSet(hostlist("mailsec_never_relay_hosts") or []) if ours else NetSet()
    loopback_hosts = NetSet(hostlist("mailsec_loopback_hosts") or []) if ours else NetSet()
    implicit_ports = set(p for p in (_port(w) for w in parse_list(options.get("tls_on_connect_ports"))) if p)
    tls_configured = bool(options.get("tls_certificate"))

    bh_by_endpoint = {}
    spot = []
    for item in raw.get("bh") or []:
        check = item["check"]
        verdict, stage, reply = exim_backend.bh_verdict(item["output"])
        replies = exim_backend.parse_replies(item["output"])
        result = dict(check, verdict=verdict, stage=stage, reply=reply)
        result.pop("sender", None)
        spot.append(result)
        if not check.get("authenticated"):  # an authenticated session skips the TLS-first rule
            bh_by_endpoint.setdefault(int(check["port"]), replies)

    listeners = []
    for address, port in listener_endpoints(options):
        name = names.get((address, port)) or STANDARD_NAMES.get(port, "port%d" % port)
        be = parse_be((raw.get("be") or {}).get("%s.%d" % (address, port)))
        advertised = [n for n in sorted(auths) if _truthy(be.get("authenticator %s" % n, "yes"))]
        auth = bool(auths) and _truthy(be.get("auth")) and bool(advertised)
        if be.get("auth") not in (None, "", "*"):
            notes.append("%s:%d: auth_advertise_hosts expands to a host list (%s): read as AUTH offered" % (address, port, be.get("auth")))
        replies = bh_by_endpoint.get(port) or []
        if port in implicit_ports:
            tls = "implicit" if tls_configured else "none"
        elif tls_configured and _truthy(be.get("tls")):
            tls = "starttls"
            if any("STARTTLS" in text.upper() and code >= 500 for code, text in replies[2:]):
                tls = "required"
        else:
            tls = "none"
        if ours:
            relay_list = hostlist(exim_backend.list_name("relay", {"name": name}))
            configured = NetSet(relay_list or [])
            grants = (configured | loopback_hosts) - never if relay_list is not None else NetSet()
            listener_never = never
        else:
            configured = NetSet(relay_from)
            grants = configured
            listener_never = NetSet()
        relay_networks = without_loopback(configured)
        role = "mx" if port == 25 or relay_networks or (grants & LOOPBACK) else ("submission" if auth or tls in ("required", "implicit") else "mx")
        allow = hostlist(exim_backend.list_name("connect_allow", {"name": name})) if ours else None
        deny = hostlist(exim_backend.list_name("connect_deny", {"name": name})) if ours else None
        listeners.append(
            {
                "name": name,
                "address": address,
                "port": port,
                "role": role,
                "tls": tls,
                "auth": auth,
                "auth_relay": auth and (role == "submission" or not ours),
                "relay_networks": relay_networks.cidrs(),
                "grants": grants.cidrs(),
                "never": listener_never.cidrs(),
                "connect_allow": NetSet(allow or []).cidrs(),
                "connect_deny": NetSet(deny or []).cidrs(),
            }
        )
        identity = [r for r in spot if r.get("sender_identity") and int(r["port"]) == port]
        if identity:
            listeners[-1]["sender_login_match"] = all(r["verdict"] == "deny" and r["stage"] == "MAIL" for r in identity)

    hostname = options.get("primary_hostname")
    drop = ("@", "localhost", (hostname or "").lower())
    relay_part, _loop = split_loopback(relay_from)
    routers = parse_routers(raw.get("config"))
    smarthost = None
    if "mailsec_smarthost" in routers:
        # Options (byname) follow the host list after white space.
        smarthost = smarthost_text(normalize_smarthost(_route_hosts(routers["mailsec_smarthost"].get("route_data"))))
        # Our router writes '[name]:port' and 'name:port' alike (manualroute has no brackets): the
        # same host and port as the policy's smarthost is that smarthost.
        wanted = normalize_smarthost((desired or {}).get("smarthost"))
        have = normalize_smarthost(smarthost)
        if wanted and have and wanted[:2] == have[:2]:
            smarthost = smarthost_text(wanted)
    elif "smarthost" in routers and routers["smarthost"].get("route_list"):
        hosts = routers["smarthost"]["route_list"].split()[1:2]
        smarthost = smarthost_text(normalize_smarthost(hosts[0].replace("::", ":"))) if hosts else None
    policy = {
        "hostname": hostname,
        "local_domains": sorted(set(d.lower() for d in domainlist("local_domains") if d.lower() not in drop)),
        "relay_domains": sorted(set(d.lower() for d in domainlist("relay_to_domains"))),
        "relay_networks": relay_part.cidrs(),
        "listeners": listeners,
        "smarthost": smarthost,
        "tls": {"cert": options.get("tls_certificate") or None, "key": options.get("tls_privatekey") or None},
    }
    finish_policy(policy)
    if ours:
        policy["never_relay_networks"] = never.cidrs()
    if "mailsec_smarthost" in routers and "transports" in raw:
        policy.update(
            smarthost_settings(
                routers["mailsec_smarthost"],
                parse_blocks(raw.get("transports"), "transport"),
                parse_blocks(raw.get("authenticators"), "authenticator"),
                raw.get("smarthost_credentials"),
            )
        )
    policy["client_limits"] = dict(client_limits(options), **brake_limits(raw.get("config"), options))
    policy["sender_rate_limits"] = sender_rate_limits(raw.get("config"), options)
    return {
        "mta": "exim",
        "version": parse_version(raw.get("bV")),
        "policy": policy,
        "notes": notes,
        "spot_checks": spot,
        "acl_smtp_rcpt": rcpt_acl,
    }
