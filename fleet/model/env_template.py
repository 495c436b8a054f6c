"""Env var values with references to derived facts: `postgres://${db.user}@${db.host}:${db.port}/${db.name}`.

A reference is `${<fact>}` with a fact from FACTS; `$$` is a literal `$`. Parsing happens at validation
(an unknown fact is a problem naming the file, the tenant and the field); rendering happens in the program,
where some facts are Outputs (the database's address follows a move) and some are secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from fleet.errors import FleetError

FACTS: dict[str, str] = {
    "tenant.name": "the tenant's key",
    "tenant.display_name": "its display name",
    "hostnames.api": "api-<name>.<base_domain>",
    "hostnames.app": "app-<name>.<base_domain>",
    "urls.api": "the backend's public URL",
    "urls.app": "the frontend's public URL",
    "db.host": "the address the app reaches its database at (follows a move)",
    "db.port": "its port (follows a move)",
    "db.name": "the database's name",
    "db.user": "the app's login role",
    "db.password": "its password (secret)",
    "db.sslmode": "the server's sslmode",
    "db.url": "the whole postgresql:// URL, as DATABASE_URL (secret)",
    "redis.url": "the tenant's REDIS_URL (secret; plans with redis: shared or dedicated)",
    "redis.prefix": "its key prefix, tenant:<name>: (plans with redis: shared or dedicated)",
}
"""Every fact a value may reference, with what it is (docs/env.md lists them too)."""

SECRET_FACTS = frozenset({"db.password", "db.url", "redis.url"})
"""Facts whose value is a secret: an env var referencing one is a secret env var."""

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN = re.compile(r"\$\$|\$\{([^}]*)\}|\$")


@dataclass(frozen=True)
class Ref:
    """A reference to a fact inside a template."""

    fact: str


Part = Union[str, Ref]


class TemplateError(FleetError, ValueError):
    """A template that does not parse or names an unknown fact."""


def parse(template: str) -> list[Part]:
    """The literal text and references of `template`; raises TemplateError naming what is wrong."""
    parts: list[Part] = []
    position = 0
    for match in _TOKEN.finditer(template):
        if match.start() > position:
            parts.append(template[position : match.start()])
        token = match.group(0)
        if token == "$$":
            parts.append("$")
        elif token == "$":
            raise TemplateError(f"a lone '$' at {match.start()}: write $$ for a dollar sign, ${{fact}} for a reference")
        else:
            fact = match.group(1).strip()
            if fact not in FACTS:
                close = [name for name in FACTS if name.split(".")[0] == fact.split(".")[0]] or list(FACTS)
                raise TemplateError(f"unknown reference ${{{fact}}}; known: {', '.join(close)}")
            parts.append(Ref(fact))
        position = match.end()
    if position < len(template):
        parts.append(template[position:])
    return parts


def references(template: str) -> set[str]:
    """The facts `template` references."""
    return {part.fact for part in parse(template) if isinstance(part, Ref)}


def render(template: str, facts: dict[str, str]) -> str:
    """`template` with every reference replaced by its fact's value (all must be given)."""
    return "".join(part if isinstance(part, str) else str(facts[part.fact]) for part in parse(template))
