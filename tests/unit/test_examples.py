"""Every example fleet under examples/ (one per seed system) plans cleanly: its files validate against the strict
schema (an unknown key is an error, so nothing the seeds need is silently dropped) and no mandatory policy fails."""

from __future__ import annotations

import json

import pytest

from fleet.cli.main import main
from fleet.paths import PROJECT_ROOT

EXAMPLES = sorted(path.parent for path in (PROJECT_ROOT / "examples").glob("*/Pulumi.*.yaml"))


def test_there_is_an_example_per_seed_system():
    assert len(EXAMPLES) >= 5, [path.name for path in EXAMPLES]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_each_example_plans_cleanly(example, capsys):
    (stack_file,) = example.glob("Pulumi.*.yaml")
    stack = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
    code = main(["plan", "--root", str(example), "--stack", stack, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out[-2000:]
    document = json.loads(out)
    assert document["tenants"] and not [v for v in document["policies"]["violations"] if v["enforcement"] == "mandatory"]
    assert (example / "README.md").is_file()
