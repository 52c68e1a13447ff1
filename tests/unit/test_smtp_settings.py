"""Where SMTP submission listens: on in the demo, off in production unless configured."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from mailer.config import ConfigError, Settings, load_settings

PRODUCTION = {"mj_apikey_public": "a", "mj_apikey_private": SecretStr("b")}


def test_on_in_the_demo_off_in_production_unless_configured() -> None:
    assert Settings().smtp_listen_port == 2525
    assert Settings(smtp_port="off").smtp_listen_port is None
    assert Settings(**PRODUCTION).smtp_listen_port is None  # type: ignore[arg-type]
    assert Settings(smtp_port=2600, **PRODUCTION).smtp_listen_port == 2600  # type: ignore[arg-type]


def test_certificate_and_key_come_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILER_SMTP_TLS_CERT", "/etc/mailer/cert.pem")
    with pytest.raises(ConfigError, match="MAILER_SMTP_TLS_KEY"):
        load_settings()
    monkeypatch.setenv("MAILER_SMTP_PORT", "smtp")
    monkeypatch.setenv("MAILER_SMTP_TLS_KEY", "/etc/mailer/key.pem")
    with pytest.raises(ConfigError, match="MAILER_SMTP_PORT"):
        load_settings()
