"""Structured JSON logs: formatter, daily files, the Loki shipper and their set-up."""
