"""I/O at the edges: atomic writes, downloads, archives, shard stores."""
