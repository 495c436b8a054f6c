"""Type tokens are defined once (fleet.model.type_tokens); the policy pack's own copy agrees with it.

The pack imports only pulumi_policy, so it keeps its constants; if a token changed on one side only, a
rule would silently stop matching the resources it is meant for.
"""

from __future__ import annotations

import re

from fleet.model import type_tokens
from fleet.paths import PROJECT_ROOT
from policies import fleet_policies as pack


def test_the_policy_packs_tokens_are_the_models_tokens():
    assert pack.CONTAINER == type_tokens.CONTAINER
    assert pack.ROLE == type_tokens.ROLE
    assert pack.DATABASE == type_tokens.DATABASE
    assert pack.GRANT == type_tokens.GRANT
    assert pack.RANDOM_PASSWORD == type_tokens.PASSWORD
    assert pack.DNS_RECORD_TYPES[0] == type_tokens.DNS_RECORD
    assert pack.CADDY_ROUTE == type_tokens.CADDY_ROUTE
    assert pack.TENANT_TYPE == type_tokens.TENANT_TYPE
    assert all(token == type_tokens.COMPONENT_TYPE.format(token.rsplit(":", 1)[1]) for token in pack.COMPONENT_SUFFIXES)


def test_the_dynamic_resources_tokens_follow_their_module_and_class():
    from components.providers.caddy import CaddyRoute, CaddyServer
    from components.providers.postgres import DatabasePlacement, TenantPurge
    from components.providers.registry import TenantRegistryRow, TenantRegistryTable

    for cls, token in (
        (CaddyRoute, type_tokens.CADDY_ROUTE),
        (CaddyServer, type_tokens.CADDY_SERVER),
        (DatabasePlacement, type_tokens.PLACEMENT),
        (TenantPurge, type_tokens.PURGE),
        (TenantRegistryTable, type_tokens.REGISTRY_TABLE),
        (TenantRegistryRow, type_tokens.REGISTRY_ROW),
    ):
        assert token == f"pulumi-python:dynamic/{cls.__module__.rsplit('.', 1)[1]}:{cls.__name__}"


def test_no_module_outside_type_tokens_spells_a_token_out():
    literal = re.compile(r'"(?:docker|postgresql|random|cloudflare|pulumi-python|tenant-fleet|pulumi):[\w/]+:\w+"')
    spelled = []
    for folder in ("fleet", "components"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            if path.name == "type_tokens.py":
                continue
            spelled += [f"{path.relative_to(PROJECT_ROOT)}: {match}" for match in literal.findall(path.read_text(encoding="utf-8"))]
    assert not spelled, "use fleet.model.type_tokens:\n" + "\n".join(spelled)
