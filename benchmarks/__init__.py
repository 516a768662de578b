"""Load generator and capacity reports (see docs/benchmarks.md)."""
