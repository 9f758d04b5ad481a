"""The models' maths, no I/O: EASE, the NCF, the original design's NCF, and the similar-user search."""
