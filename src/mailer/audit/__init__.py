"""The audit log: every change that is not an app sending mail, who made it and from where.

One function, :func:`record`, written in the transaction of the change it records, so an
entry exists if and only if the change committed. The parts that make changes (apps, keys,
webhook endpoints, suppressions, erasure, retention) call it; it depends on nothing above
the database.
"""

from mailer.audit.log import Actor, AuditEntry, entries, record

__all__ = ["Actor", "AuditEntry", "entries", "record"]
