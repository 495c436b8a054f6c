"""The policy pack: every policy passes on the shipped fleet and fails on a fleet or resource that breaks it.

Verdicts come from the pack's own validate functions (`policies/fleet_policies.py`), run either by
`fleet.offline.policies.check` over the offline plan (as `fleet plan` does) or directly on hand-built
ResourceValidationArgs for edge cases; one test drives the pack's gRPC analyzer (the engine's code
path) in-process and expects the same verdicts.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
)

from fleet.model import derive
from fleet.model.load import load_fleet
from fleet.offline.mocks import Evaluation
from fleet.offline.policies import (
    SHARED,
    Violation,
    check,
    format_violations,
    has_mandatory,
    load_stack_fleet,
    policy_config,
    violations_document,
)
from fleet.paths import PROJECT_ROOT
from policies import fleet_policies as pack
from tests.unit.graph import CONTAINER, DATABASE, GRANT, PASSWORD, ROLE, ROUTE

FAILING_CASES: set[str] = set()


def fails(*policy_names: str):
    """Mark a test as a failing case of these policies (a final test checks every policy has one)."""

    def mark(test):
        FAILING_CASES.update(policy_names)
        return test

    return mark


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def dev_fleet():
    return load_stack_fleet("dev", PROJECT_ROOT)


def fleet_of(workspace):
    return load_fleet(workspace.tenants_dir, workspace.config, root=workspace.tenants_dir.parent)


def run(evaluation, fleet, *names, config=None) -> list[Violation]:
    """Violations of some policies (all when no name is given)."""
    policies = [pack.POLICIES_BY_NAME[name] for name in names] or None
    return check(evaluation, fleet, config=config, policies=policies)


def mutated(evaluation: Evaluation, name: str, *, inputs=None, drop=(), options=None) -> Evaluation:
    """A copy of an evaluation where one resource's inputs or options changed (a program that drifted)."""
    resources = []
    for resource in evaluation.resources:
        if resource.name == name:
            raw = {key: value for key, value in resource.raw_inputs.items() if key not in drop}
            raw.update(inputs or {})
            resource = dataclasses.replace(resource, raw_inputs=raw, options={**resource.options, **(options or {})})
        resources.append(resource)
    assert any(r.name == name for r in evaluation.resources), name
    return dataclasses.replace(evaluation, resources=resources)


def without(evaluation: Evaluation, name: str) -> Evaluation:
    assert any(r.name == name for r in evaluation.resources), name
    return dataclasses.replace(evaluation, resources=[r for r in evaluation.resources if r.name != name])


def resource_args(type_, name, props, *, parent=None, protect=False, secret_outputs=(), config=None) -> ResourceValidationArgs:
    opts = PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), list(secret_outputs), parent)
    return ResourceValidationArgs(type_, props, f"urn:pulumi:dev::tenant-fleet::{type_}::{name}", name, opts, None, config)


def reports(validate, args) -> list[str]:
    messages: list[str] = []
    validate(args, lambda message, urn=None: messages.append(message))
    return messages


def parent_urn(component: str, name: str) -> str:
    return f"urn:pulumi:dev::tenant-fleet::tenant-fleet:index:Tenant$tenant-fleet:index:{component}::{name}"


def add_tenants(workspace, count: int, plan: str, server: str = "shared-1", prefix: str = "extra") -> None:
    for index in range(count):
        name = f"{prefix}{index:03d}"
        workspace.write(name, {"name": name, "display_name": f"Prefeitura {index}", "plan": plan, "database": {"server": server}})


# ---------------------------------------------------------------- the shipped fleet is clean


@pytest.mark.parametrize("policy", pack.ALL_POLICIES, ids=lambda policy: policy.name)
def test_each_policy_passes_on_the_shipped_fleet(policy, dev_plan, dev_fleet):
    assert run(dev_plan, dev_fleet, policy.name) == []


def test_the_pack_has_a_clear_name_description_and_level_per_policy():
    names = [policy.name for policy in pack.ALL_POLICIES]
    assert len(names) == len(set(names)) == 21  # 17, two for the database limits, two for Kubernetes pods and quotas
    for policy in pack.ALL_POLICIES:
        assert policy.description and policy.enforcement_level in (EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY)
    advisory = {policy.name for policy in pack.ALL_POLICIES if policy.enforcement_level == EnforcementLevel.ADVISORY}
    assert advisory == {pack.PLAN_OVERRIDES_NEAR_MAX, pack.CAPACITY_UTILIZATION_HIGH}


# ---------------------------------------------------------------- containers


@fails(pack.CONTAINER_LIMITS_SET)
def test_a_container_without_limits_fails(dev_plan, dev_fleet):
    evaluation = mutated(dev_plan, "santarita-backend-0", drop=("memory",), inputs={"cpus": "0"})
    (violation,) = run(evaluation, dev_fleet, pack.CONTAINER_LIMITS_SET)
    assert (violation.tenant, violation.resource, violation.enforcement) == ("santarita", "santarita-backend-0", "mandatory")
    assert "no memory limit" in violation.message and "no CPU limit (cpus='0')" in violation.message
    assert violation.message.startswith("tenant santarita: ")


def test_container_limits_edge_cases():
    labels = [{"label": "tenant", "value": "gurupi"}]
    ok = resource_args(CONTAINER, "gurupi-backend-0", {"memory": 512.0, "cpus": "0.5", "labels": labels})
    assert reports(pack.container_limits_set, ok) == []
    missing = resource_args(CONTAINER, "gurupi-backend-0", {"labels": labels})
    (message,) = reports(pack.container_limits_set, missing)
    assert message == "tenant gurupi: container gurupi-backend-0 has no memory limit (memory=None) and no CPU limit (cpus=None); set `memory` (MB) and `cpus`."


@fails(pack.CONTAINER_LIMITS_MATCH_PLAN)
def test_container_sizes_must_equal_the_plan_with_overrides(dev_plan, dev_fleet):
    evaluation = mutated(dev_plan, "pirapora-backend-0", inputs={"memory": 4096})
    evaluation = mutated(evaluation, "santarita-frontend-0", inputs={"cpus": "0.3"})
    found = {(v.tenant, v.message) for v in run(evaluation, dev_fleet, pack.CONTAINER_LIMITS_MATCH_PLAN)}
    assert found == {
        ("pirapora", "tenant pirapora: backend container pirapora-backend-0 has memory 4096 MB, but plan enterprise with the tenant's overrides gives 1024 MB."),
        ("pirapora", "tenant pirapora: backend container pirapora-backend-0 has memory 4096 MB, above plan enterprise's max 2048 MB."),
        ("santarita", "tenant santarita: frontend container santarita-frontend-0 has cpus 0.3, but plan pro with the tenant's overrides gives 0.25."),
    }


def test_an_override_is_allowed_only_as_declared(workspace, dev_fleet):
    # santarita declares 768 MB: a deploy of a program giving it 1024 MB (its plan's max, but not its file) fails
    workspace.edit("santarita", overrides={"backend": {"memory_mb": 1024}})
    violations = run(workspace.evaluate(), dev_fleet, pack.CONTAINER_LIMITS_MATCH_PLAN)
    assert [v.message for v in violations] == [
        "tenant santarita: backend container santarita-backend-0 has memory 1024 MB, but plan pro with the tenant's overrides gives 768 MB."
    ]
    # ...and passes once the config comes from the same files as the program
    assert run(workspace.evaluate(), fleet_of(workspace), pack.CONTAINER_LIMITS_MATCH_PLAN) == []


def test_container_outside_any_tenant_or_plan_label_drift_is_reported():
    config = {"tenants": {"gurupi": {"plan": "pro", "backend": {"cpu": 0.5, "memoryMb": 512.0}}}, "plans": {"pro": {"max": {"backend": {"cpu": 1.0, "memoryMb": 1024.0}}}}}
    orphan = resource_args(CONTAINER, "sidecar", {"memory": 64, "cpus": "0.1"}, config=config)
    assert "belongs to no tenant app" in reports(pack.container_limits_match_plan, orphan)[0]
    labels = [{"label": "tenant", "value": "gurupi"}, {"label": "plan", "value": "basic"}, {"label": "component", "value": "backend"}]
    drifted = resource_args(CONTAINER, "gurupi-backend-0", {"memory": 512, "cpus": "0.5", "labels": labels}, config=config)
    assert reports(pack.container_limits_match_plan, drifted) == ["tenant gurupi: container gurupi-backend-0 is labelled plan 'basic', but the tenant is on plan 'pro'."]


@fails(pack.IMAGES_PINNED)
def test_latest_or_untagged_images_fail(workspace):
    workspace.config["images"]["backend"] = "nginx:latest"
    workspace.config["images"]["frontend"] = "ghcr.io/acme/frontend"
    evaluation = workspace.evaluate()
    violations = run(evaluation, fleet_of(workspace), pack.IMAGES_PINNED)
    assert len(violations) == len([r for r in evaluation.resources if r.type == CONTAINER]) == 10
    by_resource = {v.resource: v for v in violations}
    assert by_resource["gurupi-backend-0"].message == (
        "tenant gurupi: container gurupi-backend-0 image 'nginx:latest' uses the floating tag `latest`; pin a version tag or a digest."
    )
    assert "'ghcr.io/acme/frontend' has no tag, which means `latest`" in by_resource["pirapora-frontend-1"].message
    assert {v.tenant for v in violations} == {"gurupi", "novaroma", "pirapora", "santarita"}


@pytest.mark.parametrize(
    "image, pinned",
    [
        ("nginx:1.27.3-alpine", True),
        ("ghcr.io/acme/backend:1.8.2", True),
        ("registry.local:5000/acme/app:v2.0", True),
        ("acme/app:sha-4f2a9c1", True),
        ("acme/app@sha256:" + "a" * 64, True),
        ("nginx", False),
        ("nginx:latest", False),
        ("nginx:LATEST", False),
        ("registry.local:5000/acme/app", False),
        ("nginx:stable", False),
        ("nginx:alpine", False),
        ("acme/app@sha256:1234", False),
    ],
)
def test_image_pinning_edge_cases(image, pinned):
    args = resource_args(CONTAINER, "gurupi-backend-0", {"image": image}, parent=parent_urn("TenantApp", "gurupi-app"))
    messages = reports(pack.images_pinned, args)
    assert (messages == []) is pinned, messages
    if not pinned:
        assert messages[0].startswith(f"tenant gurupi: container gurupi-backend-0 image {image!r}")


# ---------------------------------------------------------------- data safety


@fails(pack.DATABASE_PROTECTED)
def test_databases_must_be_retained_or_protected(dev_plan, dev_fleet):
    # Without the offline plan's attestation (an engine run without the config file), retain_on_delete is invisible
    violations = run(dev_plan, dev_fleet, pack.DATABASE_PROTECTED, config=policy_config(dev_fleet))
    assert sorted((v.tenant, v.resource) for v in violations) == sorted((t, f"{t}-db-{s.database.server}") for t, s in dev_plan.specs.items())
    assert "santarita-db-shared-1 ('tenant_santarita') is neither protected nor retained on delete" in violations[-1].message
    # A program that stops retaining one database fails for that one only, even with the attestation
    evaluation = mutated(dev_plan, "gurupi-db-shared-1", options={"retainOnDelete": False})
    assert [(v.tenant, v.resource) for v in run(evaluation, dev_fleet, pack.DATABASE_PROTECTED)] == [("gurupi", "gurupi-db-shared-1")]


def test_protect_or_role_skip_flags_also_keep_data():
    protected = resource_args(DATABASE, "gurupi-db-shared-1", {"name": "tenant_gurupi"}, protect=True)
    assert reports(pack.database_protected, protected) == []
    attested = resource_args(DATABASE, "gurupi-db-shared-1", {"name": "tenant_gurupi"}, config={"retainedOnDelete": [f"{DATABASE}::gurupi-db-shared-1"]})
    assert reports(pack.database_protected, attested) == []
    parent = parent_urn("TenantDatabase", "gurupi-database")
    skipping = resource_args(ROLE, "gurupi-role-shared-1", {"name": "tenant_gurupi_app", "skipDropRole": True, "skipReassignOwned": True}, parent=parent)
    assert reports(pack.database_protected, skipping) == []
    dropping = resource_args(ROLE, "gurupi-role-shared-1", {"name": "tenant_gurupi_app", "skipDropRole": True}, parent=parent)
    (message,) = reports(pack.database_protected, dropping)
    assert message.startswith("tenant gurupi: role gurupi-role-shared-1 ('tenant_gurupi_app') would run DROP ROLE/REASSIGN OWNED")


@fails(pack.DATABASE_PUBLIC_REVOKED)
def test_public_connect_must_be_revoked_on_every_database(dev_plan, dev_fleet):
    evaluation = without(dev_plan, "gurupi-db-shared-1-revoke-public")
    evaluation = mutated(evaluation, "santarita-db-shared-1-revoke-public", inputs={"privileges": ["CONNECT"]})
    violations = run(evaluation, dev_fleet, pack.DATABASE_PUBLIC_REVOKED)
    assert [(v.tenant, v.resource) for v in violations] == [("gurupi", "gurupi-db-shared-1"), ("santarita", "santarita-db-shared-1")]
    assert "has no Grant revoking PUBLIC's CONNECT" in violations[0].message
    assert "grants PUBLIC privileges through santarita-db-shared-1-revoke-public" in violations[1].message


@fails(pack.DATABASE_OWNER_NOLOGIN)
def test_a_database_owned_by_a_login_role_or_by_nobody_declared_fails(dev_plan, dev_fleet):
    evaluation = mutated(dev_plan, "gurupi-db-shared-1", inputs={"owner": "tenant_gurupi_app"})  # the app's login role
    evaluation = mutated(evaluation, "pirapora-db-dedicated-1", drop=("owner",))  # the provider's admin
    evaluation = mutated(evaluation, "santarita-owner-role-shared-1", inputs={"login": True})
    violations = run(evaluation, dev_fleet, pack.DATABASE_OWNER_NOLOGIN)
    assert [(v.tenant, v.resource) for v in violations] == [
        ("gurupi", "gurupi-db-shared-1"), ("pirapora", "pirapora-db-dedicated-1"), ("santarita", "santarita-db-shared-1"),
    ]
    assert "is owned by login role gurupi-role-shared-1: the app could DROP it" in violations[0].message
    assert "is owned by the provider admin, not by a NOLOGIN owner role of this stack" in violations[1].message
    assert "is owned by login role santarita-owner-role-shared-1" in violations[2].message


def test_an_owner_role_on_another_server_does_not_count(dev_plan, dev_fleet):
    role = dev_plan.find(ROLE, "novaroma-owner-role-shared-1")
    other_server = dev_plan.find(ROLE, "pirapora-role-dedicated-1").provider
    evaluation = dataclasses.replace(
        dev_plan, resources=[dataclasses.replace(r, provider=other_server) if r is role else r for r in dev_plan.resources]
    )
    assert [v.resource for v in run(evaluation, dev_fleet, pack.DATABASE_OWNER_NOLOGIN)] == ["novaroma-db-shared-1"]


def test_a_revoke_on_another_server_does_not_count(dev_plan, dev_fleet):
    grant = dev_plan.find(GRANT, "novaroma-db-shared-1-revoke-public")
    other_server = dev_plan.find(ROLE, "pirapora-role-dedicated-1").provider
    evaluation = dataclasses.replace(
        dev_plan, resources=[dataclasses.replace(r, provider=other_server) if r is grant else r for r in dev_plan.resources]
    )
    assert [v.resource for v in run(evaluation, dev_fleet, pack.DATABASE_PUBLIC_REVOKED)] == ["novaroma-db-shared-1"]


@fails(pack.ROLE_CONNECTION_LIMIT)
def test_every_role_needs_a_connection_limit(dev_plan, dev_fleet):
    evaluation = mutated(dev_plan, "gurupi-role-shared-1", inputs={"connectionLimit": -1})
    evaluation = mutated(evaluation, "pirapora-role-dedicated-1", drop=("connectionLimit",))
    messages = sorted(v.message for v in run(evaluation, dev_fleet, pack.ROLE_CONNECTION_LIMIT))
    assert messages == [
        "tenant gurupi: role gurupi-role-shared-1 ('tenant_gurupi_app') has connection limit -1; set connection_limit from the plan's db_connections.",
        "tenant pirapora: role pirapora-role-dedicated-1 ('tenant_pirapora_app') has connection limit unset (unlimited); set connection_limit from the plan's db_connections.",
    ]
    zero = resource_args(ROLE, "x-role-s", {"name": "tenant_x_app", "connectionLimit": 0})
    assert reports(pack.role_connection_limit, zero) == []  # 0 is a limit (nobody connects)


# ---------------------------------------------------------------- secrets


@fails(pack.GENERATED_SECRETS_STRONG)
def test_generated_secrets_are_long_and_secret(dev_plan, dev_fleet):
    evaluation = mutated(dev_plan, "novaroma-jwt-secret", inputs={"length": 16})
    evaluation = mutated(evaluation, "novaroma-db-password", options={"additionalSecretOutputs": ["bcryptHash"]})
    messages = sorted(v.message for v in run(evaluation, dev_fleet, pack.GENERATED_SECRETS_STRONG))
    assert messages == [
        "tenant novaroma: generated secret novaroma-db-password: its `result` is not a secret output.",
        "tenant novaroma: generated secret novaroma-jwt-secret: length 16 is below 32.",
    ]
    exact = resource_args(PASSWORD, "x-jwt-secret", {"length": 32}, secret_outputs=["result"])
    assert reports(pack.generated_secrets_strong, exact) == []


@fails(pack.CREDENTIALS_FROM_GENERATED_SECRETS)
def test_passwords_and_jwt_secrets_come_from_generated_randomness(dev_plan, dev_fleet):
    # a literal password (no RandomPassword behind it), a literal JWT secret, a short random behind a role
    role = dev_plan.find(ROLE, "santarita-role-shared-1")
    evaluation = mutated(dev_plan, role.name, options={"dependencies": []})
    backend = dev_plan.find(CONTAINER, "gurupi-backend-0")
    envs = [item if not item.startswith("JWT_SECRET=") else "JWT_SECRET=changeme" for item in backend.raw_inputs["envs"]]
    jwt_secret = dev_plan.find(PASSWORD, "gurupi-jwt-secret").urn
    evaluation = mutated(evaluation, backend.name, inputs={"envs": envs}, options={"dependencies": [d for d in backend.options["dependencies"] if d != jwt_secret]})
    evaluation = mutated(evaluation, "pirapora-db-password", inputs={"length": 12})
    messages = sorted((v.tenant, v.message) for v in run(evaluation, dev_fleet, pack.CREDENTIALS_FROM_GENERATED_SECRETS))
    assert messages == [
        (
            "gurupi",
            "tenant gurupi: container gurupi-backend-0 carries DATABASE_URL, JWT_SECRET, JWT_REFRESH_SECRET but depends on 2 generated secret(s): "
            "each must come from its own RandomPassword, never a literal.",
        ),
        ("gurupi", "tenant gurupi: container gurupi-backend-0: JWT_SECRET is 8 characters, below 32."),
        ("pirapora", "tenant pirapora: container pirapora-backend-0 uses pirapora-db-password, whose length 12 is below 32."),
        ("pirapora", "tenant pirapora: container pirapora-backend-1 uses pirapora-db-password, whose length 12 is below 32."),
        ("pirapora", "tenant pirapora: role pirapora-role-dedicated-1's password comes from pirapora-db-password, whose length 12 is below 32."),
        ("santarita", "tenant santarita: role santarita-role-shared-1's password is not generated (it depends on no RandomPassword): use random.RandomPassword(length>=32)."),
    ]


def test_a_role_password_must_be_a_secret_output(dev_plan, dev_fleet):
    evaluation = mutated(dev_plan, "novaroma-role-shared-1", options={"additionalSecretOutputs": []})
    assert [v.message for v in run(evaluation, dev_fleet, pack.CREDENTIALS_FROM_GENERATED_SECRETS)] == [
        "tenant novaroma: role novaroma-role-shared-1's password is not a secret output."
    ]


# ---------------------------------------------------------------- hostnames and DNS


@fails(pack.HOSTNAMES_ALLOWED)
def test_hostnames_stay_under_the_base_domain_or_declared_domains(dev_plan, dev_fleet):
    route = dev_plan.find(ROUTE, "santarita-route-frontend")
    evaluation = mutated(dev_plan, route.name, inputs={"hosts": [*route.raw_inputs["hosts"], "shop.example.org"]})
    (violation,) = run(evaluation, dev_fleet, pack.HOSTNAMES_ALLOWED)
    assert violation.tenant == "santarita"
    assert violation.message == (
        "tenant santarita: santarita-route-frontend serves 'shop.example.org', which is neither under the base domain "
        "'fleet.localhost' nor one of the domains of tenant santarita (precos.santarita.mg.gov.br)."
    )


def test_hostnames_of_cloudflare_records_are_checked_too():
    config = {"baseDomain": "fleet.example.com", "tenantDomains": {"pirapora": ["compras.pirapora.mg.gov.br"]}}
    parent = parent_urn("TenantDns", "pirapora-dns")
    record = "cloudflare:index/dnsRecord:DnsRecord"
    ok = resource_args(record, "pirapora-dns-compras.pirapora.mg.gov.br", {"name": "compras.pirapora.mg.gov.br"}, parent=parent, config=config)
    assert reports(pack.hostnames_allowed, ok) == []
    bad = resource_args(record, "pirapora-dns-www.pirapora.mg.gov.br", {"name": "www.pirapora.mg.gov.br"}, parent=parent, config=config)
    assert "'www.pirapora.mg.gov.br', which is neither under the base domain" in reports(pack.hostnames_allowed, bad)[0]


@fails(pack.HOSTNAMES_UNIQUE)
def test_a_hostname_belongs_to_one_tenant(dev_plan, dev_fleet):
    route = dev_plan.find(ROUTE, "santarita-route-frontend")
    evaluation = mutated(dev_plan, route.name, inputs={"hosts": [*route.raw_inputs["hosts"], "compras.pirapora.mg.gov.br"]})
    messages = {(v.tenant, v.message) for v in run(evaluation, dev_fleet, pack.HOSTNAMES_UNIQUE)}
    assert messages == {
        ("pirapora", "tenant pirapora: pirapora-route-frontend serves 'compras.pirapora.mg.gov.br', which tenant(s) santarita also serve."),
        ("santarita", "tenant santarita: santarita-route-frontend serves 'compras.pirapora.mg.gov.br', which tenant(s) pirapora also serve."),
        ("santarita", "tenant santarita: santarita-route-frontend serves 'compras.pirapora.mg.gov.br', which belongs to tenant pirapora."),
    }


def test_a_shard_cannot_claim_a_hostname_of_a_tenant_in_another_shard(workspace, dev_fleet):
    workspace.config["tenants"] = ["gurupi"]  # this stack declares gurupi only; pirapora lives in another stack
    evaluation = workspace.evaluate()
    route = evaluation.find(ROUTE, "gurupi-route-frontend")
    evaluation = mutated(evaluation, route.name, inputs={"hosts": [*route.raw_inputs["hosts"], "precos.pirapora.mg.gov.br"]})
    assert [v.message for v in run(evaluation, dev_fleet, pack.HOSTNAMES_UNIQUE)] == [
        "tenant gurupi: gurupi-route-frontend serves 'precos.pirapora.mg.gov.br', which belongs to tenant pirapora."
    ]
    assert run(workspace.evaluate(), dev_fleet, pack.HOSTNAMES_UNIQUE) == []


@fails(pack.DNS_RECORDS_PROXIED)
def test_tenant_dns_records_are_proxied():
    record = "cloudflare:index/dnsRecord:DnsRecord"
    parent = parent_urn("TenantDns", "gurupi-dns")
    props = {"name": "app-gurupi.fleet.example.com", "type": "A", "content": "203.0.113.10", "ttl": 1}
    assert reports(pack.dns_records_proxied, resource_args(record, "gurupi-dns-app", {**props, "proxied": True}, parent=parent)) == []
    assert reports(pack.dns_records_proxied, resource_args(record, "gurupi-dns-app", {**props, "proxied": False}, parent=parent)) == [
        "tenant gurupi: DNS record gurupi-dns-app ('app-gurupi.fleet.example.com', A) has proxied=False; tenant records must be proxied."
    ]
    unset = reports(pack.dns_records_proxied, resource_args("cloudflare:index/record:Record", "gurupi-dns-api", {**props, "type": "CNAME"}, parent=parent))
    assert unset and "proxied=None" in unset[0]
    mx = {"name": "gurupi.fleet.example.com", "type": "MX", "content": "mail.example.com", "proxied": False}
    assert reports(pack.dns_records_proxied, resource_args(record, "gurupi-dns-mx", mx, parent=parent)) == []  # Cloudflare can't proxy MX


# ---------------------------------------------------------------- capacity


@fails(pack.DOCKER_HOST_CAPACITY)
def test_a_fleet_too_large_for_its_docker_host_fails(workspace):
    # 16384 MB and 8 CPUs minus 15 % headroom: 13926.4 MB and 6.8 CPUs usable; the shipped fleet needs 5376 MB and 5 CPUs
    add_tenants(workspace, 4, "enterprise", server="dedicated-1")  # 3072 MB and 3 CPUs each
    violations = run(workspace.evaluate(), fleet_of(workspace), pack.DOCKER_HOST_CAPACITY)
    assert [(v.tenant, v.resource, v.enforcement) for v in violations] == [(None, "docker-host", "mandatory")] * 2
    memory, cpus = (v.message for v in violations)
    assert memory.startswith(
        "docker host docker-host: containers need 17664 MB of memory, above the 13926.4 MB usable (16384 MB declared minus 15% headroom); "
        "largest tenants: extra000 3072, extra001 3072, extra002 3072."
    )
    assert cpus.startswith("docker host docker-host: containers need 17 CPUs, above the 6.8 CPUs usable")


def test_docker_host_capacity_boundary(workspace):
    # basic tenants add 0.5 CPU each: 3 more fit (6.5 <= 6.8), a 4th does not (7.0)
    add_tenants(workspace, 3, "basic")
    assert run(workspace.evaluate(), fleet_of(workspace), pack.DOCKER_HOST_CAPACITY) == []
    add_tenants(workspace, 4, "basic")
    (violation,) = run(workspace.evaluate(), fleet_of(workspace), pack.DOCKER_HOST_CAPACITY)
    assert "containers need 7 CPUs, above the 6.8 CPUs usable" in violation.message


@fails(pack.POSTGRES_CONNECTION_CAPACITY)
def test_a_fleet_too_large_for_its_postgres_server_fails(workspace):
    # shared-1: max_connections 100 minus 10 reserved; the shipped tenants there use 30; basic roles take 5 each
    workspace.config["layers"] = ["database"]  # only what counts here, to keep a large fleet fast
    server = workspace.config["servers"]["shared-1"]
    room = server["max_connections"] - server["reserved_connections"] - 30
    add_tenants(workspace, room // 5, "basic")
    assert run(workspace.evaluate(), fleet_of(workspace), pack.POSTGRES_CONNECTION_CAPACITY) == []  # exactly full
    add_tenants(workspace, room // 5 + 1, "basic")
    evaluation = workspace.evaluate()
    assert len(evaluation.specs) == 5 + room // 5 + 1
    (violation,) = run(evaluation, fleet_of(workspace), pack.POSTGRES_CONNECTION_CAPACITY)
    assert (violation.tenant, violation.resource) == (None, "pg-shared-1")
    assert violation.message.startswith(
        "postgres server shared-1: role connection limits add up to 95, above 90 (max_connections 100 minus 10 reserved); largest tenants: gurupi 10, santarita 10, catasaltas 5."
    )


def test_hundreds_of_tenants_overflow_a_server_sized_for_them(workspace):
    # a production-like server (max_connections 1000, 50 reserved) filled by 200 basic tenants on top of the shipped ones
    workspace.config["layers"] = ["database"]
    workspace.config["servers"]["shared-1"].update(max_connections=1000, reserved_connections=50)
    add_tenants(workspace, 200, "basic")
    fleet = fleet_of(workspace)
    violations = run(workspace.evaluate(), fleet, pack.POSTGRES_CONNECTION_CAPACITY, pack.CAPACITY_UTILIZATION_HIGH)
    assert [(v.policy, v.resource) for v in violations] == [(pack.POSTGRES_CONNECTION_CAPACITY, "pg-shared-1"), (pack.CAPACITY_UTILIZATION_HIGH, "pg-shared-1")]
    assert "add up to 1030, above 950" in violations[0].message
    assert "at 103% of max_connections (1030 of 1000)" in violations[1].message


def test_capacity_of_an_undeclared_host_or_server_fails(dev_plan, dev_fleet):
    config = policy_config(dev_fleet, dev_plan)
    config[pack.DOCKER_HOST_CAPACITY] = {"hosts": {}}
    config[pack.POSTGRES_CONNECTION_CAPACITY] = {"servers": {"pg-shared-1": config[pack.POSTGRES_CONNECTION_CAPACITY]["servers"]["pg-shared-1"]}}
    messages = [v.message for v in run(dev_plan, dev_fleet, pack.DOCKER_HOST_CAPACITY, pack.POSTGRES_CONNECTION_CAPACITY, config=config)]
    assert [m.split(":")[0] for m in messages] == ["docker host docker-host", "postgresql provider pg-dedicated-1"]


# ---------------------------------------------------------------- advisories


@fails(pack.PLAN_OVERRIDES_NEAR_MAX)
def test_overrides_near_the_plan_max_suggest_the_next_plan(workspace):
    workspace.edit("santarita", overrides={"backend": {"memory_mb": 1024, "cpu": 0.9}})  # pro max: 1 CPU / 1024 MB
    workspace.edit("pirapora", overrides={"backend": {"memory_mb": 2048}})  # enterprise is the largest plan
    violations = run(workspace.evaluate(), fleet_of(workspace), pack.PLAN_OVERRIDES_NEAR_MAX)
    assert [(v.tenant, v.resource, v.enforcement, v.message) for v in violations] == [
        (
            "pirapora",
            "pirapora",
            "advisory",
            "tenant pirapora: overrides nearly reach plan enterprise's limits (backend memory 2048 MB is 100% of the max 2048 MB); no larger plan exists: consider a new one.",
        ),
        (
            "santarita",
            "santarita",
            "advisory",
            "tenant santarita: overrides nearly reach plan pro's limits "
            "(backend memory 1024 MB is 100% of the max 1024 MB; backend CPU 0.9 is 90% of the max 1); consider plan enterprise.",
        ),
    ]
    assert not has_mandatory(violations)


def test_suggest_plan_picks_the_smallest_plan_that_covers(dev_fleet):
    plans = policy_config(dev_fleet)[pack.PLAN_OVERRIDES_NEAR_MAX]["plans"]
    small = {"backend": {"cpu": 0.5, "memoryMb": 512, "replicas": 1}, "frontend": {"cpu": 0.25, "memoryMb": 256, "replicas": 1}}
    assert pack.suggest_plan(plans, "basic", small) == "pro"
    assert pack.suggest_plan(plans, "pro", {**small, "backend": {"cpu": 2.0, "memoryMb": 4096, "replicas": 1}}) == "enterprise"
    assert pack.suggest_plan(plans, "enterprise", small) == "pro"  # already covered by a smaller one


@fails(pack.CAPACITY_UTILIZATION_HIGH)
def test_hosts_and_servers_above_80_percent_are_advised(workspace):
    workspace.config["docker_host"]["cpus"] = 6  # 5 CPUs used: 83 % of 6, still within 6 minus 15 % = 5.1
    workspace.config["servers"]["dedicated-1"].update(max_connections=45, reserved_connections=0)  # pirapora's 40 of 45
    violations = run(workspace.evaluate(), fleet_of(workspace))
    assert [(v.policy, v.enforcement, v.resource) for v in violations] == [
        (pack.CAPACITY_UTILIZATION_HIGH, "advisory", "docker-host"),
        (pack.CAPACITY_UTILIZATION_HIGH, "advisory", "pg-dedicated-1"),
    ]
    assert violations[0].message == "docker host docker-host: CPUs at 83% of its capacity (5 of 6 CPUs); plan more capacity."
    assert violations[1].message == "postgres server dedicated-1: role connection limits at 89% of max_connections (40 of 45); plan another server."
    assert not has_mandatory(violations)


def test_every_policy_has_a_failing_case():
    assert set(pack.POLICIES_BY_NAME) == FAILING_CASES


# ---------------------------------------------------------------- report, config, engine parity


def test_violations_are_reported_grouped_by_tenant(workspace):
    workspace.config["images"]["backend"] = "nginx:latest"
    workspace.config["docker_host"]["cpus"] = 4
    violations = run(workspace.evaluate(), fleet_of(workspace))
    assert has_mandatory(violations)
    text = format_violations(violations)
    lines = text.splitlines()
    assert lines[0] == "tenant gurupi"
    assert lines[1] == "  [mandatory] images-pinned: container gurupi-backend-0 image 'nginx:latest' uses the floating tag `latest`; pin a version tag or a digest."
    assert [line for line in lines if not line.startswith("  ")] == [
        "tenant gurupi", "tenant novaroma", "tenant pirapora", "tenant santarita", SHARED,
        "Policies: 6 mandatory and 1 advisory violation(s) over 21 policies; a deploy would be refused.",
    ]
    assert "  [mandatory] docker-host-capacity: docker host docker-host: containers need 5 CPUs" in text
    document = violations_document(violations)
    assert document[0].keys() == {"policy", "enforcement", "tenant", "resource", "message"}
    assert format_violations([]) == "Policies: all 21 passed."


def test_policy_config_is_the_engine_config_file(dev_plan, dev_fleet):
    config = policy_config(dev_fleet, dev_plan)
    assert json.loads(json.dumps(config)) == config
    for policy in pack.ALL_POLICIES:
        required = (policy.config_schema.required or []) if policy.config_schema else []
        assert set(required) <= set(config.get(policy.name, {})), policy.name
        assert set(config.get(policy.name, {})) <= set(policy.config_schema.properties if policy.config_schema else {}), policy.name
    assert config[pack.DOCKER_HOST_CAPACITY]["hosts"] == {derive.DOCKER_PROVIDER_NAME: {"memoryMb": 16384, "cpus": 8.0, "headroomPercent": 15}}
    assert config[pack.POSTGRES_CONNECTION_CAPACITY]["servers"]["pg-shared-1"] == {"server": "shared-1", "maxConnections": 100, "reservedConnections": 10, "memoryMb": 4096}
    assert config[pack.CONTAINER_LIMITS_MATCH_PLAN]["tenants"]["santarita"]["backend"] == {"cpu": 0.5, "memoryMb": 768, "replicas": 1}
    assert config[pack.HOSTNAMES_UNIQUE]["claimedHostnames"]["compras.pirapora.mg.gov.br"] == "pirapora"
    assert f"{DATABASE}::santarita-db-shared-1" in config[pack.DATABASE_PROTECTED]["retainedOnDelete"]


def test_the_engine_analyzer_gives_the_same_verdicts(workspace):
    """Drive the pack's gRPC analyzer in-process, fed the way the engine feeds it, and compare with `check`."""
    from google.protobuf import struct_pb2
    from pulumi.runtime import proto
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    workspace.config["images"]["frontend"] = "nginx"
    workspace.config["docker_host"]["memory_mb"] = 6000
    add_tenants(workspace, 1, "pro")
    workspace.edit("gurupi", overrides={"backend": {"memory_mb": 1024}})
    evaluation, fleet = workspace.evaluate(), fleet_of(workspace)
    config = policy_config(fleet, evaluation)
    offline = {(v.policy, v.enforcement, v.resource, v.message) for v in check(evaluation, fleet, config=config)}
    assert {policy for policy, *_ in offline} == {pack.IMAGES_PINNED, pack.DOCKER_HOST_CAPACITY, pack.CAPACITY_UTILIZATION_HIGH, pack.PLAN_OVERRIDES_NEAR_MAX}

    def struct(value):
        message = struct_pb2.Struct()
        message.update(value)
        return message

    levels = {"mandatory": proto.MANDATORY, "advisory": proto.ADVISORY}

    def level_of(policy: Policy) -> proto.EnforcementLevel.ValueType:
        assert policy.enforcement_level is not None, policy.name  # the pack sets every policy's level
        return levels[policy.enforcement_level.value]

    servicer = _PolicyAnalyzerServicer("tenant-fleet", "0.1.0", pack.ALL_POLICIES, EnforcementLevel.MANDATORY)
    servicer.Configure(
        proto.ConfigureAnalyzerRequest(
            policyConfig={
                policy.name: proto.PolicyConfig(enforcementLevel=level_of(policy), properties=struct(config.get(policy.name, {})))
                for policy in pack.ALL_POLICIES
            }
        ),
        None,
    )
    by_urn = {r.urn: r for r in evaluation.resources}
    urn = {r.urn: evaluation.engine_urn(r) for r in evaluation.resources}
    name_of = {urn[r.urn]: r.name for r in evaluation.resources}

    def analyzer_resource(resource, message_type):
        options = proto.AnalyzerResourceOptions(
            protect=resource.options["protect"],
            deleteBeforeReplace=resource.options["deleteBeforeReplace"],
            deleteBeforeReplaceDefined=resource.options["deleteBeforeReplace"],
            additionalSecretOutputs=resource.options["additionalSecretOutputs"],
            parent=urn.get(resource.parent, ""),
        )
        fields = dict(type=resource.type, properties=struct(resource.raw_inputs), urn=urn[resource.urn], name=resource.name, options=options)
        if resource.provider:
            provider = by_urn[resource.provider.rsplit("::", 1)[0]]
            fields["provider"] = proto.AnalyzerProviderResource(type=provider.type, properties=struct(provider.raw_inputs), urn=urn[provider.urn], name=provider.name)
        if message_type is proto.AnalyzerResource:
            fields.update(parent=urn.get(resource.parent, ""), dependencies=[urn[d] for d in resource.options["dependencies"] if d in urn])
        return message_type(**fields)

    diagnostics = []
    for resource in evaluation.resources:
        request = analyzer_resource(resource, proto.AnalyzeRequest)
        diagnostics += [(d, request.urn) for d in servicer.Analyze(request, None).diagnostics]
    stack_request = proto.AnalyzeStackRequest(resources=[analyzer_resource(r, proto.AnalyzerResource) for r in evaluation.resources])
    diagnostics += [(d, d.urn) for d in servicer.AnalyzeStack(stack_request, None).diagnostics]
    names = {proto.MANDATORY: "mandatory", proto.ADVISORY: "advisory"}
    engine = {
        (d.policyName, names[d.enforcementLevel], name_of.get(subject), d.message.split("\n", 1)[1])
        for d, subject in diagnostics
    }
    assert engine == offline


def test_props_reach_the_pack_as_after_a_protobuf_struct_round_trip(dev_plan):
    from fleet.offline.policies import _as_engine_sends, _through_struct

    for resource in dev_plan.resources:
        assert _as_engine_sends(resource.raw_inputs) == _through_struct(resource.raw_inputs), resource.name


def test_a_route_may_serve_under_the_base_domain_only_its_own_hostnames():
    config = {
        "baseDomain": "fleet.localhost",
        "tenantDomains": {"gurupi": []},
        "tenantHostnames": {"gurupi": ["api-gurupi.fleet.localhost", "app-gurupi.fleet.localhost"]},
    }
    parent = parent_urn("TenantRoutes", "gurupi-proxy")
    own = resource_args(ROUTE, "gurupi-route-frontend", {"hosts": ["app-gurupi.fleet.localhost"]}, parent=parent, config=config)
    assert reports(pack.hostnames_allowed, own) == []
    squat = resource_args(ROUTE, "gurupi-route-frontend", {"hosts": ["app-gurupi.fleet.localhost", "app-santarita.fleet.localhost"]}, parent=parent, config=config)
    (message,) = reports(pack.hostnames_allowed, squat)
    assert "serves 'app-santarita.fleet.localhost', under the base domain 'fleet.localhost', which is not one of its own hostnames" in message


@fails(pack.REDIS_MEMORY_CAPACITY)
def test_the_shared_redis_must_hold_its_tenants_redis_memory(workspace):
    import yaml

    workspace.config["redis"] = {"host": "127.0.0.1", "memory_mb": 256}
    plans_file = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(plans_file.read_text())
    plans["plans"]["pro"].update(redis="shared", redis_memory_mb=128)  # gurupi and santarita: 256 MB, above 256 - 15 %
    plans_file.write_text(yaml.safe_dump(plans, sort_keys=False))
    violations = run(workspace.evaluate(), fleet_of(workspace), pack.REDIS_MEMORY_CAPACITY)
    assert [v.message for v in violations] == [
        "shared redis: 2 tenants' redis_memory_mb add up to 256 MB, above the 217.6 MB usable (256 MB declared minus 15% headroom); "
        "largest: gurupi 128, santarita 128. Raise fleet:redis.memory_mb or give a plan redis: dedicated."
    ]
    workspace.config["redis"]["memory_mb"] = 512
    assert run(workspace.evaluate(), fleet_of(workspace), pack.REDIS_MEMORY_CAPACITY) == []


# ---------------------------------------------------------------- noisy-neighbour limits


@fails(pack.ROLE_TIMEOUTS_BOUNDED)
def test_tenant_login_roles_need_bounded_timeouts(dev_plan, dev_fleet):
    assert run(dev_plan, dev_fleet, pack.ROLE_TIMEOUTS_BOUNDED) == []  # every shipped plan sets them
    evaluation = mutated(dev_plan, "gurupi-role-shared-1", drop=("statementTimeout",))
    evaluation = mutated(evaluation, "pirapora-role-dedicated-1", inputs={"idleInTransactionSessionTimeout": 7_200_000})
    messages = sorted(v.message for v in run(evaluation, dev_fleet, pack.ROLE_TIMEOUTS_BOUNDED))
    assert messages == [
        "tenant gurupi: role gurupi-role-shared-1 ('tenant_gurupi_app') has no statementTimeout: one session could hold the shared server; "
        "set it from the plan's database_limits (fleet.model.db_limits).",
        "tenant pirapora: role pirapora-role-dedicated-1 ('tenant_pirapora_app') has idleInTransactionSessionTimeout 7200000 ms, above the bound 3600000 ms.",
    ]
    owner = resource_args(ROLE, "x-owner-role-s", {"name": "tenant_x_dbo", "login": False, "connectionLimit": 0})
    assert reports(pack.role_timeouts_bounded, owner) == []  # the NOLOGIN owner never runs a query
    jobs = resource_args(ROLE, "x-jobs-role-s", {"name": "tenant_x_job", "statementTimeout": 900_000, "idleInTransactionSessionTimeout": 60_000})
    assert reports(pack.role_timeouts_bounded, jobs) == []  # migrations get the longer jobs bound


@fails(pack.POSTGRES_MEMORY_CAPACITY)
def test_work_mem_times_connections_must_fit_the_servers_memory(workspace):
    # shared-1: gurupi (pro, 10 x 4 MB), santarita (pro, 10 x 4 MB), catasaltas (basic, 5 x 2 MB), novaroma: 90 MB or so
    workspace.config["layers"] = ["database"]
    assert run(workspace.evaluate(), fleet_of(workspace), pack.POSTGRES_MEMORY_CAPACITY) == []  # 4096 MB declared
    workspace.config["servers"]["shared-1"]["memory_mb"] = 256  # half of it, 128 MB, for queries
    workspace.edit("gurupi", plan="enterprise", overrides={"database": {"work_mem_mb": 64}})  # 40 x 64 MB
    (violation,) = run(workspace.evaluate(), fleet_of(workspace), pack.POSTGRES_MEMORY_CAPACITY)
    assert violation.message.startswith("postgres server shared-1: work_mem × connection limit of its tenants' roles adds up to ")
    assert "above 128 MB (50% of its memory_mb 256)" in violation.message and "largest tenants: gurupi 2560" in violation.message
    del workspace.config["servers"]["shared-1"]["memory_mb"]
    assert run(workspace.evaluate(), fleet_of(workspace), pack.POSTGRES_MEMORY_CAPACITY) == []  # undeclared: not checked
