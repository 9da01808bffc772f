"""fail2ban's configuration from the site: read as fail2ban reads it, edited safely, versioned."""
