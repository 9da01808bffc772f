"""Prometheus metrics at /metrics (issue 15): fail2ban, the archive, jobs and requests."""
