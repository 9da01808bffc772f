"""The metrics app's services: who may scrape, fail2ban's counters, the exposition."""
