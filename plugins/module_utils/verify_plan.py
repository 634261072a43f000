# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Expected verdicts from the effective relay policy, and what the probes found.

Pure Python (netaddr only), shared by the ``mailsec.relay.probe_targets`` filters, roles/verify and the
unit tests.  Three steps:

* :func:`build_target` / :func:`build_plan`: effective policy (docs/policy-model.md) + vantage point ->
  relay_probe targets whose expectations (``relay: allowed|refused``, ``auth_relay``) hold *for that
  vantage* (docs/probe-contract.md). A server this collection does not manage states its listeners,
  domains and trusted networks in ``verify_*`` variables instead (:func:`verify_only_policy`);
  listeners the readback found but the policy does not declare are probed with MX semantics;
* :func:`summarize`: relay_probe results -> per host verdict counts, findings by id, status (FAIL,
  UNVERIFIED, ...) and the worst finding; :func:`gate` -> the hosts that fail and why;
* :func:`comparison_table`: two summaries (before/after hardening) -> a plain-text table.
"""

from __future__ import annotations

from ansible_collections.mailsec.relay.plugins.module_utils import findings as finding_ids
from ansible_collections.mailsec.relay.plugins.module_utils import grammar, policy, relay_rules, report

try:
    import netaddr
except ImportError:  # pragma: no cover - policy.HAS_NETADDR tells the caller; the filter reports it
    netaddr = None

HAS_NETADDR = policy.HAS_NETADDR

VERDICTS = ("PASS", "FAIL", "WARN", "INCONCLUSIVE", "SKIP")

# Which finding a human should see first: relay accepted at RCPT (plain third-party form P02 first),
# relay confirmed by a canary, vantage relay, sender spoofing, submission without AUTH, identity
# spoofing. Other probes follow by ID.
# A dead listener (T00) first: nothing else on it was tested.
_PROBE_SEVERITY = ("T00", "T11", "T12", "T20", "T15", "T06", "T05", "T19", "T17", "T04", "T02", "T08")

LISTENER_ROLES = ("mx", "submission")
TLS_MODES = ("none", "starttls", "required", "implicit")
# Variables of verify-only mode (a server this collection does not configure); verify_listeners turns it on.
VERIFY_ONLY_KEYS = ("verify_listeners", "verify_hostname", "verify_local_domains", "verify_relay_domains", "verify_trusted_networks")


class VerifyPlanError(ValueError):
    """The inputs cannot give a trustworthy expectation (bad vantage, missing policy)."""


def _ip(value, what):
    try:
        return netaddr.IPAddress(str(value).strip("[]"))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise VerifyPlanError("%s: %r is not an IP address" % (what, value))


def _inside(address, networks):
    """True when ``address`` (IPAddress or None) lies in one of the CIDRs in ``networks``."""
    if address is None:
        return False
    for net in networks or []:
        network = netaddr.IPNetwork(str(net))
        if network.version == address.version and address in network:
            return True
    return False


def _family(address):
    """IP version of a probe address, or None for a host name (family unknown: keep it)."""
    try:
        return netaddr.IPAddress(str(address).strip("[]")).version
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None


def listener_expectation(listener, effective, source, addresses):
    """Return ``(reachable, relay_allowed, auth_relay)`` of one listener for one vantage.

    ``source`` is the vantage's IPAddress, or None for "the prober's own, untrusted address".
    ``reachable`` means the vantage can open an SMTP session on this listener at all: the listener is
    bound where we probe, and connect_allow/connect_deny let the vantage in.
    """
    bound = str(listener.get("address", "*"))
    if bound in ("*", "", "0.0.0.0", "::"):
        bound_ok = True
    else:
        bound_ip = _ip(bound, "listener %s address" % listener.get("name", listener.get("port")))
        probed = set(str(a).strip("[]") for a in addresses)
        # A loopback-bound listener is reachable only from the host itself, whatever address we probe.
        if bound_ip.is_loopback():
            bound_ok = source is not None and source.is_loopback() and str(bound_ip) in probed
        else:
            bound_ok = str(bound_ip) in probed

    # The effective policy resolves connect lists per listener (an override may be []); a bare
    # listener written by hand falls back to the global lists.
    connect_allow = listener.get("connect_allow")
    if connect_allow is None:
        connect_allow = effective.get("connect_allow") or []
    connect_deny = listener.get("connect_deny")
    if connect_deny is None:
        connect_deny = effective.get("connect_deny") or []
    if connect_allow and not _inside(source, connect_allow):
        # An unknown (None) source is assumed not to be on anybody's allow list.
        connect_ok = False
    else:
        connect_ok = not _inside(source, connect_deny)

    reachable = bound_ok and connect_ok
    relay_allowed = auth_relay = False
    if reachable and source is not None:
        # The policy model's own rule (never-relay wins, submission needs AUTH, loopback if trusted).
        relay_allowed = relay_rules.may_relay_unauthenticated(effective, listener, str(source))
    if reachable and listener.get("role", "mx") == "submission":
        # never_relay_networks overrides every grant, AUTH included.
        auth_relay = bool(effective.get("auth_relay")) and bool(listener.get("auth", True)) and not relay_rules.is_never_relay(effective, source)
    return reachable, relay_allowed, auth_relay


# A local part no recipient list or map is expected to know (T23 unknown-recipient probes).
UNKNOWN_LOCAL_PART = "mailsec-probe-unknown-recipient"


def hosted_domains(effective):
    """Domains inbound mail must be accepted for: local, virtual mailbox, virtual alias (issue 15)."""
    domains = list(effective.get("local_domains") or [])
    for kind in ("virtual_mailbox_domains", "virtual_alias_domains"):
        domains += [d for d in effective.get(kind) or [] if d not in domains]
    return domains


def refused_recipients(effective):
    """Addresses MX listeners must refuse at RCPT (T23): an unknown name in every relay domain with
    recipient validation (none where the list accepts every name of the domain), and each blocked domain."""
    refused = []
    if effective.get("relay_recipient_validation"):
        known = effective.get("relay_recipients") or []
        for domain in effective.get("relay_domains") or []:
            if "@%s" % domain not in known:
                refused.append({"address": "%s@%s" % (UNKNOWN_LOCAL_PART, domain), "kind": "unknown"})
    for domain in effective.get("blocked_domains") or []:
        refused.append({"address": "postmaster@%s" % domain, "kind": "blocked"})
    return refused


def build_target(
    name, effective, source_address=None, addresses=None, sasl_users=None, test_mailbox=None, auth=None, extra_ports=None, readback=None, undeclared=None
):
    """Build one relay_probe target for host ``name`` as seen from ``source_address``.

    Returns None when no probe address has the vantage's IP family (an IPv6 vantage cannot probe an
    IPv4-only host); the caller records that as skipped. ``auth`` (``{username, password}``) wins
    over ``sasl_users``; ``extra_ports`` are passed to the engine (probed when open, MX semantics);
    ``readback`` is the ``mailsec_relay_readback`` fact: its SMTP listeners that the policy does not
    declare are added with MX semantics (:func:`undeclared_listeners`), their ports appended to
    the list ``undeclared`` when given.
    """
    if not isinstance(effective, dict) or "listeners" not in effective:
        raise VerifyPlanError("%s: no effective relay policy (mailsec_relay_effective); run role mailsec.relay.policy first" % name)
    source = _ip(source_address, "vantage source_address") if source_address not in (None, "") else None
    addresses = [str(a) for a in (addresses or [])]
    if not addresses:
        raise VerifyPlanError("%s: no address to probe (set verify_addresses or ansible_host)" % name)
    if source is not None:
        addresses = [a for a in addresses if _family(a) in (None, source.version)]
        if not addresses:
            return None

    listeners = []
    inbound = False
    for listener in effective["listeners"]:
        reachable, relay_allowed, auth_relay = listener_expectation(listener, effective, source, addresses)
        entry = {
            "port": int(listener["port"]),
            "role": listener.get("role", "mx"),
            "tls": listener.get("tls", "none"),
            "relay": "allowed" if relay_allowed else "refused",
        }
        if entry["role"] == "submission":
            entry["auth_relay"] = auth_relay
        if listener.get("sender_login_match"):
            entry["sender_login_match"] = True
        if not reachable:
            # bound to loopback or elsewhere, or outside the connect list: closed is what the policy
            # says; open, it is still probed and must refuse to relay
            entry["reachable"] = False
        if reachable and entry["role"] == "mx":
            inbound = True
        listeners.append(entry)
    for entry in undeclared_listeners(effective, readback, source, addresses):
        listeners.append(entry)
        if undeclared is not None:
            undeclared.append(entry["port"])

    target = {
        "name": str(name),
        "addresses": addresses,
        "hostname": effective.get("hostname") or str(name),
        # Hosted domains are accepted only where this vantage can deliver inbound (an MX listener it may
        # connect to); from anywhere else every recipient must be refused, so none is expected to pass.
        # Virtual mailbox and alias domains are hosted too: inbound for them must be accepted (T13/T14).
        "local_domains": hosted_domains(effective) if inbound else [],
        "relay_domains": list(effective.get("relay_domains") or []) if inbound else [],
        "listeners": listeners,
    }
    refused = refused_recipients(effective) if inbound else []
    if refused:
        target["refused_recipients"] = refused
    if test_mailbox and inbound:
        # A real local mailbox: inbound control (T13) and the only non-canary DATA recipient (T17).
        target["test_mailbox"] = str(test_mailbox)
    user = (sasl_users or [None])[0]
    if isinstance(auth, dict) and auth.get("username") and auth.get("password") is not None:
        target["auth"] = {"username": str(auth["username"]), "password": str(auth["password"])}
    elif isinstance(user, dict) and user.get("name") and user.get("password") is not None:
        target["auth"] = {"username": str(user["name"]), "password": str(user["password"])}
    declared = set(entry["port"] for entry in listeners)
    extra = sorted(set(port for port in _ports(extra_ports, "verify_extra_ports (%s)" % name) if port not in declared))
    if extra:
        target["extra_ports"] = extra
    return target


def _ports(value, what):
    """A list of TCP ports (ints 1-65535) from inventory input; VerifyPlanError naming ``what``."""
    if value in (None, ""):
        return []
    if not isinstance(value, (list, tuple)):
        raise VerifyPlanError("%s: expected a list of TCP ports, got %r; write e.g. [26, 2525]" % (what, value))
    ports = []
    for item in value:
        try:
            port = int(item)
        except (TypeError, ValueError):
            port = 0
        if isinstance(item, bool) or not 0 < port < 65536:
            raise VerifyPlanError("%s: %r is not a TCP port (1-65535)" % (what, item))
        ports.append(port)
    return ports


def undeclared_listeners(effective, readback, source, addresses):
    """Targets' listeners for the SMTP listeners of ``readback`` (mta_facts) on ports the policy does not declare.

    An undeclared listener is judged with MX semantics: it must not relay. From a vantage the policy lets
    relay on an MX listener (a trusted network) nothing is expected of it, so it is left out there; it is
    also left out where the vantage cannot reach it (bound to another address, loopback).
    """
    found = ((readback or {}).get("policy") or {}).get("listeners") if isinstance(readback, dict) else None
    if not found:
        return []
    declared = set(int(item["port"]) for item in effective.get("listeners") or [])
    mx_semantics = {"role": "mx", "relay_networks": list(effective.get("relay_networks") or [])}
    entries = []
    for item in found:
        try:
            port = int(item.get("port"))
        except (TypeError, ValueError, AttributeError):
            continue
        if port in declared or port in set(entry["port"] for entry in entries):
            continue
        probe_as = dict(mx_semantics, port=port, address=item.get("address", "*"))
        try:
            reachable = listener_expectation(probe_as, effective, source, addresses)[0]
        except VerifyPlanError:  # a bound name we cannot place: not probed rather than guessed
            continue
        if not reachable:
            continue
        if source is not None and relay_rules.may_relay_unauthenticated(effective, probe_as, str(source)):
            continue
        tls = item.get("tls") if item.get("tls") in TLS_MODES else "none"
        entries.append({"port": port, "role": "mx", "tls": tls, "relay": "refused"})
    return entries


def _networks(value, what):
    if value in (None, ""):
        return []
    if not isinstance(value, (list, tuple)):
        value = [value]
    networks = []
    for item in value:
        try:
            networks.append(str(netaddr.IPNetwork(str(item).strip())))
        except (netaddr.AddrFormatError, ValueError, TypeError):
            raise VerifyPlanError("%s: %r is not a network (CIDR); write e.g. 198.51.100.0/28" % (what, item))
    return networks


def _domain(value, what):
    """One domain name of a verify-only server, as the probes send it (A-labels, lower case):
    the same grammar as the policy's domains (module_utils/grammar.py)."""
    try:
        return grammar.domain_name(value)
    except grammar.GrammarError as exc:
        raise VerifyPlanError("%s: %r is not a domain name (%s); write e.g. example.test" % (what, value, exc.reason))


def _inventory_host_name(name):
    """The inventory name as the server's own name when verify_hostname is not given (it may be an
    address or hold '_', as the engine takes it)."""
    try:
        return grammar.host_name(name)
    except grammar.GrammarError as exc:
        raise VerifyPlanError("%s: the inventory name is no host name (%s); set verify_hostname to the server's own name" % (name, exc.reason))


def _domains(value, what):
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item.strip() for item in value):
        raise VerifyPlanError("%s: expected a list of domain names, got %r" % (what, value))
    return [_domain(item, "%s[%d]" % (what, index)) for index, item in enumerate(value)]


def verify_only_policy(name, spec):
    """An effective-policy-shaped dict from verify-only variables (a server this collection does not manage).

    ``spec`` holds ``listeners`` (``[{port, role, tls, relay_networks, auth, sender_login_match,
    connect_allow, address}]``), ``hostname``, ``local_domains``, ``relay_domains`` and
    ``trusted_networks`` (may relay unauthenticated on MX listeners unless a listener lists its own
    ``relay_networks``). Errors name the variable and the fix (VerifyPlanError).
    """
    where = "%s: verify_listeners" % name
    raw = spec.get("listeners")
    if not isinstance(raw, (list, tuple)) or not raw:
        raise VerifyPlanError("%s: expected a non-empty list of {port, role, tls}; e.g. [{port: 25, role: mx, tls: starttls}]" % where)
    trusted = _networks(spec.get("trusted_networks"), "%s: verify_trusted_networks" % name)
    listeners, ports = [], set()
    for index, item in enumerate(raw):
        what = "%s[%d]" % (where, index)
        if not isinstance(item, dict):
            raise VerifyPlanError("%s: expected a mapping {port, role, tls}, got %r" % (what, item))
        unknown = sorted(set(item) - set(("port", "role", "tls", "relay_networks", "auth", "sender_login_match", "connect_allow", "address", "name")))
        if unknown:
            raise VerifyPlanError(
                "%s: unknown key(s) %s; allowed: port, role, tls, relay_networks, auth, sender_login_match, connect_allow, "
                "address, name" % (what, ", ".join(unknown))
            )
        port = _ports([item.get("port")], what + ".port")[0]
        if port in ports:
            raise VerifyPlanError("%s.port: port %d is listed twice; one entry per port" % (what, port))
        ports.add(port)
        role = item.get("role") or ("submission" if port in (465, 587) else "mx")
        if role not in LISTENER_ROLES:
            raise VerifyPlanError("%s.role: %r is not a listener role; use mx (port 25 semantics) or submission (AUTH after TLS)" % (what, role))
        tls = item.get("tls") or ("implicit" if port == 465 else "required" if role == "submission" else "starttls")
        if tls not in TLS_MODES:
            raise VerifyPlanError("%s.tls: %r is not a TLS mode; use one of %s" % (what, tls, ", ".join(TLS_MODES)))
        if item.get("relay_networks") is not None:
            relay_networks = _networks(item["relay_networks"], what + ".relay_networks")
            if role == "submission" and relay_networks:
                raise VerifyPlanError(
                    "%s.relay_networks: a submission listener relays only after AUTH; describe unauthenticated relaying on an mx listener" % what
                )
        else:
            relay_networks = trusted if role == "mx" else []
        for flag in ("auth", "sender_login_match"):
            if item.get(flag) is not None and not isinstance(item[flag], bool):
                raise VerifyPlanError("%s.%s: expected true or false, got %r" % (what, flag, item[flag]))
        label = item.get("name") or "port%d" % port
        if not isinstance(label, str) or len(label) > 64 or not grammar.is_single_line(label):
            raise VerifyPlanError("%s.name: %r is not a listener name; use one line of at most 64 characters, e.g. Default Frontend" % (what, label))
        address = item.get("address") or "*"
        if not grammar.is_listen_address(address):
            raise VerifyPlanError("%s.address: %r is not '*' or one IP address; e.g. 198.51.100.10" % (what, address))
        listeners.append(
            {
                "name": label,
                "address": address,
                "port": port,
                "role": role,
                "tls": tls,
                "auth": bool(item.get("auth", role == "submission")),
                "sender_login_match": bool(item.get("sender_login_match", False)),
                "relay_networks": relay_networks,
                "connect_allow": _networks(item.get("connect_allow"), what + ".connect_allow"),
                "connect_deny": [],
            }
        )
    return {
        "verify_only": True,
        "hostname": _domain(spec["hostname"], "%s: verify_hostname" % name) if spec.get("hostname") else _inventory_host_name(name),
        "local_domains": _domains(spec.get("local_domains"), "%s: verify_local_domains" % name),
        "relay_domains": _domains(spec.get("relay_domains"), "%s: verify_relay_domains" % name),
        "relay_networks": trusted,
        "never_relay_networks": [],
        "loopback_networks": [],
        "connect_allow": [],
        "connect_deny": [],
        "auth_relay": True,
        "listeners": listeners,
    }


def _vantages(vantages):
    """Validate vantages; ``source_address`` (a string or a list, one address per IP family)
    becomes a list of normalized addresses ([] = the prober's own, untrusted address)."""
    result = []
    seen = set()
    for index, vantage in enumerate(vantages or [{"name": "default"}]):
        if not isinstance(vantage, dict) or not vantage.get("name"):
            raise VerifyPlanError("verify_vantages[%d]: needs a name" % index)
        if vantage["name"] in seen:
            raise VerifyPlanError("verify_vantages[%d]: duplicate name %s" % (index, vantage["name"]))
        seen.add(vantage["name"])
        sources = vantage.get("source_address")
        if sources in (None, ""):
            sources = []
        elif not isinstance(sources, (list, tuple)):
            sources = [sources]
        normalized, families = [], set()
        for source in sources:
            address = _ip(source, "verify_vantages[%d].source_address" % index)
            if address.version in families:
                raise VerifyPlanError("verify_vantages[%d].source_address: one address per IP family (two IPv%d)" % (index, address.version))
            families.add(address.version)
            normalized.append(str(address))
        result.append({"name": str(vantage["name"]), "source_address": normalized})
    return result


# Defaults of roles/verify's verify_sender_rate_ceiling / verify_auth_rate_ceiling: the most messages
# (T24) or AUTH commands (T25) a limit probe may send to one host; the engine caps both at 100.
LIMIT_CEILINGS = {"sender_rate_ceiling": 100, "auth_rate_ceiling": 100}
_CEILING_VARIABLES = {"sender_rate_ceiling": "verify_sender_rate_ceiling", "auth_rate_ceiling": "verify_auth_rate_ceiling"}


def _ceilings(limits):
    """The limit probes' ceilings (ints >= 0; 0 turns the probe off) from the role's variables."""
    out = dict(LIMIT_CEILINGS)
    for key, value in (limits or {}).items():
        if key not in out:
            raise VerifyPlanError("limit probes: unknown setting %r (known: %s)" % (key, ", ".join(sorted(out))))
        if value in (None, ""):
            continue
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = -1
        if isinstance(value, bool) or number < 0 or str(value).strip() != str(number):
            raise VerifyPlanError("%s: expected a whole number >= 0 (0 turns the probe off), got %r" % (_CEILING_VARIABLES[key], value))
        out[key] = number
    return out


def policy_sender_rate(effective):
    """The per-login limit T24 tests: the lower non-zero of messages and recipients per window (each
    probe message has one recipient, so either brake refuses message limit + 1); 0 = none; None when
    the policy predates sender rate limits."""
    limits = effective.get("sender_rate_limits") if isinstance(effective, dict) else None
    if not isinstance(limits, dict):
        return None
    values = [int(limits.get(key) or 0) for key in ("messages", "recipients")]
    return min([value for value in values if value > 0] or [0])


def policy_auth_rate(effective):
    """AUTH commands per client and minute (client_limits.auth_rate); 0 = none; None when absent."""
    limits = effective.get("client_limits") if isinstance(effective, dict) else None
    if not isinstance(limits, dict):
        return None
    return int(limits.get("auth_rate") or 0)


def rate_probe_login(host, auth):
    """``{username, password}`` of the host's ``verify_rate_probe_login`` (an entry of its SASL
    users), or None when unset. It must not be the login the other probes use (``auth``)."""
    login = host.get("rate_probe_login")
    if login in (None, ""):
        return None
    name = host["name"]
    if not isinstance(login, str):
        raise VerifyPlanError("%s: verify_rate_probe_login: expected a login name, got %s" % (name, type(login).__name__))
    for user in host.get("sasl_users") or []:
        if isinstance(user, dict) and str(user.get("name", "")).lower() == login.strip().lower() and user.get("password") not in (None, ""):
            if auth and str(auth.get("username", "")).lower() == login.strip().lower():
                raise VerifyPlanError(
                    "%s: verify_rate_probe_login: %s is the login T09/T10 use (verify_auth or mailsec_relay_sasl_users[0]); "
                    "T24 spends its budget for the window: name a user kept for this probe" % (name, login)
                )
            return {"username": str(user["name"]), "password": str(user["password"])}
    # The message names the variable and the login, never a password.
    raise VerifyPlanError(
        "%s: verify_rate_probe_login: %s is not a login of mailsec_relay_sasl_users with a password; "
        "add a user kept for the rate-limit probe there and name it" % (name, login)
    )


def _limit_listener(target):
    """The listener T24/T25 run on (the engine's first_auth_listener): first submission with TLS."""
    for entry in target["listeners"]:
        if entry.get("role") == "submission" and entry.get("tls", "none") != "none":
            return entry
    return None


def _exempt(effective, source):
    """Relay networks and trusted loopback are exempt from the per-client AUTH brake (Postfix
    smtpd_client_event_limit_exceptions = $mynetworks; the Exim ACL skips +relay_from_hosts)."""
    networks = list(effective.get("relay_networks") or []) + list(effective.get("loopback_networks") or [])
    return _inside(source, networks)


def assign_limit_probes(placed, hosts, limits=None):
    """Issue 14: give each host's T24 (per-login sender rate) and T25 (AUTH attempts per client) to
    ONE of its targets, and a reason wherever they cannot run (a SKIP in the report, never a silent
    PASS). ``placed`` lists ``(host name, vantage name, source IPAddress or None, target)``.

    Once per host, not per vantage: T24 spends the dedicated login's budget for the window (a second
    run would find it spent), T25 leaves the prober's address throttled for a minute. The first
    target (vantage order) whose limit listener may relay after AUTH takes them; for T25 its source
    must also be outside the relay networks, which the brake exempts.
    """
    ceilings = _ceilings(limits)
    for host in hosts:
        effective = host.get("effective")
        if host.get("invalid") or host.get("verify") or not isinstance(effective, dict):
            continue  # verify-only hosts: no policy limits to test
        mine = [(vantage, source, target) for name, vantage, source, target in placed if name == host["name"] and _limit_listener(target)]
        if not mine:
            continue  # no submission listener with TLS: neither has a place to run
        sender_rate, auth_rate = policy_sender_rate(effective), policy_auth_rate(effective)
        if sender_rate is not None:
            _assign_t24(host, mine, sender_rate, ceilings["sender_rate_ceiling"])
        if auth_rate is not None:
            _assign_t25(effective, mine, auth_rate, ceilings["auth_rate_ceiling"])


def _assign_t24(host, mine, limit, ceiling):
    chosen = next(((vantage, target) for vantage, source, target in mine if _limit_listener(target).get("auth_relay")), None)
    spec = {"limit": limit, "ceiling": ceiling}
    target = (chosen or (None, mine[0][2]))[1]
    login = rate_probe_login(host, target.get("auth"))
    if not limit:
        spec["skip"] = "the policy sets no per-login sender rate limit (mailsec_relay_sender_rate_limit_messages/_recipients)"
    elif chosen is None:
        spec["skip"] = "no vantage may relay after AUTH on port %d: nowhere to spend the login's budget" % _limit_listener(target)["port"]
    elif login is None:
        spec["skip"] = (
            "no dedicated login: set verify_rate_probe_login to a user of mailsec_relay_sasl_users kept for this probe "
            "(it spends the login's budget for the window)"
        )
    else:
        spec.update(login)
    target["sender_rate_limit"] = spec


def _assign_t25(effective, mine, limit, ceiling):
    chosen = next(
        ((vantage, target) for vantage, source, target in mine if _limit_listener(target).get("auth_relay") and not _exempt(effective, source)),
        None,
    )
    spec = {"limit": limit, "ceiling": ceiling}
    target = (chosen or (None, mine[0][2]))[1]
    if not limit:
        spec["skip"] = "the policy sets no AUTH rate limit per client (mailsec_relay_client_auth_rate_limit: 0)"
    elif chosen is None:
        spec["skip"] = (
            "no vantage outside the relay networks may AUTH on port %d (the brake exempts the relay networks, as Postfix's "
            "smtpd_client_event_limit_exceptions does)" % _limit_listener(target)["port"]
        )
    target["auth_attempt_limit"] = spec


def build_plan(hosts, vantages, limits=None):
    """One probe run per vantage: ``[{vantage: {name, source_address}, targets: [...], skipped: [...]}]``.

    ``hosts`` is a list of ``{name, effective, addresses, sasl_users, test_mailbox}`` plus optional
    ``verify`` (verify-only variables, see :func:`verify_only_policy`; it replaces ``effective``),
    ``auth``, ``extra_ports`` and ``readback``. A dual-stack vantage gives a host one target per IP
    family (same name), since each source address may sit in different networks and so expect
    different verdicts. A host with ``invalid`` (its policy's errors) is listed under ``skipped``
    with ``invalid: true`` and never probed. Each run lists ``undeclared``: ``{name, ports}`` of readback listeners
    probed although the policy does not declare them. All hosts in one pass: the verify-only
    policies are built once, not per vantage. ``limits`` holds the limit probes' ceilings
    (:data:`LIMIT_CEILINGS`); hosts may name ``rate_probe_login`` (:func:`assign_limit_probes`).
    """
    plan, placed = [], []
    hosts = list(hosts or [])
    for index, host in enumerate(hosts):
        if host.get("verify"):
            hosts[index] = dict(host, effective=verify_only_policy(host["name"], host["verify"]))
    for vantage in _vantages(vantages):
        targets, skipped, undeclared = [], [], []
        sources = vantage["source_address"] or [None]
        for host in hosts:
            if host.get("invalid"):  # an invalid policy: never probed, failed with its errors
                skipped.append({"name": host["name"], "reason": str(host["invalid"]), "invalid": True})
                continue
            addresses = [str(a) for a in host.get("addresses") or []]
            found = False
            for index, source in enumerate(sources):
                # Host names (family unknown) are probed once, with the first source address.
                wanted = addresses if index == 0 else [a for a in addresses if _family(a) is not None]
                if not wanted and addresses:
                    continue
                ports = []
                target = build_target(
                    host["name"],
                    host.get("effective"),
                    source,
                    wanted,
                    host.get("sasl_users"),
                    host.get("test_mailbox"),
                    auth=host.get("auth"),
                    extra_ports=host.get("extra_ports"),
                    readback=host.get("readback"),
                    undeclared=ports,
                )
                if target is not None:
                    targets.append(target)
                    placed.append((host["name"], vantage["name"], _ip(source, "vantage source_address") if source else None, target))
                    found = True
                    if ports:
                        undeclared.append({"name": host["name"], "ports": ports})
            if not found:
                skipped.append({"name": host["name"], "reason": "no address of the vantage's IP family"})
        plan.append({"vantage": vantage, "targets": targets, "skipped": skipped, "undeclared": undeclared})
    assign_limit_probes(placed, hosts, limits)
    return plan


def redact_plan(plan):
    """The plan without passwords (for debug output and reports)."""
    redacted = []
    for run in plan:
        targets = []
        for target in run["targets"]:
            target = dict(target)
            if "auth" in target:
                target["auth"] = {"username": target["auth"]["username"], "password": "********"}
            if "password" in (target.get("sender_rate_limit") or {}):
                target["sender_rate_limit"] = dict(target["sender_rate_limit"], password="********")
            targets.append(target)
        redacted.append(dict(run, targets=targets))
    return redacted


def finding_text(result):
    """Short form of one result, e.g. ``T11/P02 RCPT 250 on :25``."""
    probe = result.get("probe", "?")
    if result.get("case"):
        probe = "%s/%s" % (probe, result["case"])
    reply = result.get("reply") or {}
    if reply.get("code") is not None:
        seen = "%s %s" % (reply.get("stage") or "reply", reply["code"])
    else:
        seen = reply.get("stage") or "no reply"
    return "%s %s on :%s" % (probe, seen, result.get("port", "?"))


def _severity(result):
    probe = result.get("probe", "")
    rank = _PROBE_SEVERITY.index(probe) if probe in _PROBE_SEVERITY else len(_PROBE_SEVERITY)
    case = result.get("case") or ""
    return (rank, probe, 0 if result.get("port") == 25 else 1, case != "P02", case)


def _finding_rank(result):
    return (finding_ids.rank(result.get("severity")),) + _severity(result)


def summarize(runs, hosts):
    """Per-host verdicts from relay_probe runs (full or compact results).

    ``runs`` is a list of ``{vantage: name, results: [...]}``; every host in ``hosts`` gets an entry,
    even with no result (so a host nobody probed is visible rather than silently "clean").
    Returns ``{host: {counts, findings, status, failures, warnings, worst, results}}``: ``counts``
    per verdict (a compact PASS aggregate adds its ``count``), ``findings`` per finding id, and
    ``status`` as in the reports (FAIL, UNVERIFIED, WARN, INCONCLUSIVE, PASS, NO CHECKS). Every
    non-PASS, non-SKIP result carries ``finding``, ``severity`` and ``reason`` (a fallback from
    module_utils/report.py when the engine gave none); results carry ``vantage``.
    """
    summary = {}
    for host in hosts:
        summary[str(host)] = {
            "counts": dict((verdict, 0) for verdict in VERDICTS),
            "findings": {},
            "status": report.NO_CHECKS,
            "failures": [],
            "warnings": [],
            "worst": None,
            "results": [],
        }
    for run in runs:
        vantage = run.get("vantage")
        for result in run.get("results") or []:
            host = summary.get(str(result.get("target")))
            if host is None:
                continue
            result = dict(result, vantage=vantage)
            verdict = result.get("verdict", "INCONCLUSIVE")
            if verdict not in ("PASS", "SKIP"):
                result["finding_named"] = bool(result.get("finding"))
                result["finding"], result["severity"], result["reason"] = report.classify(report.normalize_verdict(verdict), result)
                host["findings"][result["finding"]] = host["findings"].get(result["finding"], 0) + 1
            host["counts"][verdict] = host["counts"].get(verdict, 0) + report._count(result)
            host["results"].append(result)
            if verdict == "FAIL":
                host["failures"].append(result)
            elif verdict == "WARN":
                host["warnings"].append(result)
    for host in summary.values():
        host["failures"].sort(key=_finding_rank)
        host["warnings"].sort(key=_finding_rank)
        host["status"] = report.host_status([{"verdict": report.normalize_verdict(r.get("verdict")), "finding": r.get("finding")} for r in host["results"]])
        # The worst finding: a real FAIL before an unverified relay decision.
        ranked = [r for r in host["failures"] if r.get("finding") != "unverified"] or host["failures"] or host["warnings"] or [None]
        worst = ranked[0]
        if worst is None:
            host["worst"] = None
        else:  # the finding id when the engine named one (a fallback id says nothing more than the probe)
            host["worst"] = "%s from %s" % (finding_text(worst), worst["vantage"])
            if worst.get("finding_named"):
                host["worst"] += " (%s)" % worst["finding"]
        for result in host["results"]:
            result.pop("finding_named", None)
    return summary


def gate(summary, verdicts=("FAIL",), unverified="fail", limit=10):
    """``{host: message lines}`` of every host that fails the gate: a result with a verdict in
    ``verdicts``, or, with ``unverified`` = ``fail``, a required relay check without a verdict
    (status UNVERIFIED) whatever verdict the engine gave it. Hosts that pass are absent."""
    failing = {}
    verdicts = tuple(verdicts or ())
    for host, data in summary.items():
        is_unverified = any(r.get("finding") == "unverified" for r in data["results"])
        hit = any(r.get("verdict") in verdicts for r in data["results"])
        if hit or (is_unverified and unverified == "fail"):
            failing[host] = failure_message(host, data, verdicts, limit, unverified=unverified)
    return failing


def failure_message(host, host_summary, verdicts=("FAIL",), limit=10, unverified="warn"):
    """The message a failing host gets: each finding (up to ``limit``) with finding id, severity,
    probe, listener, reply and reason. With ``unverified`` = ``fail``, unverified results count too."""
    verdicts = tuple(verdicts)
    selected = [r for r in host_summary["results"] if r.get("verdict") in verdicts or (unverified == "fail" and r.get("finding") == "unverified")]
    findings = sorted(
        selected,
        key=lambda r: (verdicts.index(r["verdict"]) if r.get("verdict") in verdicts else len(verdicts),) + _finding_rank(r),
    )
    shown = "/".join(verdicts) or "no"
    lines = ["%s: %d %s verdict(s) from live SMTP probes" % (host, len([r for r in selected if r.get("verdict") in verdicts]), shown)]
    if unverified == "fail" and any(r.get("finding") == "unverified" for r in selected):
        lines[0] += "; UNVERIFIED: a required relay check ended without a verdict (verify_unverified: warn reports it only)"
    for result in findings[:limit]:
        reply = result.get("reply") or {}
        reply_text = " ".join(str(part) for part in (reply.get("code"), reply.get("enhanced"), reply.get("text")) if part) or "no reply"
        if result.get("reason"):  # e.g. T00: why there was no reply (refused, no greeting)
            reply_text += " (%s)" % result["reason"]
        lines.append(
            "%s %s (%s) vantage %s -> %s port %s: %s reply %s [expected %s] finding %s (%s)"
            % (
                result.get("verdict"),
                result.get("probe") if not result.get("case") else "%s/%s" % (result["probe"], result["case"]),
                result.get("title") or "",
                result.get("vantage"),
                result.get("address"),
                result.get("port"),
                reply.get("stage") or "",
                reply_text,
                result.get("expected", "?"),
                result.get("finding") or "?",
                result.get("severity") or "?",
            )
        )
    if len(findings) > limit:
        lines.append("... and %d more (see the report)" % (len(findings) - limit))
    return lines


def brief(summary):
    """Summary without the bulky per-result lists: ``{host: {status, counts, findings, worst}}`` for printing."""
    return dict(
        (
            host,
            {
                "status": data.get("status"),
                "counts": dict((k, v) for k, v in data["counts"].items() if v),
                "findings": data.get("findings") or {},
                "worst": data["worst"],
            },
        )
        for host, data in summary.items()
    )


def _counts_cell(data):
    if data is None:
        return "-"
    counts = data["counts"]
    return "/".join(str(counts.get(verdict, 0)) for verdict in ("PASS", "FAIL", "WARN", "INCONCLUSIVE"))


def run_lines(runs):
    """One line per probe run: ``external: 4 targets, 464 results in 21.3 s (PASS 400, FAIL 2)``."""
    lines = []
    for run in runs:
        summary = run.get("summary") or {}
        counts = ", ".join("%s %s" % (v, summary[v]) for v in VERDICTS if summary.get(v))
        lines.append(
            "%s: %s targets, %s results in %s s (%s)"
            % (run.get("vantage"), summary.get("targets", "?"), summary.get("results", "?"), summary.get("seconds", "?"), counts or "no results")
        )
    return lines


def comparison_table(before, after, mta_by_host=None):
    """Plain-text table: host, MTA, before counts, worst finding before, after counts, worst after."""
    mta_by_host = mta_by_host or {}
    hosts = sorted(set(before or {}) | set(after or {}))
    header = ("host", "MTA", "before P/F/W/I", "worst before", "after P/F/W/I", "worst after")
    rows = []
    for host in hosts:
        b = (before or {}).get(host)
        a = (after or {}).get(host)
        rows.append(
            (
                host,
                str(mta_by_host.get(host, "?")),
                _counts_cell(b),
                (b or {}).get("worst") or "-",
                _counts_cell(a),
                (a or {}).get("worst") or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    line = "+".join("-" * (w + 2) for w in widths)

    def fmt(row):
        return "|".join(" %s " % cell.ljust(widths[i]) for i, cell in enumerate(row))

    legend = "P/F/W/I = PASS/FAIL/WARN/INCONCLUSIVE verdicts over all vantages"
    return "\n".join([fmt(header), line] + [fmt(row) for row in rows] + [legend])
