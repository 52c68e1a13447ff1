"""SMTP submission: apps that speak SMTP hand their mail to Mailer (aiosmtpd).

`parse` turns a MIME message into a `POST /queue` body, `handler` authenticates with API
keys and enqueues through the same validation and enqueue path as the API, `tls` holds the
certificate, `server` listens.
"""
