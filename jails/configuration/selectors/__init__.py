"""Reads for the configuration pages: the effective configuration and file versions."""
