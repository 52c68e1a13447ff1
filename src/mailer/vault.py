"""Secrets at rest: what Mailer must keep and read back (webhook signing secrets) is stored
sealed with a key from ``MAILER_SECRET_KEY``, so a database dump alone reveals none of it.

The key is one or more Fernet keys, comma-separated: the first seals, every one opens
(``MultiFernet``), so a key is rotated by putting a new one first and running
``mailer secrets rotate``, which re-seals everything with it; the old key can then go.
Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) is authenticated: a token
changed in the database does not open. With the embedded database (the demo) and no key
configured, one is generated and kept beside the database's data, like its other state.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mailer.config import ConfigError, Settings

__all__ = [
    "KEY_FILE",
    "SecretBox",
    "SecretUnreadable",
    "box_for",
    "generate_key",
]

log = logging.getLogger(__name__)

KEY_FILE = "secret-key"
"""The demo's generated key, in MAILER_DATA_DIR."""


class SecretUnreadable(Exception):
    """A sealed value does not open with any configured key (wrong key, or altered)."""


def generate_key() -> str:
    """A new random key, as MAILER_SECRET_KEY takes it."""
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Seals with the first key, opens with any."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key is required")
        self._fernet = MultiFernet([Fernet(key.encode("ascii")) for key in keys])
        self.key_count = len(keys)

    @classmethod
    def from_setting(cls, value: str) -> SecretBox:
        """The box of a MAILER_SECRET_KEY value; ConfigError naming the setting if bad."""
        keys = [part.strip() for part in value.split(",") if part.strip()]
        try:
            return cls(keys)
        except (ValueError, UnicodeEncodeError):
            raise ConfigError(
                "MAILER_SECRET_KEY: expected one or more Fernet keys (32 url-safe base64 "
                "bytes each), comma-separated, the newest first; make one with "
                "`mailer secrets generate-key`"
            ) from None

    def seal(self, clear: str) -> str:
        """``clear`` sealed with the first key (a different token each time)."""
        return self._fernet.encrypt(clear.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        """The clear value of a token sealed with any configured key."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise SecretUnreadable(
                "a stored secret does not open with MAILER_SECRET_KEY (was the key that "
                "sealed it removed?)"
            ) from None

    def reseal(self, sealed: str) -> str:
        """``sealed`` opened with any key and sealed again with the first."""
        try:
            return self._fernet.rotate(sealed.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise SecretUnreadable(
                "a stored secret does not open with MAILER_SECRET_KEY: keep the old key "
                "in the list (after the new one) until `mailer secrets rotate` has run"
            ) from None


def box_for(settings: Settings) -> SecretBox | None:
    """The box of MAILER_SECRET_KEY; without it, the demo's key beside the embedded
    database (made on first use); None with a DATABASE_URL and no key."""
    if settings.secret_key is not None:
        return SecretBox.from_setting(settings.secret_key.get_secret_value())
    if settings.database_url is not None:
        return None
    return SecretBox([_demo_key(settings.data_dir / KEY_FILE)])


def _demo_key(path: Path) -> str:
    with contextlib.suppress(FileNotFoundError):
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(generate_key() + "\n")
    try:
        # A link is atomic and fails if the file exists: of two processes starting at
        # once, one key wins, written whole, and both use it.
        os.link(draft, path)
    except FileExistsError:
        pass
    else:
        log.info(
            "generated the demo's secret key beside the embedded database",
            extra={"action": "secret_key_generated", "path": str(path)},
        )
    finally:
        draft.unlink()
    return path.read_text(encoding="ascii").strip()
