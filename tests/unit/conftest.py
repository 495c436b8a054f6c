"""Unit-tier fixtures: the real program under Pulumi mocks, on copies of the tenant files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.offline.plan import evaluate, stack_config
from fleet.paths import PROJECT_ROOT
from tests.unit.graph import FleetWorkspace


@pytest.fixture
def workspace(tmp_path: Path) -> FleetWorkspace:
    return FleetWorkspace(tmp_path)


@pytest.fixture(scope="session")
def dev_plan():
    """The shipped tenants on the dev stack, evaluated once."""
    return evaluate(stack_config("dev", PROJECT_ROOT), stack="dev", tenants_dir=PROJECT_ROOT / "tenants")
