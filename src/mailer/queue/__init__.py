"""The queue core: the machinery every PostgreSQL-backed queue of Mailer shares.

A queue (the email jobs of :mod:`mailer.delivery`, the webhook deliveries of
:mod:`mailer.webhooks`) keeps only what is its own: what a unit of work is, how it is
claimed with ``FOR UPDATE SKIP LOCKED`` and a lease, and how it is carried out. The loop
that claims, runs, waits and drains (:mod:`.loop`), the LISTEN/NOTIFY wake-up with its poll
fallback (:mod:`.wakeup`) and the one ``Retry-After`` parser (:mod:`.retry_after`) live here.
Nothing here imports a feature package.
"""
