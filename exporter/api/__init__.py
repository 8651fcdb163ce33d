"""HTTP APIs of the exporter: one router module per area, all under /api/v1."""
