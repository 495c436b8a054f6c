"""Fixtures shared by every test tier (the project root is importable through pyproject.toml's pytest pythonpath)."""

# Real-server fixtures (PostgreSQL clusters, Caddy, upstreams) for the integration and e2e tiers.
pytest_plugins = ["tests.support.fixtures"]
