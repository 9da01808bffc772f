"""Read-only queries (selectors) used by the pages; services do the writes."""
