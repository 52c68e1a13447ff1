"""Mailer: a self-hosted service through which a company's apps send their email via Mailjet."""

__version__ = "0.1.0"
