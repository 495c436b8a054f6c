"""The offline plan: the real program under Pulumi mocks, its shards, and the policy pack run on it.

No engine, no credentials, no network.
"""
