"""The models' maths, no I/O: EASE, the NCF, the original design's NCF, the similar-user search, and ``method``: the
one interface every method (each baseline of the evaluation, each scorer of the engine) implements."""
