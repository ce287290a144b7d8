"""edged: a real-time edge video analytics daemon."""

__version__ = "0.1.0"
