"""The README's config reference, generated from the models' field descriptions.

`tests/unit/test_docs.py` keeps the README block in sync with `readme_block()`.
"""


from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from fleet.model.spec import Environment, PlanCatalog, TenantSpec

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _nested_model(argument)
        if found is not None:
            return found
    return None


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation).replace("typing.", "")
    return text.replace("|", "or").replace("NoneType", "null")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        factory = typing.cast("typing.Callable[[], Any]", field.default_factory)  # the models' factories take no validated data
        value = factory()
        return f"`{value!r}`" if not isinstance(value, BaseModel) else "see below"
    return f"`{field.default!r}`"


def _rows(model: type[BaseModel], prefix: str, seen: set) -> list[str]:
    rows = []
    nested = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        child = _nested_model(field.annotation)
        kind = (f"map of {child.__name__}" if _is_mapping(field.annotation) else child.__name__) if child else _type_name(field.annotation)
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | {kind} | {_default(field)} | {description} |")
        if child is not None and child not in seen:
            nested.append((child, key + ("." if not _is_mapping(field.annotation) else ".<key>.")))
    for child, child_prefix in nested:
        seen.add(child)
        rows.extend(_rows(child, child_prefix, seen))
    return rows


def _is_mapping(annotation: Any) -> bool:
    return typing.get_origin(annotation) is dict


def _table(title: str, model: type[BaseModel], prefix: str) -> str:
    header = "| key | type | default | meaning |\n|---|---|---|---|"
    return f"#### {title}\n\n{header}\n" + "\n".join(_rows(model, prefix, {model})) + "\n"


def config_reference() -> str:
    """Markdown tables for tenant files, the plan catalog and the stack config."""
    return "\n".join(
        [
            _table("Tenant file (`tenants/<name>.yaml`)", TenantSpec, ""),
            _table("Plan catalog (`tenants/_plans.yaml`)", PlanCatalog, ""),
            _table("Stack config (`Pulumi.<stack>.yaml`, namespace `fleet:`)", Environment, "fleet:"),
        ]
    )


def readme_block() -> str:
    """The block between the markers in README.md."""
    return f"{START}\n{config_reference()}{END}"
