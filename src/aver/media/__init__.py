"""Media I/O: ffmpeg discovery, probing with PyAV, and the extract stage (wav + normalised mp4)."""
