"""Where things are on disk: the project root, the tenants folder, the cache and the local state.

Defined once here; every layer imports them from this module.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The checkout: Pulumi.yaml, Pulumi.<stack>.yaml, tenants/, policies/."""
TENANTS_DIR = PROJECT_ROOT / "tenants"
"""Tenant files and the plan catalog (`_plans.yaml`)."""
POLICIES_DIR = PROJECT_ROOT / "policies"
"""The CrossGuard policy pack."""
CACHE_DIR = PROJECT_ROOT / ".cache"
"""Everything ./scripts/setup builds or installs (git-ignored; safe to wipe)."""
ENGINE_ROOT = CACHE_DIR / "engine"
ENGINE_BIN = ENGINE_ROOT / "bin"
"""The engine and the two shims that let it run dynamic providers and policy packs."""
ENGINE_PATH = ENGINE_BIN / "pulumi"
PULUMI_HOME = CACHE_DIR / "pulumi"
"""PULUMI_HOME of the engine: plugins and credentials."""
DEFAULT_BACKEND_DIR = PROJECT_ROOT / "state"
"""Local state. Not a cache: it lives outside .cache so that wiping the cache never forgets what is deployed."""
VERSION_FILE = PROJECT_ROOT / "engine" / "VERSION"
"""The engine version the project pins."""
PROGRAM_SOURCES = (
    "components",
    "fleet/model",
    "fleet/postgres",
    "fleet/program.py",
    "fleet/sdk_internals.py",
    "fleet/errors.py",
    "fleet/paths.py",
    "policies",
    "__main__.py",
    "requirements.txt",
)
"""What a deploy runs, relative to the project root: a change to any of these may change what a stack declares."""
