# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS material of the listeners: certificate and key paths, or a self-signed pair for labs."""

from __future__ import annotations

from ansible_collections.mailsec.relay.plugins.module_utils import grammar

from .reading import Reader

VARIABLES = {
    "mailsec_relay_tls_cert": "str",
    "mailsec_relay_tls_key": "str",
    "mailsec_relay_tls_selfsigned": "bool",
}

SELFSIGNED_CERT = "/etc/ssl/mailsec/relay.crt"
SELFSIGNED_KEY = "/etc/ssl/mailsec/relay.key"


class TlsMixin(Reader):
    def tls(self):
        cert = self.get_str("mailsec_relay_tls_cert")
        key = self.get_str("mailsec_relay_tls_key")
        selfsigned = self.get_bool("mailsec_relay_tls_selfsigned", False)
        for name, path in (("mailsec_relay_tls_cert", cert), ("mailsec_relay_tls_key", key)):
            if path is not None and not path.startswith("/"):
                self.error(name, "'%s' is not an absolute path" % path, "give the full path of the file on the managed host, e.g. /etc/ssl/private/mx.key")
            elif path is not None and not grammar.is_abs_path(path):
                # Exim expands '${...}' in these values at run time; a line break would write a line of its own.
                self.error(
                    name,
                    "%r contains characters a certificate or key path cannot have here (allowed: letters, digits, '/', '.', '_', '-', '+', '@', '='; "
                    "no '..' segments; at most %d characters)" % (path, grammar.PATH_MAX),
                    "rename the file, or give a path without '$', braces, whitespace, ',' or ':', e.g. /etc/ssl/private/mx.key",
                )
        if bool(cert) != bool(key):
            missing = "mailsec_relay_tls_key" if cert else "mailsec_relay_tls_cert"
            self.error(missing, "a certificate needs its key and a key its certificate", "set both mailsec_relay_tls_cert and mailsec_relay_tls_key")
        if selfsigned and not cert and not key:
            cert, key = SELFSIGNED_CERT, SELFSIGNED_KEY
        return {"cert": cert, "key": key, "selfsigned": selfsigned}
