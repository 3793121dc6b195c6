"""Benchmarks of Meter Hub: see scripts/bench.

The virtual clock goes in before anything imports Home Assistant (see ``bench/clock.py``).
"""

from bench.clock import install

install()
