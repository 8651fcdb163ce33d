"""Background probes of dependencies (latency) and queues (depth); scrapes read their results."""
