"""Knowledge storage in Qdrant: the embedded Qdrant Edge shard, or a Qdrant server."""
