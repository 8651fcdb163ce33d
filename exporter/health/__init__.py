"""Health of the watched service: background probes, the history ring, in-process alerts and the
checks the API reports, wired to one registry by `HealthMonitor`."""
