"""One error base: every expected failure is a FleetError, printed without a traceback, exiting with its code."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import components
import fleet
from fleet.cli import main as cli_main
from fleet.errors import EXIT_FAILED, EXIT_INVALID, EXIT_NOT_DEPLOYED, EXIT_OK, FleetError, InputError
from fleet.paths import PROJECT_ROOT


def _all_modules():
    for package in (fleet, components):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__"):
                yield importlib.import_module(info.name)


def test_every_error_class_of_the_project_derives_from_fleet_error():
    errors = {
        f"{value.__module__}.{value.__name__}"
        for module in _all_modules()
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == module.__name__
    }
    assert errors, "no error classes found"
    strays = [name for name in errors if not issubclass(_resolve(name), FleetError)]
    assert not strays, f"not FleetErrors: {strays}"
    for name in errors:
        cls = _resolve(name)
        if issubclass(cls, FleetError):
            assert cls.exit_code in (EXIT_FAILED, EXIT_INVALID, EXIT_NOT_DEPLOYED), name


def _resolve(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_no_error_overwrites_the_exit_code_the_cli_exits_with():
    # A tool's own exit code is kept as `command_exit_code`; `exit_code` is the CLI's.
    offenders = [
        str(path.relative_to(PROJECT_ROOT))
        for folder in ("fleet", "components")
        for path in (PROJECT_ROOT / folder).rglob("*.py")
        if re.search(r"self\.exit_code\s*=", path.read_text(encoding="utf-8"))
    ]
    assert not offenders


@pytest.mark.parametrize(("error", "code"), [(FleetError("broken"), EXIT_FAILED), (InputError("odd"), EXIT_INVALID)])
def test_main_prints_a_fleet_error_as_one_line_and_exits_with_its_code(monkeypatch, capsys, error, code):
    from fleet.cli import schema

    def fail(_args):
        raise error

    monkeypatch.setattr(schema, "cmd_schema", fail)
    assert cli_main.main(["schema"]) == code
    assert capsys.readouterr().err == f"Error: {error}\n"
    assert EXIT_OK == 0
