"""The web app `mailer api` and `mailer run` serve: the API with the dashboard mounted.

The API and the dashboard are siblings that do not import each other; they meet here.
"""

from __future__ import annotations

from fastapi import FastAPI

from mailer import dashboard
from mailer.api import app as api


def with_dashboard(app: FastAPI) -> FastAPI:
    """`app` (an API from `mailer.api.app.create_app`) serving `/dashboard` too."""
    dashboard.install(app)
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory for `mailer api`: settings and DATABASE_URL from the environment."""
    return with_dashboard(api.app_from_env())
