# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Outbound: the smarthost all mail leaves through, and TLS towards it."""

from __future__ import annotations

import re

from .addresses import netaddr
from .domains import DomainsMixin
from .errors import _did_you_mean

VARIABLES = {
    "mailsec_relay_smarthost": "str",
    "mailsec_relay_smarthost_tls": "str",
}

SMARTHOST_TLS_MODES = ("none", "encrypt")


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
                "use none or encrypt (mail to the smarthost stays queued unless TLS is negotiated)",
            )
            return "none"
        if mode != "none" and smarthost is None:
            self.error(
                "mailsec_relay_smarthost_tls",
                "TLS to the smarthost is required, but no smarthost is set",
                "set mailsec_relay_smarthost, or remove mailsec_relay_smarthost_tls",
            )
        return mode
