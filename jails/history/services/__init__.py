"""Writes to the archive: the sync from fail2ban's database, the summaries, the purge, jobs."""
