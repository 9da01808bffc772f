"""Read-only queries of the archive and its summaries, for the pages and the `/ip/` page."""
