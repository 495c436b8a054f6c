"""The documentation generated from the models stays in sync with them."""

from __future__ import annotations

import json

from fleet.model.reference import END, START, readme_block
from fleet.model.spec import PlanCatalog, TenantSpec
from fleet.paths import PROJECT_ROOT


def test_readme_config_reference_matches_the_models():
    text = (PROJECT_ROOT / "README.md").read_text()
    block = text[text.index(START) : text.index(END) + len(END)]
    assert block == readme_block(), "regenerate the README's config reference from fleet.model.reference"


def test_committed_json_schemas_match_the_models():
    assert json.loads((PROJECT_ROOT / "docs/tenant.schema.json").read_text()) == TenantSpec.model_json_schema()
    assert json.loads((PROJECT_ROOT / "docs/plans.schema.json").read_text()) == PlanCatalog.model_json_schema()


def test_every_config_key_is_described():
    for model in (TenantSpec, PlanCatalog):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"
