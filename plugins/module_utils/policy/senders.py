# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sender identity after AUTH (sender_login_match): which login may use which envelope sender."""

from __future__ import annotations

import re

from ansible_collections.mailsec.relay.plugins.module_utils import grammar

from .domains import DomainsMixin
from .errors import _did_you_mean, _kind_of

VARIABLES = {
    "mailsec_relay_sender_login_match": "bool",
    "mailsec_relay_sender_aliases": "list",
}

# Local parts a sender map can hold safely in Postfix tables and Exim expansions (no '$', '{', ';').
_LOCAL_PART = re.compile(r"\A[a-z0-9._+=-]{1,64}\Z")
SENDER_ALIAS_KEYS = ("login", "addresses")


def _own(owners, address, login):
    logins = owners.setdefault(address, [])
    if login not in logins:
        logins.append(login)


def _own_login(owners, home, login):
    login = login.lower()  # Dovecot's passdb (username_format=%Lu) hands the MTA lower-case logins
    if "@" in login:
        address = login.lower()
        if address.count("@") == 1 and _LOCAL_PART.fullmatch(address.partition("@")[0]):
            _own(owners, address, login)
    elif _LOCAL_PART.fullmatch(login.lower()):
        for domain in home:
            _own(owners, "%s@%s" % (login.lower(), domain), login)


class SendersMixin(DomainsMixin):
    def sender_address(self, variable, value):
        """A sender address as local@domain (domain normalized, all lower-case), or None."""
        if not isinstance(value, str) or value.count("@") != 1:
            self.error(variable, "%r is not an address local@domain" % (value,), "write one address such as alice@example.test")
            return None
        local, unused, domain = value.strip().lower().partition("@")
        if not _LOCAL_PART.fullmatch(local):
            self.error(
                variable,
                "the local part of %r has characters the sender maps cannot hold" % value,
                "use letters, digits and . _ + = - in the local part",
            )
            return None
        domain = self.normalize_domain(variable, domain)
        return None if domain is None else "%s@%s" % (local, domain)

    def sender_logins(self, sasl_names, local_domains, hostname, listeners):
        """Who may use which envelope sender after AUTH: {address: [logins]} (sender_login_match).

        A login that is an address owns that address; a bare login owns login@ each local domain
        and the host name. mailsec_relay_sender_aliases adds addresses per login.
        """
        owners = {}
        home = list(local_domains) + ([hostname] if hostname and hostname not in local_domains else [])
        for login in sasl_names:
            _own_login(owners, home, login)
        self.sender_aliases(owners, home)
        enforced = [item["name"] for item in listeners if item.get("sender_login_match")]
        if enforced and not owners and not self.errors:
            self.error(
                "mailsec_relay_sender_login_match",
                "listener %s checks the sender against the login, but no login owns any address: every authenticated sender would be refused"
                % ", ".join(enforced),
                "list the users in mailsec_relay_sasl_users or their addresses in mailsec_relay_sender_aliases, or set sender_login_match: false",
            )
        return dict((address, sorted(owners[address])) for address in sorted(owners))

    def sender_aliases(self, owners, home):
        """mailsec_relay_sender_aliases: extra addresses per login, added to ``owners``."""
        entries = self.get_list("mailsec_relay_sender_aliases", fix="write it as a YAML list of {login, addresses} mappings")
        for index, entry in enumerate(entries or []):
            variable = "mailsec_relay_sender_aliases[%d]" % index
            if not isinstance(entry, dict):
                self.error(variable, "expected a mapping {login, addresses}, got %s" % _kind_of(entry), "write each entry as {login: alice, addresses: [...]}")
                continue
            for key in entry:
                if key not in SENDER_ALIAS_KEYS:
                    self.error("%s.%s" % (variable, key), "unknown key%s" % _did_you_mean(str(key), SENDER_ALIAS_KEYS), "use only login and addresses")
            login = entry.get("login")
            if not isinstance(login, str) or not grammar.is_login(login.strip()):
                self.error(variable + ".login", "missing or invalid login %r" % (login,), "give the SASL login name, e.g. alice or alice@example.test")
                continue
            login = login.strip().lower()
            _own_login(owners, home, login)
            addresses = self.get_list(variable + ".addresses", value=entry.get("addresses"), given=True, fix="write it as a YAML list of addresses")
            if not addresses:
                if addresses == []:
                    self.error(variable + ".addresses", "no addresses listed for %s" % login, "list the extra sender addresses of this login")
                continue
            for number, item in enumerate(addresses):
                address = self.sender_address("%s.addresses[%d]" % (variable, number), item)
                if address is not None:
                    _own(owners, address, login)
