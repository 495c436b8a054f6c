"""Make the project importable from every test tier."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Real-server fixtures (PostgreSQL clusters, Caddy, upstreams) for the integration and e2e tiers.
pytest_plugins = ["tests.support.fixtures"]
