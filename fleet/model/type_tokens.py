"""Resource type tokens, defined once: the project's components and the resources it declares.

The policy pack keeps its own copy (it imports only pulumi_policy); a unit test checks that they agree.
The dynamic providers' tokens follow from their module and class names (`pulumi-python:dynamic/<module>:<Class>`).
"""

from __future__ import annotations

PROJECT_NAME = "tenant-fleet"
"""The Pulumi project: part of every URN (`urn:pulumi:<stack>::tenant-fleet::<types>::<name>`)."""
COMPONENT_TYPE = "tenant-fleet:index:{}"
"""The project's components: `COMPONENT_TYPE.format("Tenant")`."""
TENANT_TYPE = COMPONENT_TYPE.format("Tenant")
STACK = "pulumi:pulumi:Stack"

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
DATABASE = "postgresql:index/database:Database"
ROLE = "postgresql:index/role:Role"
GRANT = "postgresql:index/grant:Grant"
DEFAULT_PRIVILEGES = "postgresql:index/defaultPrivileges:DefaultPrivileges"
PASSWORD = "random:index/randomPassword:RandomPassword"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
CADDY_ROUTE = "pulumi-python:dynamic/caddy:CaddyRoute"
CADDY_SERVER = "pulumi-python:dynamic/caddy:CaddyServer"
PLACEMENT = "pulumi-python:dynamic/postgres:DatabasePlacement"
PURGE = "pulumi-python:dynamic/postgres:TenantPurge"
HANDOVER = "pulumi-python:dynamic/postgres:OwnerHandover"
ROLE_SETTINGS = "pulumi-python:dynamic/role_settings:RoleSettings"
REGISTRY_TABLE = "pulumi-python:dynamic/registry:TenantRegistryTable"
REGISTRY_ROW = "pulumi-python:dynamic/registry:TenantRegistryRow"

KUBE_NAMESPACE = "kubernetes:core/v1:Namespace"
KUBE_QUOTA = "kubernetes:core/v1:ResourceQuota"
KUBE_LIMIT_RANGE = "kubernetes:core/v1:LimitRange"
KUBE_SECRET = "kubernetes:core/v1:Secret"
KUBE_SERVICE = "kubernetes:core/v1:Service"
KUBE_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
KUBE_JOB = "kubernetes:batch/v1:Job"
KUBE_NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
KUBE_INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
KUBE_DISRUPTION_BUDGET = "kubernetes:policy/v1:PodDisruptionBudget"
KUBE_READY_PODS = "pulumi-python:dynamic/kube_pods:ReadyPods"
KUBERNETES_APP = COMPONENT_TYPE.format("KubernetesApp")
