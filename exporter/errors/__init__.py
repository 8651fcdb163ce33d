"""Errors: capture, grouping by fingerprint, the local SQLite store, and Sentry reporting."""
