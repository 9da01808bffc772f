"""The ban history: fail2ban's bans archived in jailadmin's database, the dashboard, `/history/`.

The core app (jails) builds the state and talks to fail2ban; this app copies fail2ban's bans
into its own tables (services), reads them for the pages (selectors, views) and lists its
periodic jobs for the core job runner (apps.HistoryConfig.periodic_jobs).
"""
