"""Read-only queries of the site's own database for a scrape."""
