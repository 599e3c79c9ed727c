"""Benchmarks and the load test: the model in-process, and the whole stack end to end (docs/PERFORMANCE.md)."""
