"""roadsynth: synthetic long-tail training data for automotive perception."""

__version__ = "0.1.0"
