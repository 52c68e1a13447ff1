"""Sending statistics per app: hourly rollups kept by the send and event paths' own
statements, read back per hour or day (`GET /stats`), folded as hours close."""
