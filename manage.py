#!/usr/bin/env python
"""Django's command-line utility for jailadmin (installed, the same is the `jailadmin` command)."""

from jailadmin.cli import main

if __name__ == "__main__":
    main()
