"""Benchmarks of Meter Hub: see scripts/bench."""
