"""Django settings of the post_office peer: django-post_office's queue on the bench's
PostgreSQL (psycopg 3), sending through django-anymail's Mailjet backend to the simulator.

Everything the run changes comes from the environment the peer sets before
`django.setup()`: the database (`BENCH_PO_DSN`, a libpq URL), the simulator
(`BENCH_PO_MAILJET_URL`), and post_office's batch size and threads per process.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

_dsn = urlsplit(os.environ.get("BENCH_PO_DSN", "postgresql://postgres@127.0.0.1:5432/test"))

SECRET_KEY = "bench-post-office-not-secret"  # a throwaway local project
DEBUG = False  # True would keep every query in memory
USE_TZ = True
INSTALLED_APPS = ["post_office"]
# post_office renders every subject and body as a template, even without a context.
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates"}]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",  # psycopg 3 when installed, as here
        "NAME": _dsn.path.lstrip("/"),
        "USER": unquote(_dsn.username or ""),
        "PASSWORD": unquote(_dsn.password or ""),
        "HOST": _dsn.hostname or "",
        "PORT": str(_dsn.port or ""),
        "CONN_MAX_AGE": None,  # keep the connection, as a long-running sender would
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

EMAIL_BACKEND = "post_office.EmailBackend"
ANYMAIL = {
    "MAILJET_API_KEY": os.environ.get("BENCH_PO_MAILJET_KEY", ""),
    "MAILJET_SECRET_KEY": os.environ.get("BENCH_PO_MAILJET_SECRET", ""),
    "MAILJET_API_URL": os.environ.get("BENCH_PO_MAILJET_URL", "") + "/v3.1/",
}
POST_OFFICE = {
    "BACKENDS": {"default": "anymail.backends.mailjet.EmailBackend"},
    "BATCH_SIZE": int(os.environ.get("BENCH_PO_BATCH_SIZE", "100")),
    "THREADS_PER_PROCESS": int(os.environ.get("BENCH_PO_THREADS", "5")),
    "LOG_LEVEL": 1,  # log failures only: a success log row per email is not what we time
    "DEFAULT_PRIORITY": "medium",
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"post_office": {"handlers": ["console"], "level": "WARNING"}},
}
