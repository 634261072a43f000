# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Profiles (mx, mx_submission, relay_hub, null_client): their default listeners and the rules a
profile sets for the rest of the policy."""

from __future__ import annotations

from .errors import _did_you_mean
from .reading import Reader, _as_list

VARIABLES = {
    "mailsec_relay_profile": "str",
}

PROFILES = ("mx", "mx_submission", "relay_hub", "null_client")


def profile_listeners(profile, has_tls):
    """The listeners a profile gets when mailsec_relay_listeners is not set."""
    if profile == "null_client":
        return [{"name": "smtp", "address": "127.0.0.1", "port": 25, "role": "mx", "tls": "none"}]
    listeners = [{"name": "smtp", "address": "*", "port": 25, "role": "mx", "tls": "starttls" if has_tls else "none"}]
    if profile == "mx_submission":
        listeners.append({"name": "submission", "address": "*", "port": 587, "role": "submission", "tls": "required"})
        listeners.append({"name": "submissions", "address": "*", "port": 465, "role": "submission", "tls": "implicit"})
    return listeners


class ProfilesMixin(Reader):
    def profile(self):
        profile = self.get_str("mailsec_relay_profile", "mx")
        if profile not in PROFILES:
            self.error(
                "mailsec_relay_profile",
                "unknown profile '%s'%s" % (profile, _did_you_mean(profile, PROFILES)),
                "use one of: %s" % ", ".join(PROFILES),
            )
            profile = "mx"  # keep checking the rest against the most restrictive profile
        return profile

    def profile_rules(self, profile, listeners, auth_relay):
        """What the profile and the listeners require of each other (AUTH needs submission, a
        null_client accepts nothing, a relay_hub needs relay networks)."""
        submission = [item for item in listeners if item["role"] == "submission"]
        if auth_relay and not submission and not self.listener_errors:
            self.error(
                "mailsec_relay_auth_relay",
                "authenticated relay is only offered on submission listeners, and this policy (profile %s) has none" % profile,
                "use profile mx_submission, add a submission listener (587/465) to mailsec_relay_listeners, or set mailsec_relay_auth_relay: false",
            )
        for item in submission:
            if not item["auth"]:
                self.warnings.append(
                    "listener %s (port %d) is a submission listener without AUTH: it accepts mail only for local and relay domains."
                    % (item["name"], item["port"])
                )

        # Judged on what the user wrote, so a rejected entry does not also read as "nothing listed".
        relay_written = bool(self.raw.get("mailsec_relay_networks")) or any(
            isinstance(item, dict) and item.get("relay_networks") for item in _as_list(self.raw.get("mailsec_relay_listeners"))
        )
        if profile == "null_client":
            for variable in ("mailsec_relay_networks", "mailsec_relay_local_domains", "mailsec_relay_relay_domains", "mailsec_relay_client_names"):
                if self.raw.get(variable):
                    self.error(
                        variable,
                        "a null_client only sends its own mail: it accepts nothing from the network and relays for no one",
                        "remove %s, or choose profile mx or relay_hub" % variable,
                    )
        if profile == "relay_hub" and not relay_written:
            self.error(
                "mailsec_relay_networks",
                "profile relay_hub relays for allowlisted networks, but none is listed",
                "list the networks of the servers that send through this hub, e.g. ['198.51.100.0/28'], or choose profile mx",
            )
