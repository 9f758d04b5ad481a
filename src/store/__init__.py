"""What training writes and serving reads: the artifact files and the versioned model registry."""
