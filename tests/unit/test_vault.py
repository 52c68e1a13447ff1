"""Sealing secrets at rest (mailer.vault): round trip, rotation, the demo's key file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailer.config import ConfigError, Settings
from mailer.vault import KEY_FILE, SecretBox, SecretUnreadable, box_for, generate_key
from mailer.webhooks.sealed import SecretOpener


def test_a_sealed_secret_opens_and_does_not_show_its_value() -> None:
    box = SecretBox([generate_key()])
    sealed = box.seal("whsec_abc")
    assert "whsec_abc" not in sealed and box.open(sealed) == "whsec_abc"
    assert box.seal("whsec_abc") != sealed  # a new token each time


def test_rotation_opens_with_any_key_and_reseals_with_the_first() -> None:
    old, new = generate_key(), generate_key()
    sealed_by_old = SecretBox([old]).seal("whsec_x")
    both = SecretBox.from_setting(f"{new}, {old}")
    resealed = both.reseal(sealed_by_old)
    assert SecretBox([new]).open(resealed) == "whsec_x"
    with pytest.raises(SecretUnreadable):
        SecretBox([new]).open(sealed_by_old)
    with pytest.raises(SecretUnreadable):
        SecretBox([new]).reseal(sealed_by_old)


def test_a_bad_key_is_one_line_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"^MAILER_SECRET_KEY: .*generate-key`$"):
        SecretBox.from_setting("not a key")
    with pytest.raises(ConfigError, match="MAILER_SECRET_KEY"):
        SecretBox.from_setting(" , ")


def test_the_demo_key_is_made_once_beside_the_embedded_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = box_for(settings)
    assert first is not None
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = first.seal("whsec_1")
    again = box_for(settings)
    assert again is not None and again.open(sealed) == "whsec_1"
    assert list(tmp_path.iterdir()) == [path]


def test_a_database_url_without_a_key_has_no_box(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://db/x")
    assert box_for(settings) is None
    assert not (tmp_path / KEY_FILE).exists()


class CountingBox(SecretBox):
    opened = 0

    def open(self, sealed: str) -> str:
        self.opened += 1
        return super().open(sealed)


def test_the_opener_decrypts_each_token_once_and_passes_clear_values() -> None:
    box = CountingBox([generate_key()])
    opener = SecretOpener(box)
    sealed = box.seal("whsec_y")
    for _ in range(3):
        assert opener.open_all([sealed, "whsec_clear"]) == ["whsec_y", "whsec_clear"]
    assert box.opened == 1
    broken = SecretOpener(SecretBox([generate_key()]))
    with pytest.raises(SecretUnreadable):
        broken.open(sealed)
    assert SecretOpener(None).open("whsec_clear") == "whsec_clear"
