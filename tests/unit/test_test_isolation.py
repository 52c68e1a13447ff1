"""The tests never reach a deployment's database (or Mailjet) through the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import server_url_for_tests

ROOT = Path(__file__).resolve().parents[2]


def test_only_mailer_test_database_url_names_the_test_server() -> None:
    deployment = "postgresql://mailer:pw@db.prod.example/mailer"
    assert server_url_for_tests({"DATABASE_URL": deployment}) is None
    assert (
        server_url_for_tests({"DATABASE_URL": deployment, "MAILER_TEST_DATABASE_URL": ""}) is None
    )
    given = "postgresql://postgres@127.0.0.1:5432/test"
    both = {"DATABASE_URL": deployment, "MAILER_TEST_DATABASE_URL": given}
    assert server_url_for_tests(both) == given


def test_deployment_variables_do_not_reach_tests_or_their_subprocesses() -> None:
    assert "DATABASE_URL" not in os.environ
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://mailer:pw@db.prod.example/mailer",
        "MJ_APIKEY_PUBLIC": "live-key",
    }
    code = (
        "import os, tests.conftest, subprocess, sys; "
        "print(os.environ.get('DATABASE_URL'), os.environ.get('MJ_APIKEY_PUBLIC')); "
        "subprocess.run([sys.executable, '-c', "
        "'import os; print(os.environ.get(\"DATABASE_URL\"))'], check=True)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["None", "None", "None"]
