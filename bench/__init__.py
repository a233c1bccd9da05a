"""Benchmarks (``make bench``). Figures go to docs/benchmarks.md with the command used."""
