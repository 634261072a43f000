# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SMTP client and relay probe engine of mailsec.relay (no Ansible imports).

Entry points: :func:`engine.run` (sync) / :func:`engine.run_async`, :class:`client.SMTPClient`,
:func:`reply.parse_reply`. See docs/probe-contract.md.
"""
