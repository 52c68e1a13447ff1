"""A minimal Django project for the post_office peer (`bench/post_office_peer.py`)."""
