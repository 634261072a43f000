# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One entry of mailsec_relay_listeners: its fields, and the rules of its role (mx or submission).

listeners.py assembles the entries; this module checks one at a time.
"""

from __future__ import annotations

from ansible_collections.mailsec.relay.plugins.module_utils import grammar

from .addresses import _parse_address, is_loopback_address
from .errors import _did_you_mean
from .networks import NetworksMixin

LISTENER_ROLES = ("mx", "submission")
TLS_MODES = ("none", "starttls", "required", "implicit")
LISTENER_KEYS = ("name", "address", "port", "role", "tls", "auth", "relay_networks", "connect_allow", "connect_deny", "sender_login_match")


class ListenerEntryMixin(NetworksMixin):
    def listener_identity(self, variable, entry, profile):
        """Known keys, name, role, port and address: (ok, name, role, port, address)."""
        ok = True
        for key in entry:
            if key not in LISTENER_KEYS:
                self.error(
                    "%s.%s" % (variable, key),
                    "unknown listener key%s" % _did_you_mean(str(key), LISTENER_KEYS),
                    "use only: %s" % ", ".join(LISTENER_KEYS),
                )
                ok = False

        name = entry.get("name")
        if not grammar.is_name(name):
            self.error(
                variable + ".name",
                "missing or invalid listener name (%r)" % (name,),
                "name the listener with lower-case letters, digits, '-' or '_' (e.g. smtp, submission)",
            )
            ok = False

        role = entry.get("role")
        if role not in LISTENER_ROLES:
            self.error(
                variable + ".role",
                "missing or unknown role %r%s" % (role, _did_you_mean(str(role), LISTENER_ROLES)),
                "use mx (port-25 semantics) or submission (AUTH after TLS)",
            )
            ok = False

        port = grammar.parse_port(entry.get("port"))  # ASCII digits only
        if port is None:
            self.error(variable + ".port", "invalid port %r" % (entry.get("port"),), "use a number from 1 to 65535 (25, 587, 465)")
            ok = False

        address = entry.get("address", "*")
        if address != "*":
            address = _parse_address(address)
            if address is None:
                self.error(
                    variable + ".address",
                    "%r is not '*' or one IP address" % (entry.get("address"),),
                    "use '*' for all addresses, or one address such as 198.51.100.10 (no prefix length)",
                )
                ok = False
        if ok and profile == "null_client" and not is_loopback_address(address):
            self.error(
                variable + ".address",
                "a null_client listens on loopback only, not on %s" % address,
                "bind the listener to 127.0.0.1 or ::1, or choose another profile",
            )
        return ok, name, role, port, address

    def listener_switches(self, variable, entry, role, port, has_tls, ok):
        """tls (the profiles' default when unset), auth and sender_login_match as written (None: unset)."""
        tls = entry.get("tls")
        if tls is None and role in LISTENER_ROLES and ok:  # defaults as in the profiles
            tls = ("implicit" if port == 465 else "required") if role == "submission" else ("starttls" if has_tls else "none")
        if tls is None:  # no default without a valid role and port, already reported
            ok = False
        elif tls not in TLS_MODES:
            self.error(variable + ".tls", "unknown TLS mode %r%s" % (tls, _did_you_mean(str(tls), TLS_MODES)), "use one of: %s" % ", ".join(TLS_MODES))
            ok = False

        auth, auth_ok = self._optional_bool(entry, variable, "auth")
        sender_match, sender_ok = self._optional_bool(entry, variable, "sender_login_match")
        return ok and auth_ok and sender_ok, tls, auth, sender_match

    def _optional_bool(self, entry, variable, key):
        """(value or None when not given, whether it was valid); an invalid value is reported."""
        given = entry.get(key)
        if given is None:
            return None, True
        value = self.get_bool(variable + "." + key, None, value=given, given=True)
        return value, value is not None

    def listener_networks(self, variable, entry, profile, ok):
        """relay_networks as parsed (None: unset) and connect_allow/deny merged (None: unset)."""
        relay_value = entry.get("relay_networks")
        relay_parsed = None
        if relay_value is not None:
            relay_parsed = self.parse_networks(variable + ".relay_networks", relay_value, purpose="relay", given=True)
            if relay_parsed is None:
                ok = False
        connect_allow = connect_deny = None
        if entry.get("connect_allow") is not None:
            connect_allow = self.merged(variable + ".connect_allow", entry["connect_allow"], given=True)
        if entry.get("connect_deny") is not None:
            connect_deny = self.merged(variable + ".connect_deny", entry["connect_deny"], given=True)

        if relay_value and profile == "null_client":
            self.error(variable + ".relay_networks", "a null_client relays for no one", "remove relay_networks, or choose profile mx or relay_hub")
        return ok, relay_value, relay_parsed, connect_allow, connect_deny

    def submission_rules(self, variable, port, tls, relay_value, auth, auth_relay, sender_match):
        """A submission listener: AUTH after TLS, never relay by network; returns (auth, sender_match)."""
        if port == 25:
            self.error(
                variable + ".role",
                "a submission listener on port 25 would offer AUTH on 25",
                "use role mx on port 25, and ports 587/465 for submission",
            )
        if tls == "none":
            self.error(variable + ".tls", "a submission listener must protect AUTH with TLS", "use tls: required (587) or tls: implicit (465)")
        if relay_value:
            self.error(
                variable + ".relay_networks",
                "submission listeners relay only after AUTH, never for networks",
                "remove relay_networks here, or put them on an mx listener",
            )
        if auth is None:
            auth = auth_relay
        elif auth and not auth_relay:
            self.error(
                variable + ".auth",
                "AUTH is enabled on this listener but mailsec_relay_auth_relay is false",
                "set mailsec_relay_auth_relay: true, or remove auth here",
            )
        if sender_match and not auth:
            self.error(
                variable + ".sender_login_match",
                "sender identity is checked against the AUTH login, and this listener has no AUTH",
                "enable auth on this listener (and mailsec_relay_auth_relay), or remove sender_login_match",
            )
        if sender_match is None:
            sender_match = bool(auth) and self.sender_login_match_default
        return auth, sender_match

    def mx_rules(self, variable, auth, sender_match):
        """An mx listener never offers AUTH: returns (False, False) after reporting what asked for it."""
        if sender_match:
            self.error(
                variable + ".sender_login_match",
                "mx listeners never offer AUTH, so there is no login to match the sender against",
                "remove sender_login_match here; set it on a submission listener",
            )
        sender_match = False
        if auth:
            self.error(
                variable + ".auth",
                "AUTH on an mx listener lets password guessers relay through port 25",
                "remove auth here; offer AUTH on a submission listener (587/465)",
            )
        auth = False
        return auth, sender_match
