"""The `mailer` command (click): one module per group of subcommands."""

from mailer.cli import apps, events, mailjet, operators, serve, smtp, status, suppressions
from mailer.cli.common import main

__all__ = [
    "apps",
    "events",
    "mailjet",
    "main",
    "operators",
    "serve",
    "smtp",
    "status",
    "suppressions",
]
