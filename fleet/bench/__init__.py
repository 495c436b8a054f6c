"""Benchmarks: the offline plan on synthetic fleets, and the real engine on a proxy-only stack.

Measurements, not timed tests; synthetic fleets live only in scratch folders the benchmark creates.
"""
