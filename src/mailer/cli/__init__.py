"""The `mailer` command (click): one module per group of subcommands."""

from mailer.cli import (
    apps,
    audit,
    erase,
    events,
    mailjet,
    operators,
    retention,
    secrets,
    serve,
    smtp,
    status,
    suppressions,
)
from mailer.cli.common import main

__all__ = [
    "apps",
    "audit",
    "erase",
    "events",
    "mailjet",
    "main",
    "operators",
    "retention",
    "secrets",
    "serve",
    "smtp",
    "status",
    "suppressions",
]
