# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Outbound: the smarthost all mail leaves through, TLS towards it, and the credentials it asks for."""

from __future__ import annotations

import re

from ansible_collections.mailsec.relay.plugins.module_utils import grammar

from .addresses import netaddr
from .domains import DomainsMixin
from .errors import _did_you_mean

VARIABLES = {
    "mailsec_relay_smarthost": "str",
    "mailsec_relay_smarthost_tls": "str",
    "mailsec_relay_smarthost_tls_ca_file": "str",
    "mailsec_relay_smarthost_username": "str",
    "mailsec_relay_smarthost_password": "str",
}

SMARTHOST_TLS_MODES = ("none", "encrypt", "verify")
# verify without a CA file of its own trusts Debian's system bundle (package ca-certificates).
SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
# The password lands in a Postfix map and Exim's passwd.client: printable ASCII without blanks, so no
# quoting rule of either file format can cut or extend it.
_SMARTHOST_PASSWORD = re.compile(r"[\x21-\x7e]{1,256}")


class SmarthostMixin(DomainsMixin):
    def smarthost(self):
        value = self.get_str("mailsec_relay_smarthost")
        if value is None:
            return None
        match = re.fullmatch(r"(\[(?P<bracketed>[^\]]+)\]|(?P<plain>[^\[\]:]+))(:(?P<port>[0-9]{1,5}))?", value)
        host = port = None
        if match:
            host = match.group("bracketed") or match.group("plain")
            port = int(match.group("port")) if match.group("port") else None
        elif value.count(":") > 1 and not value.startswith("["):
            host = False  # a bare IPv6 address: its colons cannot be told from a port
        fix = "write host, [host] or [host]:port, e.g. '[198.51.100.100]:25' (IPv6 inside brackets)"
        if not host or (port is not None and not 1 <= port <= 65535):
            self.error("mailsec_relay_smarthost", "'%s' is not a valid smarthost" % value, fix)
            return None
        ip = None
        address_text = host[5:] if host.lower().startswith("ipv6:") else host
        try:
            ip = netaddr.IPAddress(address_text, flags=netaddr.INET_PTON)
        except (netaddr.AddrFormatError, ValueError):
            pass
        if ip is not None:
            if ip.version == 6 and not match.group("bracketed"):
                self.error("mailsec_relay_smarthost", "'%s': an IPv6 address must be in brackets" % value, fix)
                return None
            normalized = "[%s]" % ip  # an address never has MX records: brackets say so explicitly
        else:
            name = self.normalize_domain("mailsec_relay_smarthost", host, fqdn=False)
            if name is None:
                return None
            normalized = "[%s]" % name if match.group("bracketed") else name
        return normalized + (":%d" % port if port is not None else "")

    def smarthost_tls(self, smarthost):
        """TLS to the smarthost: none (opportunistic as the MTA's default) or encrypt (required)."""
        mode = self.get_str("mailsec_relay_smarthost_tls", "none")
        if mode not in SMARTHOST_TLS_MODES:
            self.error(
                "mailsec_relay_smarthost_tls",
                "unknown mode %r%s" % (mode, _did_you_mean(str(mode), SMARTHOST_TLS_MODES)),
                "use none, encrypt (TLS or the mail stays queued) or verify (TLS with a verified certificate)",
            )
            return "none"
        if mode != "none" and smarthost is None:
            self.error(
                "mailsec_relay_smarthost_tls",
                "TLS to the smarthost is required, but no smarthost is set",
                "set mailsec_relay_smarthost, or remove mailsec_relay_smarthost_tls",
            )
        return mode

    def smarthost_auth(self, smarthost, smarthost_tls):
        """Client SASL credentials for the smarthost: {'username'} or None. The password never enters the
        effective policy (a published fact) nor a message: the MTA roles read it from its variable, under no_log."""
        username = self.get_str("mailsec_relay_smarthost_username")
        password = self.raw.get("mailsec_relay_smarthost_password")
        password = None if password in (None, "") else password
        if username is None and password is None:
            return None
        if username is None:
            fix = "set mailsec_relay_smarthost_username, or remove mailsec_relay_smarthost_password"
            self.error("mailsec_relay_smarthost_password", "a smarthost password is set without a user name", fix)
            return None
        problems = []
        if not grammar.is_login(username):  # the user name is not secret: it may be quoted
            problems.append(
                ("mailsec_relay_smarthost_username", "%r is not a valid SASL user name" % username, "use a local part or local@domain, without blanks or ':'")
            )
        if password is None:
            problems.append(
                ("mailsec_relay_smarthost_password", "a smarthost user name is set without a password", "set mailsec_relay_smarthost_password (Ansible Vault)")
            )
        elif not isinstance(password, str) or not _SMARTHOST_PASSWORD.fullmatch(password):
            problems.append(
                (
                    "mailsec_relay_smarthost_password",
                    "the password is not 1 to 256 printable ASCII characters without blanks (value not shown)",
                    "choose a password of printable ASCII characters without spaces and line breaks",
                )
            )
        if smarthost is None:
            problems.append(
                (
                    "mailsec_relay_smarthost_username",
                    "smarthost credentials are set, but no smarthost is",
                    "set mailsec_relay_smarthost, or remove the credentials",
                )
            )
        elif smarthost_tls == "none":
            problems.append(
                (
                    "mailsec_relay_smarthost_tls",
                    "smarthost credentials would be sent without required TLS",
                    "set mailsec_relay_smarthost_tls: encrypt or verify (the mail then stays queued unless TLS is negotiated)",
                )
            )
        for variable, message, fix in problems:
            self.error(variable, message, fix)
        return None if problems else {"username": username}

    def smarthost_tls_ca_file(self, smarthost_tls):
        """The CA bundle that verifies the smarthost certificate (verify mode only)."""
        value = self.get_str("mailsec_relay_smarthost_tls_ca_file")
        if smarthost_tls != "verify":
            if value is not None:
                fix = "set mailsec_relay_smarthost_tls: verify, or remove mailsec_relay_smarthost_tls_ca_file"
                self.error("mailsec_relay_smarthost_tls_ca_file", "a CA file is set, but the smarthost certificate is not verified", fix)
            return None
        if value is None:
            return SYSTEM_CA_FILE
        if not grammar.is_abs_path(value):
            self.error("mailsec_relay_smarthost_tls_ca_file", "%r is not an absolute path" % value, "write the absolute path of a PEM CA bundle")
            return None
        return value
