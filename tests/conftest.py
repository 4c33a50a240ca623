"""Puts `tests/` on sys.path so every test can `from helpers import tiny`."""
