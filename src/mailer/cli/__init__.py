"""The `mailer` command (click): one module per group of subcommands."""

from mailer.cli import apps, audit, erase, events, mailjet, retention, secrets, serve, smtp, status
from mailer.cli.common import main

__all__ = [
    "apps",
    "audit",
    "erase",
    "events",
    "mailjet",
    "main",
    "retention",
    "secrets",
    "serve",
    "smtp",
    "status",
]
