"""aver: audio-visual emotion recognition pipeline."""

__version__ = "0.1.0"
