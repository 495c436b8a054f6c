"""Helpers shared by the test tiers: real servers on loopback (see `fleet.bench.servers`)."""
