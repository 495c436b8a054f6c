"""Helpers shared by the test tiers: real servers on loopback (see `tests.support.servers`)."""
