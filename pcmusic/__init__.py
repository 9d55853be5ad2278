"""pcmusic: one predictive-coding hierarchy that perceives and generates audio.

The public API is re-exported here explicitly; everything else is private.
"""
__version__ = "0.1.0"

__all__ = ["__version__"]
