"""Every verb, given odd arguments, a missing or unreadable file, or a server that is down: one line, no traceback.

Part of the hardening sweep: `main` must turn every expected failure into `Error: ...` and a non-zero exit.
The servers "down" here are loopback ports nobody listens on.
"""

from __future__ import annotations

import pytest

from fleet.bench.servers import free_port
from fleet.cli.main import main


@pytest.fixture
def down_env(monkeypatch, tmp_path):
    """Secrets from the environment, and nothing listening where the dev stack's servers would be."""
    monkeypatch.setenv("FLEET_SERVER_PASSWORD_SHARED_1", "x")
    monkeypatch.setenv("FLEET_SERVER_PASSWORD_DEDICATED_1", "x")
    return tmp_path


def _cases(tmp_path):
    unreadable = tmp_path / "unreadable.json"
    unreadable.write_text("{}")
    unreadable.chmod(0)
    return [
        ["plan", "--stack", "nope"],
        ["plan", "--root", str(tmp_path / "nowhere")],
        ["plan", "--tenant", ""],
        ["up", "--stack", "nope"],
        ["up", "--stack", "dev.gurupi"],
        ["changed", "--stack", "dev"],
        ["migrate-stacks", "--stack", "dev", "--yes"],
        ["guard", str(tmp_path / "missing.json")],
        ["guard", str(tmp_path)],
        ["restore", "gurupi", "--from", str(tmp_path / "missing.dump")],
        ["restore", "gurupi", "--from", str(tmp_path), "--into", ""],
        ["restore", "nobody", "--from", str(unreadable), "--secrets", "env"],
        ["backup", "--tenant", "nobody", "--secrets", "env"],
        ["verify", "--tenant", "nobody", "--secrets", "env"],
        ["status", "--tenant", "nobody", "--secrets", "env"],
        ["policy-config", "--stack", "nope"],
        ["schema", "--out", str(unreadable / "x")],
        ["admin-credentials", "gurupi", "--stack", "nope"],
        ["unlock", "--stack", "dev", "--backend", str(tmp_path / "state")],
    ]


@pytest.mark.parametrize("index", range(19))
def test_no_verb_shows_a_traceback(index, down_env, capsys):
    argv = _cases(down_env)[index]
    code: str | int | None
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refusing an argument: its own usage line, exit 2
        code = exit_.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, (argv, err)
    if argv[0] != "unlock":
        assert code != 0, (argv, err)
        assert err.strip(), argv


def test_a_server_that_is_down_is_one_line_per_tenant(down_env, capsys, monkeypatch):
    monkeypatch.setenv("FLEET_DATABASE_PASSWORD_GURUPI", "x")
    port = free_port()  # nothing listens here
    code = main(["verify", "--tenant", "gurupi", "--no-http", "--secrets", "env", "--proxy", f"127.0.0.1:{port}"])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err + out
