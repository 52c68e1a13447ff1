"""The certificate STARTTLS offers: the configured one, or in the demo a self-signed one
made once with `openssl` and kept beside the embedded database's data."""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

from mailer.config import Settings

log = logging.getLogger(__name__)

_DEMO_DIR = "smtp-tls"


class TlsUnavailable(RuntimeError):
    """No certificate is configured and none could be made; the message says what to set."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or newer) for a certificate chain and its key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def context_for(settings: Settings) -> ssl.SSLContext | None:
    """The STARTTLS context: the configured certificate; else a self-signed one in the
    demo (the simulator stands in for Mailjet); else None (no STARTTLS offered)."""
    if settings.smtp_tls_cert is not None and settings.smtp_tls_key is not None:
        return server_context(settings.smtp_tls_cert, settings.smtp_tls_key)
    if not settings.uses_simulator:
        return None
    cert, key = demo_certificate(settings.data_dir / _DEMO_DIR)
    return server_context(cert, key)


def demo_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 in `folder` (made if missing; in a
    temporary folder when `folder` cannot be written)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    if cert.exists() and key.exists():
        return cert, key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _make_self_signed(cert, key)
    except OSError:
        fallback = Path(tempfile.mkdtemp(prefix="mailer-smtp-tls-"))
        cert, key = fallback / "cert.pem", fallback / "key.pem"
        _make_self_signed(cert, key)
    log.info(
        "generated a self-signed SMTP certificate",
        extra={"action": "smtp_self_signed", "cert": str(cert)},
    )
    return cert, key


def _make_self_signed(cert: Path, key: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TlsUnavailable(
            "no openssl to make the demo's SMTP certificate: set MAILER_SMTP_TLS_CERT and "
            "MAILER_SMTP_TLS_KEY"
        )
    command = [
        openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825",
        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise TlsUnavailable(f"openssl could not make the demo's certificate: {done.stderr}")
    key.chmod(0o600)
