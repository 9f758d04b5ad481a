"""Choosing the hybrid's settings and the NCF's on a validation carve of the training rows, never the test set."""
