"""`fleet schema`: JSON Schemas of tenant files and the plan catalog, for editors.
"""


from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fleet.errors import EXIT_OK
from fleet.model.spec import PlanCatalog, TenantSpec


def cmd_schema(args: argparse.Namespace) -> int:
    """Write the JSON Schemas of tenant files and the plan catalog (for editors' completion)."""

    schemas = {"tenant.schema.json": TenantSpec.model_json_schema(), "plans.schema.json": PlanCatalog.model_json_schema()}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, schema in schemas.items():
            (out / name).write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"wrote {out / name}")
    else:
        json.dump(schemas, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    return EXIT_OK


def register(verbs) -> None:
    """Add the `schema` verb."""
    schema = verbs.add_parser("schema", help="print or write the JSON Schemas of the YAML files")
    schema.add_argument("--out", help="folder to write tenant.schema.json and plans.schema.json into")
    schema.set_defaults(handler=cmd_schema)
