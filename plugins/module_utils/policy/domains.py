# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain names: the host name, local and relay domains, relay by client name.

normalize_domain is the one place a domain is checked (IDNA, labels, no wildcards, not an IP);
hosted.py, senders.py and smarthost.py use it for theirs.
"""

from __future__ import annotations

import re

from ansible_collections.mailsec.relay.plugins.module_utils import grammar

from .errors import _kind_of
from .reading import Reader

VARIABLES = {
    "mailsec_relay_hostname": "str",
    "mailsec_relay_local_domains": "list",
    "mailsec_relay_relay_domains": "list",
    "mailsec_relay_client_names": "list",
    "mailsec_relay_client_names_accept_risk": "bool",
}

# Anchored with \A...\Z (module_utils/grammar.py): '$' would also match before a trailing newline.
_LABEL = grammar.LABEL


def default_hostname(inventory_hostname):
    """``inventory_hostname`` if it is an FQDN, else ``<name>.localdomain``."""
    name = str(inventory_hostname or "localhost").strip().lower().rstrip(".")
    labels = name.split(".")
    if len(labels) > 1 and all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit():
        return name
    # IP addresses or odd inventory names become one safe label.
    label = re.sub(r"[^a-z0-9-]+", "-", name).strip("-")[:63].strip("-") or "localhost"
    return label + ".localdomain"


class DomainsMixin(Reader):
    def hostname(self):
        hostname_value = self.get_str("mailsec_relay_hostname")
        if hostname_value is None:
            return default_hostname(self.inventory_hostname)
        return self.normalize_domain("mailsec_relay_hostname", hostname_value, fqdn=True)

    def local_and_relay_domains(self):
        """({domain: variable[i]} local, the same for relay); a domain in both lists is an error."""
        local_domains = self.domain_list("mailsec_relay_local_domains")
        relay_domains = self.domain_list("mailsec_relay_relay_domains")
        for domain, name in relay_domains.items():
            if domain in local_domains:
                self.error(
                    name,
                    "%s is also in mailsec_relay_local_domains (%s)" % (domain, local_domains[domain]),
                    "a domain is either delivered here (local) or forwarded (relay): remove it from one of the two lists",
                )
        return local_domains, relay_domains

    def client_names(self):
        """Relay by forward-confirmed client name: refused unless the risk is accepted by name."""
        client_names = self.domain_list("mailsec_relay_client_names", subtree_ok=True)
        accept_risk = self.get_bool("mailsec_relay_client_names_accept_risk", False)
        if client_names and not accept_risk:
            self.error(
                "mailsec_relay_client_names",
                "relaying by client name trusts DNS, which the client's network owner controls",
                "prefer mailsec_relay_networks; if you must, also set mailsec_relay_client_names_accept_risk: true",
            )
        elif client_names:
            self.warnings.append(
                "mailsec_relay_client_names: relaying by forward-confirmed client name (%s) is weak: "
                "whoever controls those DNS zones can relay through this host." % ", ".join(sorted(client_names))
            )
        return client_names

    def normalize_domain(self, variable, value, subtree_ok=False, fqdn=False):
        if not isinstance(value, str):
            self.error(variable, "expected a domain name as a string, got %s" % _kind_of(value), "quote the domain, e.g. 'example.test'")
            return None
        text = value.strip().lower()
        if text.endswith("."):
            text = text[:-1]  # the absolute form means the same domain
        if "*" in text:
            fix = (
                "use '.%s' to match every name below it" % text.lstrip("*.")
                if subtree_ok
                else "list the domain itself (each subdomain that must be handled is listed on its own)"
            )
            self.error(variable, "'%s': wildcards are not allowed" % value, fix)
            return None
        subtree = False
        if text.startswith("."):
            if not subtree_ok:
                self.error(variable, "'%s' starts with a dot" % value, "remove the leading dot")
                return None
            subtree, text = True, text[1:]
        unclear = grammar.unclear_unicode_name(text) if not text.isascii() else None
        if unclear:
            self.error(
                variable,
                "'%s': %s" % (value, unclear),
                "write the punycode (xn--) form its registry shows (a label mixed by mistake: type it again in one alphabet)",
            )
            return None
        try:
            ascii_text = text.encode("idna").decode("ascii").lower() if not text.isascii() else text
        except (UnicodeError, ValueError):
            self.error(variable, "'%s' is not a valid internationalized domain name" % value, "check the spelling, or write the punycode (xn--) form")
            return None
        labels = ascii_text.split(".")
        if not ascii_text or len(ascii_text) > 253 or not all(_LABEL.match(label) for label in labels):
            self.error(
                variable,
                "'%s' is not a valid domain name" % value,
                "use letters, digits and hyphens in dot-separated labels of at most 63 characters (e.g. mail.example.test)",
            )
            return None
        if labels[-1].isdigit():
            self.error(
                variable,
                "'%s' looks like an IP address, not a domain name" % value,
                "write a domain name here; networks belong in mailsec_relay_networks",
            )
            return None
        if fqdn and len(labels) < 2:
            self.error(variable, "'%s' is not a fully qualified name" % value, "use a name with a domain, e.g. mx1.example.test")
            return None
        return ("." if subtree else "") + ascii_text

    def domain_list(self, variable, subtree_ok=False):
        entries = self.get_list(variable, fix="write it as a YAML list, e.g. ['example.test']")
        result = {}
        for index, entry in enumerate(entries or []):
            name = "%s[%d]" % (variable, index)
            domain = self.normalize_domain(name, entry, subtree_ok=subtree_ok)
            if domain is not None:
                result.setdefault(domain, name)
        return result  # domain -> the variable[i] it came from first
