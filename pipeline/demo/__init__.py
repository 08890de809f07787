"""The demo: a local fixture image board with generated illustrations, and the whole chain run on it."""
