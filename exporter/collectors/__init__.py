"""Prometheus collectors: one per file, each reading cached or cheap local sources."""
