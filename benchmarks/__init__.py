"""eventisc's benchmark suite: ``python -m benchmarks [--quick] [--only NAME ...]``.

Each workload runs eventisc and its references (the raw client doing the same work by hand,
and event-isc 0.1.0 in a virtualenv of its own) in the same run, alternating, and reports the
ratios against their targets in BENCHMARKS.md.
"""
