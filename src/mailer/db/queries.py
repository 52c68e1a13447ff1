"""Named SQL queries kept in `.sql` files, one file per part of the service.

A file holds blocks that each start with a `-- name: some_query` line; the text up to
the next such line is the query. Queries are plain SQL with `$n` parameters: nothing is
ever built from input.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


class Queries:
    """The queries of one `.sql` file, read once; `queries.claim_jobs` is the SQL text."""

    def __init__(self, package: str, filename: str = "queries.sql") -> None:
        text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
        self._sql = parse_queries(text)
        self._origin = f"{package}/{filename}"

    def __getattr__(self, name: str) -> str:
        try:
            return self._sql[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in {self._origin}") from None

    def names(self) -> list[str]:
        """The names of the queries in the file, in order."""
        return list(self._sql)


def parse_queries(text: str) -> dict[str, str]:
    """Split the text of a `.sql` file into its named queries."""
    matches = list(_NAME.finditer(text))
    queries: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        body = text[match.end() : end].strip()
        if not body:
            raise ValueError(f"query {match.group(1)!r} is empty")
        if match.group(1) in queries:
            raise ValueError(f"query {match.group(1)!r} is defined twice")
        queries[match.group(1)] = body
    return queries
