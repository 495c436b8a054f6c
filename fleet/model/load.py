"""Read tenant files, the plan catalog and the stack config into the models, collecting every problem.

YAML is read safely (no tags, no duplicate keys); `load_fleet` raises one `SpecError` listing all
problems, each with file, tenant and field, so nothing is declared from a bad spec.
"""


from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Optional

import yaml
from pydantic import (
    ValidationError,
)

from fleet.errors import Problem, SpecError
from fleet.model.spec import (
    PLAN_CATALOG_FILE,
    SECRET_PLACEHOLDER,
    Environment,
    Fleet,
    Plan,
    PlanCatalog,
    TenantSpec,
)
from fleet.model.validate import check_environment_plans, check_fleet, check_migration_sources, check_references, check_rollout

# ---------------------------------------------------------------- YAML reading


if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser: ~4x faster on 1,000 files


class _UniqueKeyLoader(_SafeLoader):
    """A safe loader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


MAX_FILE_BYTES = 256 * 1024
"""A tenant file, the plan catalog or a stack config larger than this is refused before it is parsed."""
MAX_PROBLEMS_PER_FILE = 20
"""Problems listed per file; the rest are counted in one more line."""


def read_yaml(path: Path, problems: list[Problem], display: str, tenant: Optional[str] = None) -> Any:
    """Parse one YAML file; a syntax error, duplicate key, empty, oversized or non-UTF-8 file becomes a problem and None."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.append(Problem(display, tenant, "", f"the file is {size:,} bytes; at most {MAX_FILE_BYTES:,} are read (is it the right file?)"))
            return None
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        problems.append(Problem(display, tenant, "", f"cannot read: {error.strerror}"))
        return None
    except UnicodeDecodeError as error:
        problems.append(Problem(display, tenant, "", f"not UTF-8 text (byte {error.start}): save the file as UTF-8"))
        return None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        problems.append(Problem(display, tenant, "", f"malformed YAML: {line}{getattr(error, 'problem', None) or error}"))
        return None
    if data is None:
        problems.append(Problem(display, tenant, "", "the file is empty"))
        return None
    return data


def _field_path(location: tuple) -> str:
    return ".".join(str(part) for part in location)


def model_problems(error: ValidationError, display: str, tenant: Optional[str], prefix: str = "") -> list[Problem]:
    problems = []
    for item in error.errors():
        field = _field_path(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling)"
        elif item["type"] == "missing":
            message = "required"
        problems.append(Problem(display, tenant, f"{prefix}{field}", message))
    return problems


# ---------------------------------------------------------------- loaders


def environment_from_mapping(raw: dict[str, Any], display: str, problems: list[Problem]) -> Optional[Environment]:
    """Validate the `fleet:` config values (keys without the namespace) into an Environment."""
    try:
        return Environment.model_validate(raw)
    except ValidationError as error:
        problems.extend(model_problems(error, display, None, prefix="fleet:"))
        return None


def stack_config_mapping(stack_file: Path, problems: list[Problem], display: str) -> dict[str, Any]:
    """The `fleet:` values of a `Pulumi.<stack>.yaml`; encrypted values become a placeholder."""
    data = read_yaml(stack_file, problems, display)
    if data is None:
        return {}
    config = data.get("config", {}) if isinstance(data, dict) else None
    if not isinstance(config, dict):
        problems.append(Problem(display, None, "config", "must be a mapping"))
        return {}

    def reveal(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"secure"}:
            return SECRET_PLACEHOLDER
        if isinstance(value, dict):
            return {key: reveal(item) for key, item in value.items()}
        if isinstance(value, list):
            return [reveal(item) for item in value]
        return value

    return {key.split(":", 1)[1]: reveal(value) for key, value in config.items() if key.startswith("fleet:")}


def load_plans(tenants_dir: Path, problems: list[Problem], root: Path) -> dict[str, Plan]:
    """Read and validate the plan catalog."""
    path = tenants_dir / PLAN_CATALOG_FILE
    display = display_path(path, root)
    data = read_yaml(path, problems, display)
    if data is None:
        return {}
    try:
        return dict(PlanCatalog.model_validate(data).plans)
    except ValidationError as error:
        problems.extend(model_problems(error, display, None))
        return {}


def tenant_files(tenants_dir: Path) -> list[Path]:
    """Tenant files: every `*.yaml`/`*.yml` in the folder except `_`-prefixed catalog files."""
    files = [p for p in tenants_dir.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith("_")]
    return sorted(files)


def load_tenant(path: Path, problems: list[Problem], root: Path, unparsed: Optional[list] = None) -> Optional[TenantSpec]:
    """Read and validate one tenant file on its own (cross-tenant checks come later); a mapping that fails goes to `unparsed`."""
    display = display_path(path, root)
    stem = path.stem
    data = read_yaml(path, problems, display, tenant=stem)
    if data is None:
        return None
    if not isinstance(data, dict):
        problems.append(Problem(display, stem, "", f"must be a mapping of keys, not a {type(data).__name__}"))
        return None
    tenant_label = str(data.get("name") or stem)
    try:
        tenant = TenantSpec.model_validate(data)
    except ValidationError as error:
        found = model_problems(error, display, tenant_label)
        problems.extend(found[:MAX_PROBLEMS_PER_FILE])
        if len(found) > MAX_PROBLEMS_PER_FILE:
            problems.append(Problem(display, tenant_label, "", f"... and {len(found) - MAX_PROBLEMS_PER_FILE} more problem(s) in this file"))
        if unparsed is not None:
            unparsed.append((display, tenant_label, data))
        return None
    if tenant.name != stem:
        problems.append(Problem(display, tenant.name, "name", f"must equal the file name ({stem!r})"))
        return None
    return tenant


def load_fleet(
    tenants_dir: Path,
    environment: Environment | dict[str, Any],
    *,
    root: Optional[Path] = None,
    environment_display: str = "stack config",
    shard: Optional[Collection[str]] = None,
) -> Fleet:
    """Load the plan catalog and every tenant file, check them against the environment, raise SpecError with every problem.

    `shard`: read only the files of these tenants (by file name), for an offline plan evaluated in shards. The
    checks that span tenants then span only these; the caller checks the whole fleet (fleet.offline.shards does).
    """
    root = root or tenants_dir.parent
    problems: list[Problem] = []
    env: Optional[Environment]
    if isinstance(environment, dict):
        env = environment_from_mapping(environment, environment_display, problems)
    else:
        env = environment
    plans = load_plans(tenants_dir, problems, root)
    tenants: list[TenantSpec] = []
    unparsed: list[tuple[str, str, dict]] = []
    if not tenants_dir.is_dir():
        problems.append(Problem(display_path(tenants_dir, root), None, "", "tenants folder not found"))
    else:
        wanted = set(shard) if shard is not None else None
        for path in tenant_files(tenants_dir):
            if wanted is not None and path.stem not in wanted:
                continue
            tenant = load_tenant(path, problems, root, unparsed)
            if tenant is not None:
                tenants.append(tenant)
    problems.extend(check_migration_sources(plans, tenants, root, lambda t: display_path(tenant_path(tenants_dir, t), root)))
    if env is not None:
        problems.extend(check_environment_plans(env, plans, environment_display))
        if shard is None:
            problems.extend(check_rollout(env, tenants, environment_display))
        problems.extend(check_fleet(env, plans, tenants, lambda t: display_path(tenant_path(tenants_dir, t), root)))
        problems.extend(check_references(env, plans, unparsed))
    if problems:
        raise SpecError(problems)
    assert env is not None, "an environment that failed validation has recorded its problems"
    return Fleet(env, plans, tuple(sorted(tenants, key=lambda t: t.name)))


def tenant_path(tenants_dir: Path, tenant: TenantSpec) -> Path:
    for suffix in (".yaml", ".yml"):
        path = tenants_dir / f"{tenant.name}{suffix}"
        if path.exists():
            return path
    return tenants_dir / f"{tenant.name}.yaml"


def display_path(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
