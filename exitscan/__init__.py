"""exitscan: print exit passes, scan them, read them back."""

__version__ = "0.1.0"
