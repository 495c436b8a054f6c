"""The real engine, driven through fleet.engine: lifecycle, secrets in state, plugin checks.

No mocks: each test runs the engine built by ./scripts/setup against a file backend in a
temporary directory. Without the engine these tests fail (never skip), naming the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

from fleet.engine import driver, plugins
from tests.e2e.engine_probe import Probe

STACK = "e2e-engine"
OUTPUT_SECRET = "probe-output-plaintext-4f1c9e"
CONFIG_SECRET = "probe-config-plaintext-7b20d3"
PASSWORD_SECRET = "probe-password-plaintext-c81a55"
DYNAMIC_TYPE = "pulumi-python:dynamic:Resource"
COMPONENT_TYPE = "tenant-fleet:test:Probe"
# The marker the engine writes in place of a secret value, next to its "ciphertext".
SECRET_SIG = "4dabf18193072939515e22adb298388d"


def probe_program(size: int, ledger_dir: Path):
    """An inline program: one component with a dynamic child, a secret output, a secret config value."""

    def program() -> None:
        config = pulumi.Config()
        probe = Probe(
            "probe",
            size=size,
            ledger_dir=str(ledger_dir),
            password=pulumi.Output.secret(PASSWORD_SECRET),
        )
        pulumi.export("size", probe.size)
        pulumi.export("token", pulumi.Output.secret(OUTPUT_SECRET))
        pulumi.export("apiToken", config.require_secret("apiToken"))
        pulumi.export("region", config.require("region"))

    return program


@pytest.fixture(scope="module")
def engine_ready() -> str:
    """The engine's version; fails (doesn't skip) with the set-up hint when it is missing."""
    try:
        return driver.check_engine()
    except driver.EngineMissing as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="module")
def backend_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("backend")


@pytest.fixture(scope="module")
def ledger_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ledger")


class Engine:
    """The module's stack, reopened for every step as the CLI does.

    The engine's output goes to stdout, which pytest shows when a test fails.
    """

    first_up: dict
    """The result of the module's first `up` (set by the `deployed` fixture)."""

    def __init__(self, backend_dir: Path, ledger_dir: Path) -> None:
        self.backend_dir = backend_dir
        self.ledger_dir = ledger_dir

    def stack(self, size: int):
        return driver.stack_for(
            STACK,
            probe_program(size, self.ledger_dir),
            backend_dir=self.backend_dir,
            config={"region": "local"},
            secrets={"apiToken": CONFIG_SECRET},
        )

    def run(self, op: str, size: int = 1, **options) -> dict:
        print(f"--- {op} (size={size})")
        return driver.run(op, self.stack(size), on_output=print, **options)

    def state(self) -> dict:
        """The stack's checkpoint as the file backend stores it."""
        files = list((self.backend_dir / ".pulumi" / "stacks").rglob(f"{STACK}.json"))
        assert len(files) == 1, f"expected one checkpoint for {STACK}, found {files}"
        return json.loads(files[0].read_text())

    def resources(self) -> list[dict]:
        return self.state()["checkpoint"].get("latest", {}).get("resources") or []

    def ledger(self) -> dict:
        path = self.ledger_dir / "probe.json"
        return json.loads(path.read_text()) if path.exists() else {}


@pytest.fixture(scope="module")
def deployed(engine_ready, backend_dir, ledger_dir):
    """The probe stack after a first `up`; destroyed again at the end of the module."""
    runner = Engine(backend_dir, ledger_dir)
    runner.first_up = runner.run("up", size=1)
    yield runner
    driver.run("destroy", runner.stack(1), on_output=None)


def test_the_engine_and_its_shims_are_installed():
    """check_engine() also refuses an engine older than engine/VERSION."""
    try:
        version = driver.check_engine()
    except driver.EngineMissing as exc:
        problem = str(exc)
    else:
        assert version
        return
    pytest.fail(problem, pytrace=False)


def by_type(resources: list[dict], type_: str) -> list[dict]:
    return [resource for resource in resources if resource["type"] == type_]


def test_up_creates_the_component_its_dynamic_child_and_outputs(deployed):
    result = deployed.first_up
    assert result["operation"] == "up"
    assert result["changes"].get("create", 0) >= 3, result  # stack, component, dynamic resource
    assert result["duration_s"] > 0
    assert result["outputs"]["size"] == 1
    assert result["outputs"]["region"] == "local"
    assert result["outputs"]["token"] == "[secret]", "run() must not hand secret outputs to callers in clear"
    assert result["outputs"]["apiToken"] == "[secret]"

    resources = deployed.resources()
    (component,) = by_type(resources, COMPONENT_TYPE)
    (entry,) = by_type(resources, DYNAMIC_TYPE)
    assert entry["parent"] == component["urn"]
    assert entry["id"] == "ledger-probe"
    # The provider really ran, in the shim's process.
    assert deployed.ledger() == {"size": 1, "revision": 1}


def test_second_preview_and_refresh_show_no_changes(deployed):
    preview = deployed.run("preview", size=1)
    assert set(preview["changes"]) == {"same"}, preview
    assert preview["changes"]["same"] >= 3

    refresh = deployed.run("refresh", size=1)
    assert set(refresh["changes"]) <= {"same"}, refresh


def test_update_changes_the_dynamic_resource_in_place(deployed):
    before = {r["urn"]: r.get("id") for r in deployed.resources()}

    preview = deployed.run("preview", size=2)
    assert preview["changes"].get("update") == 1, preview
    assert not {"create", "delete", "replace", "create-replacement", "delete-replaced"} & set(preview["changes"])

    result = deployed.run("up", size=2)
    assert result["changes"].get("update") == 1, result
    assert result["outputs"]["size"] == 2
    after = {r["urn"]: r.get("id") for r in deployed.resources()}
    assert after == before, "an in-place update must keep every URN and ID"
    assert deployed.ledger() == {"size": 2, "revision": 2}

    assert set(deployed.run("preview", size=2)["changes"]) == {"same"}


def test_secrets_are_encrypted_in_the_state_files(deployed):
    backend_text = "\n".join(
        path.read_text(errors="replace") for path in deployed.backend_dir.rglob("*") if path.is_file()
    )
    for plaintext in (OUTPUT_SECRET, CONFIG_SECRET, PASSWORD_SECRET):
        assert plaintext not in backend_text, f"secret {plaintext!r} is in the backend in clear"

    (stack_resource,) = by_type(deployed.resources(), "pulumi:pulumi:Stack")
    token = stack_resource["outputs"]["token"]
    assert token[SECRET_SIG] == "1b47061264138c4ac30d75fd1eb44270" and token["ciphertext"], token
    assert token["ciphertext"] in backend_text
    (entry,) = by_type(deployed.resources(), DYNAMIC_TYPE)
    assert SECRET_SIG in entry["inputs"]["password"], "a secret input must stay a secret in state"

    # The ciphertext is the secret: the passphrase decrypts it back.
    outputs = deployed.stack(2).outputs()
    assert outputs["token"].secret and outputs["token"].value == OUTPUT_SECRET
    assert outputs["apiToken"].value == CONFIG_SECRET


def test_a_locked_stack_is_a_readable_engine_error(deployed):
    lock_dir = deployed.backend_dir / ".pulumi" / "locks" / "organization" / driver.PROJECT_NAME / STACK
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_dir / "e2e-test-lock.json"
    lock.write_text(json.dumps({"pid": 1, "username": "e2e", "hostname": "e2e", "timestamp": "2026-01-01T00:00:00Z"}))
    try:
        with pytest.raises(driver.EngineError) as caught:
            deployed.run("up", size=2)
    finally:
        lock.unlink()
    assert caught.value.reason == "concurrent-update", caught.value
    assert "locked" in str(caught.value)
    assert str(lock_dir) in str(caught.value), "the message must say which lock to delete"


def test_a_failing_program_is_one_readable_error(deployed):
    def broken() -> None:
        raise ValueError("tenant acme: plan 'huge' is not in the catalog")

    stack = driver.stack_for(STACK, broken, backend_dir=deployed.backend_dir)
    with pytest.raises(driver.EngineError) as caught:
        driver.run("preview", stack, on_output=print)
    message = str(caught.value)
    assert caught.value.reason == "program-failed"
    assert "tenant acme: plan 'huge' is not in the catalog" in message
    assert message.count("plan 'huge'") == 1, message
    assert "Traceback" not in message and "Traceback" in caught.value.stdout


POLICY_PACK = {
    "PulumiPolicy.yaml": "runtime: python\ndescription: e2e probe policies\n",
    "__main__.py": '''
from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy


def small_ledger_entries(args, report_violation):
    if args.resource_type == "pulumi-python:dynamic:Resource" and args.props.get("size", 0) > 5:
        report_violation("ledger entries are limited to size 5")


PolicyPack(
    name="e2e-probe",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(
            name="probe-size-limit",
            description="Ledger entries stay small.",
            validate=small_ledger_entries,
        )
    ],
)
''',
}


def test_a_python_policy_pack_blocks_a_violating_preview(deployed, tmp_path):
    pack = tmp_path / "policy-pack"
    pack.mkdir()
    for name, text in POLICY_PACK.items():
        (pack / name).write_text(text)

    clean = deployed.run("preview", size=2, policy_packs=[pack])
    assert set(clean["changes"]) == {"same"}, clean

    with pytest.raises(driver.EngineError) as caught:
        deployed.run("preview", size=9, policy_packs=[pack])
    message = str(caught.value)
    assert caught.value.reason == "policy-violation"
    assert "probe-size-limit" in message and "limited to size 5" in message, message
    assert "from $PATH" not in message, "the shim's own warning is noise in an error"
    assert deployed.ledger()["size"] == 2, "a preview must not touch the resource"


def test_a_wrong_passphrase_is_refused(deployed):
    with pytest.raises(driver.EngineError, match="incorrect passphrase") as caught:
        stack = driver.stack_for(
            STACK,
            probe_program(2, deployed.ledger_dir),
            backend_dir=deployed.backend_dir,
            secrets={"apiToken": CONFIG_SECRET},
            passphrase="not-the-passphrase",
        )
        driver.run("preview", stack, on_output=print)
    assert CONFIG_SECRET not in str(caught.value)


def test_destroy_removes_everything(deployed):
    result = deployed.run("destroy", size=2)
    assert result["changes"].get("delete", 0) >= 3, result
    assert deployed.resources() == []
    assert not (deployed.ledger_dir / "probe.json").exists(), "the provider's delete must have run"


def test_missing_plugins_names_postgresql_with_its_install_command(engine_ready):
    required = plugins.required_plugin_versions(["pulumi_postgresql"])
    assert required == {"postgresql": "3.18.2"}  # the version pinned in requirements.txt

    installed = plugins.installed_plugins()
    missing = plugins.missing_plugins(required)
    if ("resource", "postgresql", "3.18.2") in installed:
        assert missing == []  # a machine where the plugin could be installed
    else:
        assert missing == ["postgresql 3.18.2"]
    never = plugins.missing_plugins({"postgresql": "0.0.1"})
    assert never == ["postgresql 0.0.1"]

    message = plugins.missing_plugins_message(["postgresql 3.18.2", "docker 5.2.0"])
    lines = message.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("missing provider plugin: postgresql 3.18.2 (install: ")
    assert "pulumi plugin install resource postgresql 3.18.2)" in lines[0]
    assert "pulumi plugin install resource docker 5.2.0)" in lines[1]


def test_a_missing_engine_says_to_run_setup(monkeypatch, tmp_path):
    monkeypatch.setattr(driver, "ENGINE_PATH", tmp_path / "bin" / "pulumi")
    with pytest.raises(driver.EngineMissing, match=r"\./scripts/setup"):
        driver.check_engine()
    with pytest.raises(driver.EngineMissing, match=r"\./scripts/setup"):
        driver.stack_for("never", lambda: None, backend_dir=tmp_path / "state")
