"""Every query name the code uses exists, and every named query is used.

Queries are looked up by attribute (`Q.claim_jobs`) at run time, so a misspelt name would
fail only when its path runs, and a query nothing runs would rot unseen. Each package's
`queries.sql` is read by the `Q = Queries("mailer.<package>")` of its own modules.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mailer
from mailer.db.queries import Queries

SRC = Path(mailer.__file__).parent
_USE = re.compile(r"\bQ\.([a-z_][a-z0-9_]*)\b")
_LOADER = re.compile(r'Queries\("(mailer(?:\.\w+)*)"\)')

PACKAGES = sorted(p.parent for p in SRC.rglob("queries.sql"))


def _package(directory: Path) -> str:
    return ".".join(("mailer", *directory.relative_to(SRC).parts))


def _used(directory: Path) -> dict[str, list[str]]:
    uses: dict[str, list[str]] = {}
    for module in sorted(directory.rglob("*.py")):
        for name in _USE.findall(module.read_text(encoding="utf-8")):
            uses.setdefault(name, []).append(module.name)
    return uses


def test_every_part_with_queries_is_found() -> None:
    assert [_package(p) for p in PACKAGES] == [
        "mailer.apps",
        "mailer.audit",
        "mailer.dashboard",
        "mailer.db",
        "mailer.delivery",
        "mailer.lifecycle",
        "mailer.ops",
        "mailer.stats",
        "mailer.tracking",
        "mailer.webhooks",
    ]


def test_every_loader_names_its_own_package() -> None:
    for module in SRC.rglob("*.py"):
        for package in _LOADER.findall(module.read_text(encoding="utf-8")):
            assert module.parent == SRC.joinpath(*package.split(".")[1:]), module


@pytest.mark.parametrize("directory", PACKAGES, ids=_package)
def test_every_used_query_exists(directory: Path) -> None:
    defined = set(Queries(_package(directory)).names())
    missing = {name: where for name, where in _used(directory).items() if name not in defined}
    assert not missing, f"used but not in {directory.name}/queries.sql: {missing}"


@pytest.mark.parametrize("directory", PACKAGES, ids=_package)
def test_every_query_is_used(directory: Path) -> None:
    unused = set(Queries(_package(directory)).names()) - set(_used(directory))
    assert not unused, f"named in {directory.name}/queries.sql, used nowhere: {sorted(unused)}"
