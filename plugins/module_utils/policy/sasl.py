# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Authenticated relay: whether AUTH relays at all, the SASL backend and its users (names only
leave this module; passwords are checked, never echoed)."""

from __future__ import annotations

from ansible_collections.mailsec.relay.plugins.module_utils import grammar

from .errors import _did_you_mean, _kind_of
from .reading import Reader

VARIABLES = {
    "mailsec_relay_auth_relay": "bool",
    "mailsec_relay_sasl_backend": "str",
    "mailsec_relay_sasl_users": "list",
}

SASL_BACKENDS = ("dovecot",)
SASL_USER_KEYS = ("name", "password")


class SaslMixin(Reader):
    def auth_relay(self, profile):
        """Relay after AUTH: on by default only for profile mx_submission."""
        return self.get_bool("mailsec_relay_auth_relay", profile == "mx_submission")

    def sasl(self, auth_relay):
        backend = self.get_str("mailsec_relay_sasl_backend", "dovecot")
        if backend not in SASL_BACKENDS:
            self.error(
                "mailsec_relay_sasl_backend",
                "SASL backend '%s' is not supported" % backend,
                "use dovecot (the only backend the roles set up for both Postfix and Exim)",
            )
        users = self.get_list("mailsec_relay_sasl_users", fix="write it as a YAML list of {name, password} mappings")
        names = []
        for index, entry in enumerate(users or []):
            variable = "mailsec_relay_sasl_users[%d]" % index
            if not isinstance(entry, dict):
                # Never echo the value: it may be a password.
                self.error(variable, "expected a mapping {name, password}, got %s" % _kind_of(entry), "write each user as {name: ..., password: ...}")
                continue
            for key in entry:
                if key not in SASL_USER_KEYS:
                    self.error("%s.%s" % (variable, key), "unknown key%s" % _did_you_mean(str(key), SASL_USER_KEYS), "use only name and password")
            name = entry.get("name")
            if not isinstance(name, str) or not name.strip():
                self.error(variable + ".name", "the user has no name", "give every SASL user a name, e.g. alice@example.test")
                name = None
            elif not grammar.is_login(name.strip()):
                self.error(
                    variable + ".name",
                    "user names are a plain login or address: letters, digits, '.', '_', '+', '=', '-', optionally @domain",
                    "use a plain login such as alice or alice@example.test",
                )
                name = None
            else:
                name = name.strip()
                if name in names:
                    self.error(variable + ".name", "user '%s' is listed twice" % name, "list every user once")
            password = entry.get("password")
            if not isinstance(password, str) or not password:
                self.error(variable + ".password", "the user has no password (a non-empty string)", "set a password, ideally from Ansible Vault")
            elif ":" in password or "\n" in password or "\r" in password:
                self.error(
                    variable + ".password",
                    "the password contains ':' or a line break, which Dovecot's passwd-file cannot store",
                    "choose a password without ':' and line breaks",
                )
            if name is not None and name not in names:
                names.append(name)
        if names and not auth_relay:
            self.warnings.append("mailsec_relay_sasl_users is set but mailsec_relay_auth_relay is false: the users can log in but not relay.")
        return {"backend": backend, "users": names}
