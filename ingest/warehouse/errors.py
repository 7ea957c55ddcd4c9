"""The warehouse's errors: never carrying a value from data (see `describe_database_error`)."""

from __future__ import annotations


class WarehouseError(RuntimeError):
    """A warehouse operation failed (and was rolled back). Never carries a value from data."""


class WarehouseLoadError(WarehouseError):
    """A return could not be loaded: frames not as expected, or the database refused them."""
