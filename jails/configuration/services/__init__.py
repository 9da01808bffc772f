"""Writes: the safe edit path (stage, test, write, reload, verify, roll back) and versions."""
