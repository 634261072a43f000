# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What stands in front of or beside the MTA on brownfield hosts (issue 15): postscreen, an
after-queue content filter with its re-injection listener, and milters."""

from __future__ import annotations

import re

from .addresses import _parse_address, is_loopback_address
from .errors import _did_you_mean, _kind_of
from .reading import Reader

VARIABLES = {
    "mailsec_relay_postscreen": "bool",
    "mailsec_relay_postscreen_pregreet": "str",
    "mailsec_relay_content_filter": "dict",
    "mailsec_relay_milters": "list",
}

CONTENT_FILTER_KEYS = ("next_hop", "reinject_address", "reinject_port")
# Matched with fullmatch (a "$" anchor would let a trailing newline through).
_MILTER = re.compile(r"(inet:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}|unix:/[^\s,{}]+)")

PREGREET_ACTIONS = ("enforce", "drop", "ignore")


class FiltersMixin(Reader):
    def postscreen(self, listeners):
        """True/False: render (or remove) a postscreen front; None: keep whatever the host has."""
        value = self.get_bool("mailsec_relay_postscreen", None)
        pregreet = self.get_str("mailsec_relay_postscreen_pregreet", "enforce")
        if pregreet not in PREGREET_ACTIONS:
            self.error(
                "mailsec_relay_postscreen_pregreet",
                "unknown action '%s'%s" % (pregreet, _did_you_mean(str(pregreet), PREGREET_ACTIONS)),
                "use enforce (refuse clients that talk before the greeting, the default), drop or ignore",
            )
        fronted = [item for item in listeners if item["role"] == "mx" and item["port"] == 25]
        if value and not fronted:
            self.error(
                "mailsec_relay_postscreen",
                "postscreen fronts an mx listener on port 25, and this policy has none",
                "add an mx listener on port 25, or set mailsec_relay_postscreen: false",
            )
        elif value and len(fronted) > 1:
            self.error(
                "mailsec_relay_postscreen",
                "postscreen can front one port-25 listener, and this policy has %d (%s)" % (len(fronted), ", ".join(i["name"] for i in fronted)),
                "keep one mx listener on port 25, or set mailsec_relay_postscreen: false",
            )
        return value

    def content_filter(self):
        """An after-queue content filter (FILTER_README): mail goes to next_hop, comes back on a
        re-injection listener of its own, bound to loopback and relaying only for loopback. None: keep as found."""
        variable = "mailsec_relay_content_filter"
        raw = self.raw.get(variable)
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.error(
                variable,
                "expected a mapping {next_hop, reinject_address, reinject_port}, got %s" % _kind_of(raw),
                "write e.g. {next_hop: '[127.0.0.1]:10024', reinject_port: 10025}",
            )
            return None
        for key in raw:
            if key not in CONTENT_FILTER_KEYS:
                self.error(
                    "%s.%s" % (variable, key), "unknown key%s" % _did_you_mean(str(key), CONTENT_FILTER_KEYS), "use only: %s" % ", ".join(CONTENT_FILTER_KEYS)
                )
        hop = raw.get("next_hop")
        match = re.fullmatch(r"^\[(?P<host>[^\]]+)\]:(?P<port>[0-9]{1,5})$", hop.strip()) if isinstance(hop, str) else None
        if not match or _parse_address(match.group("host")) is None or not 1 <= int(match.group("port")) <= 65535:
            self.error(variable + ".next_hop", "%r is not [address]:port" % (hop,), "write where the filter listens, e.g. '[127.0.0.1]:10024'")
        address = _parse_address(raw.get("reinject_address", "127.0.0.1"))
        if address is None or not is_loopback_address(address):
            self.error(
                variable + ".reinject_address",
                "the re-injection listener must be bound to loopback, not %r: from outside it would be an open relay" % (raw.get("reinject_address"),),
                "use 127.0.0.1 or ::1 (the filter runs on this host)",
            )
        port = raw.get("reinject_port", 10025)
        if isinstance(port, str) and port.strip().isdigit():
            port = int(port)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535 or port in (25, 465, 587):
            self.error(variable + ".reinject_port", "invalid re-injection port %r" % (port,), "use a free port of its own, e.g. 10025")
        if not match or address is None or not isinstance(port, int):
            return None
        return {"next_hop": "[%s]:%s" % (_parse_address(match.group("host")), match.group("port")), "reinject_address": address, "reinject_port": port}

    def milters(self):
        """Milters for mail from the network (Postfix smtpd_milters). [] : keep what the host has."""
        result = []
        for index, entry in enumerate(self.get_list("mailsec_relay_milters", fix="write it as a YAML list, e.g. ['inet:127.0.0.1:8891']") or []):
            if not isinstance(entry, str) or not _MILTER.fullmatch(entry.strip()):
                self.error(
                    "mailsec_relay_milters[%d]" % index,
                    "%r is not a milter address" % (entry,),
                    "write inet:host:port or unix:/path, e.g. inet:127.0.0.1:8891 (OpenDKIM)",
                )
            elif entry.strip() not in result:
                result.append(entry.strip())
        return result
