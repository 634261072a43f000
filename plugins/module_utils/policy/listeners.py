# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mailsec_relay_listeners: the listeners as a whole (names, port clashes, profile defaults) and
the effective listener each entry becomes. One entry's checks live in listener_entry.py."""

from __future__ import annotations

from .errors import _kind_of
from .listener_entry import LISTENER_KEYS, LISTENER_ROLES, TLS_MODES, ListenerEntryMixin
from .profiles import profile_listeners

VARIABLES = {
    "mailsec_relay_listeners": "list",
}

__all__ = ["LISTENER_KEYS", "LISTENER_ROLES", "TLS_MODES", "VARIABLES", "ListenersMixin"]


class ListenersMixin(ListenerEntryMixin):
    def listeners(self, profile, has_tls, auth_relay, broad_allowed):
        raw = self.raw.get("mailsec_relay_listeners")
        from_profile = raw is None
        if from_profile:
            raw = profile_listeners(profile, has_tls)
            if not has_tls and any(item["role"] == "submission" for item in raw):
                self.error(
                    "mailsec_relay_tls_cert",
                    "profile %s has submission listeners (587, 465), which need TLS material" % profile,
                    "set mailsec_relay_tls_cert and mailsec_relay_tls_key, or mailsec_relay_tls_selfsigned: true (labs only)",
                )
        entries = self.get_list("mailsec_relay_listeners", value=raw, given=True)
        if entries is None:
            self.listener_errors = True
            return [], []
        if not entries and profile != "null_client":
            self.error(
                "mailsec_relay_listeners",
                "no listeners: this host would receive no mail",
                "remove the variable to get the profile's listeners, or list at least one",
            )
        listeners, sources, seen_names = [], [], {}
        for index, entry in enumerate(entries):
            variable = "mailsec_relay_listeners[%d]" % index
            item = self.listener(variable, entry, profile, has_tls, auth_relay, broad_allowed, check_tls=not from_profile)
            if item is None:
                continue
            listener, relay_sources = item
            same_port = [other for other in listeners if other["port"] == listener["port"]]
            if listener["name"] in seen_names:
                self.error(
                    variable + ".name",
                    "name '%s' is already used by %s" % (listener["name"], seen_names[listener["name"]]),
                    "give every listener its own name",
                )
            seen_names.setdefault(listener["name"], variable)
            for other in same_port:
                # '*' binds every address of both families, so it collides with any specific one.
                if "*" in (other["address"], listener["address"]) or other["address"] == listener["address"]:
                    self.error(
                        variable + ".port",
                        "%s:%d clashes with listener %s (%s:%d): both would bind the same port"
                        % (listener["address"], listener["port"], other["name"], other["address"], other["port"]),
                        "use another port, or bind both listeners to distinct specific addresses instead of '*'",
                    )
            listeners.append(listener)
            sources.append(relay_sources)
        return listeners, sources

    def listener(self, variable, entry, profile, has_tls, auth_relay, broad_allowed, check_tls):
        if not isinstance(entry, dict):
            self.error(variable, "expected a mapping {name, address, port, role, tls}, got %s" % _kind_of(entry), "write each listener as a YAML mapping")
            return None
        ok, name, role, port, address = self.listener_identity(variable, entry, profile)
        ok, tls, auth, sender_match = self.listener_switches(variable, entry, role, port, has_tls, ok)
        ok, relay_value, relay_parsed, connect_allow, connect_deny = self.listener_networks(variable, entry, profile, ok)
        if not ok:
            self.listener_errors = True
            return None

        if role == "submission":
            auth, sender_match = self.submission_rules(variable, port, tls, relay_value, auth, auth_relay, sender_match)
        else:
            auth, sender_match = self.mx_rules(variable, auth, sender_match)
        if port == 25 and tls == "implicit":
            self.error(
                variable + ".tls",
                "implicit TLS on port 25 breaks every sending MTA (they speak plain SMTP, then STARTTLS)",
                "use tls: starttls on port 25, and implicit only on 465",
            )
        if check_tls and tls != "none" and not has_tls:
            self.error(
                variable + ".tls",
                "tls: %s needs a certificate and key, and none is configured" % tls,
                "set mailsec_relay_tls_cert and mailsec_relay_tls_key, or mailsec_relay_tls_selfsigned: true (labs only)",
            )

        sources = []
        if role == "submission":
            networks = []
        elif relay_parsed is not None:
            networks = [str(n) for n in self.check_relay_networks(variable + ".relay_networks", relay_parsed, broad_allowed)]
            sources = relay_parsed
        else:
            networks = None  # filled with the global list by the caller
        listener = {
            "name": name,
            "address": address,
            "port": port,
            "role": role,
            "tls": tls,
            "auth": bool(auth),
            "relay_networks": networks,
            "connect_allow": connect_allow,
            "connect_deny": connect_deny,
            "sender_login_match": bool(sender_match),
        }
        return listener, sources
