"""SMX - Smart Meter eXtension gateway."""

__version__ = "0.1.0"
