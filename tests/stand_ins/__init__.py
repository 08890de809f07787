"""Stand-in weights files in the published layouts (random values), for tests and benchmarks where the real files are absent."""
