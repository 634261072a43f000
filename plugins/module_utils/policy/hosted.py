# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hosted domain kinds besides local and relay (issue 15): virtual mailbox, virtual alias and
blocked domains, their lookup tables, and recipient validation for relay domains."""

from __future__ import annotations

import re

from .domains import DomainsMixin

VARIABLES = {
    "mailsec_relay_virtual_mailbox_domains": "list",
    "mailsec_relay_virtual_mailbox_maps": "list",
    "mailsec_relay_virtual_alias_domains": "list",
    "mailsec_relay_virtual_alias_maps": "list",
    "mailsec_relay_relay_recipients": "list",
    "mailsec_relay_relay_recipient_maps": "list",
    "mailsec_relay_blocked_domains": "list",
}

# Lookup tables a map variable may name (Postfix type:name; the Exim renderer reads the file types).
MAP_TYPES = (
    "hash",
    "btree",
    "lmdb",
    "cdb",
    "dbm",
    "texthash",
    "regexp",
    "pcre",
    "cidr",
    "proxy",
    "mysql",
    "pgsql",
    "sqlite",
    "ldap",
    "memcache",
    "socketmap",
    "tcp",
)
FILE_MAP_TYPES = ("hash", "btree", "lmdb", "cdb", "dbm", "texthash", "regexp", "pcre", "cidr")
_MAP_REFERENCE = re.compile(r"(?P<type>[a-z0-9]+):(?P<name>[^\s,{}]+)")
_RECIPIENT = re.compile(r"(?P<local>[^\s@<>(),;:\"]*)@(?P<domain>[^\s@<>]+)")


class HostedMixin(DomainsMixin):
    def map_references(self, variable):
        result = []
        for index, entry in enumerate(self.get_list(variable, fix="write it as a YAML list, e.g. ['hash:/etc/postfix/vmailbox']") or []):
            name = "%s[%d]" % (variable, index)
            match = _MAP_REFERENCE.fullmatch(entry.strip()) if isinstance(entry, str) else None
            if not match or match.group("type") not in MAP_TYPES:
                self.error(
                    name,
                    "%r is not a lookup table reference (type:name)" % (entry,),
                    "write type:/absolute/path with one of %s, e.g. hash:/etc/postfix/vmailbox" % ", ".join(FILE_MAP_TYPES),
                )
                continue
            if match.group("type") in FILE_MAP_TYPES and not match.group("name").startswith("/"):
                self.error(name, "'%s': the table file is not an absolute path" % entry, "give the full path, e.g. hash:/etc/postfix/vmailbox")
                continue
            if entry.strip() not in result:
                result.append(entry.strip())
        return result

    def hosted_domains(self, local_domains, relay_domains, profile):
        """The hosted domain kinds besides local and relay: virtual mailbox, virtual alias, blocked;
        recipient validation for relay domains. Every domain has exactly one kind."""
        found = self.domain_kinds(local_domains, relay_domains, profile)
        mailbox_maps = self.map_references("mailsec_relay_virtual_mailbox_maps")
        alias_maps = self.map_references("mailsec_relay_virtual_alias_maps")
        recipient_maps = self.map_references("mailsec_relay_relay_recipient_maps")
        if mailbox_maps and not found["mailsec_relay_virtual_mailbox_domains"]:
            self.error(
                "mailsec_relay_virtual_mailbox_maps",
                "mailbox maps without virtual mailbox domains are never consulted",
                "list the domains in mailsec_relay_virtual_mailbox_domains, or remove the maps",
            )
        recipients = self.relay_recipients(relay_domains)
        validation = self.recipient_validation(relay_domains, recipients, recipient_maps)
        return {
            "virtual_mailbox_domains": sorted(found["mailsec_relay_virtual_mailbox_domains"]),
            "virtual_mailbox_maps": mailbox_maps,
            "virtual_alias_domains": sorted(found["mailsec_relay_virtual_alias_domains"]),
            "virtual_alias_maps": alias_maps,
            "relay_recipient_validation": validation,
            "relay_recipients": sorted(recipients),
            "relay_recipient_maps": recipient_maps,
            "blocked_domains": sorted(found["mailsec_relay_blocked_domains"]),
        }

    def domain_kinds(self, local_domains, relay_domains, profile):
        """{variable: {domain: variable[i]}} of the extra kinds; every domain has exactly one kind."""
        kinds = [("mailsec_relay_local_domains", local_domains), ("mailsec_relay_relay_domains", relay_domains)]
        found = {}
        for variable in ("mailsec_relay_virtual_mailbox_domains", "mailsec_relay_virtual_alias_domains", "mailsec_relay_blocked_domains"):
            found[variable] = self.domain_list(variable)
            kinds.append((variable, found[variable]))
        owner = {}
        for variable, domains in kinds:
            for domain, name in domains.items():
                if domain in owner:
                    self.error(
                        name,
                        "%s is also in %s" % (domain, owner[domain]),
                        "a domain has one kind (local, virtual mailbox, virtual alias, relay or blocked): remove it from one of the lists",
                    )
                else:
                    owner[domain] = name
        if profile == "null_client":
            for variable in ("mailsec_relay_virtual_mailbox_domains", "mailsec_relay_virtual_alias_domains"):
                if found[variable]:
                    self.error(variable, "a null_client accepts no mail from the network", "remove %s, or choose profile mx" % variable)
        return found

    def relay_recipients(self, relay_domains):
        """mailsec_relay_relay_recipients: local@domain (or @domain) of relay domains, first-seen order."""
        recipients = []
        for index, entry in enumerate(self.get_list("mailsec_relay_relay_recipients", fix="write it as a YAML list, e.g. ['alice@partner.example']") or []):
            name = "mailsec_relay_relay_recipients[%d]" % index
            match = _RECIPIENT.fullmatch(entry.strip().lower()) if isinstance(entry, str) else None
            if not match:
                self.error(name, "%r is not an address (local@domain, or @domain for every name)" % (entry,), "write e.g. alice@partner.example")
                continue
            domain = self.normalize_domain(name, match.group("domain"))
            if domain is None:
                continue
            if domain not in relay_domains:
                self.error(
                    name,
                    "%s is not in mailsec_relay_relay_domains: recipient validation applies to relay domains only" % domain,
                    "add %s to mailsec_relay_relay_domains, or remove this entry" % domain,
                )
                continue
            address = "%s@%s" % (match.group("local"), domain)
            if address not in recipients:
                recipients.append(address)
        return recipients

    def recipient_validation(self, relay_domains, recipients, recipient_maps):
        """Whether recipients of relay domains are validated; adds postmaster@ each of them to ``recipients``."""
        validation = bool(recipients or recipient_maps)
        if validation and not relay_domains:
            self.error(
                "mailsec_relay_relay_recipients",
                "recipient validation is set but there is no relay domain",
                "list the relay domains in mailsec_relay_relay_domains, or remove the recipients and maps",
            )
        if recipients and not recipient_maps:
            listed = set(address.split("@", 1)[1] for address in recipients)
            for domain in sorted(set(relay_domains) - listed):
                self.error(
                    relay_domains[domain],
                    "recipient validation is on and no recipient of %s is listed: all its mail would be refused" % domain,
                    "list its recipients in mailsec_relay_relay_recipients (@%s accepts every name), or name a map in "
                    "mailsec_relay_relay_recipient_maps" % domain,
                )
        if validation:
            # RFC 5321 4.5.1: postmaster must be accepted for every domain the host accepts mail for.
            for domain in sorted(relay_domains):
                if recipients and "postmaster@%s" % domain not in recipients and "@%s" % domain not in recipients:
                    recipients.append("postmaster@%s" % domain)
        return validation
