"""The configuration pages (`/config/`)."""
