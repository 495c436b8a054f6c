"""Provider plugins are installed where they can be downloaded, and a machine that can't says so and goes on.

A fake `pulumi` records the calls: `plugin ls` answers from what it has installed, `plugin install` either
installs (records) or fails as a machine without the plugin downloads does.
"""

from __future__ import annotations

import stat

import pytest

from fleet.engine import plugins
from fleet.paths import PROJECT_ROOT

FAKE = """#!/bin/sh
state="{state}"
if [ "$1" = plugin ] && [ "$2" = ls ]; then
  printf '['; sep=''
  while read -r name version; do printf '%s{{"kind": "resource", "name": "%s", "version": "%s"}}' "$sep" "$name" "$version"; sep=','; done < "$state/installed"
  printf ']'; exit 0
fi
if [ "$1" = plugin ] && [ "$2" = install ]; then
  echo "$3 $4 $5" >> "$state/calls"
  if [ -f "$state/offline" ]; then echo "dial tcp: lookup get.pulumi.com: no such host" >&2; exit 1; fi
  echo "$4 $5" >> "$state/installed"
  exit 0
fi
exit 2
"""


@pytest.fixture
def fake_pulumi(tmp_path, monkeypatch):
    state = tmp_path / "state"
    state.mkdir()
    (state / "installed").write_text("")
    binary = tmp_path / "pulumi"
    binary.write_text(FAKE.format(state=state))
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(plugins, "ENGINE_PATH", binary)
    monkeypatch.setattr(plugins, "check_engine", lambda: "3.259.0")
    return state


def _pinned() -> dict[str, str]:
    pins = {}
    for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith("pulumi-") and "==" in line and not line.startswith("pulumi-policy"):
            name, version = line.split("==")
            pins[name.removeprefix("pulumi-")] = version
    return pins


def test_the_missing_plugins_are_installed_at_the_pinned_versions(fake_pulumi):
    installed, failed = plugins.install_plugins()
    pins = _pinned()
    assert sorted(installed) == sorted(f"{name} {version}" for name, version in pins.items()) and failed == []
    calls = sorted((fake_pulumi / "calls").read_text().splitlines())
    assert calls == sorted(f"resource {name} {version}" for name, version in pins.items())
    assert plugins.install_plugins() == ([], [])  # nothing missing: nothing downloaded again
    assert len((fake_pulumi / "calls").read_text().splitlines()) == len(pins)


def test_a_machine_without_the_downloads_is_told_once_and_keeps_the_offline_path(fake_pulumi):
    (fake_pulumi / "offline").touch()
    installed, failed = plugins.install_plugins()
    assert installed == [] and sorted(failed) == sorted(f"{n} {v}" for n, v in _pinned().items())
    assert (fake_pulumi / "installed").read_text() == ""


def test_the_verb_exits_3_naming_the_plugins_it_could_not_get(fake_pulumi, monkeypatch, capsys):
    from fleet.cli.main import main

    (fake_pulumi / "offline").touch()
    assert main(["plugins", "install"]) == 3
    err = capsys.readouterr().err
    assert "could not download provider plugin(s)" in err and "postgresql 3.18.2" in err
