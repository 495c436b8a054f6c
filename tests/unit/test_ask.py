"""On-demand TLS: hostname normalisation, the active tenants' names, the ask service's answers and cache, the spec."""

from __future__ import annotations

import pytest

from components.providers.caddy import on_demand_policy
from fleet.errors import SpecError
from fleet.model.hostnames import active_hostnames, normalised_hostname
from fleet.model.load import load_fleet
from fleet.ops.ask import AskService, FileSource, SourceUnavailable
from tests.unit.graph import FleetWorkspace, of_type

SERVER = "pulumi-python:dynamic/caddy:CaddyServer"


@pytest.fixture
def workspace(tmp_path) -> FleetWorkspace:
    return FleetWorkspace(tmp_path)


def fleet_of(workspace: FleetWorkspace):
    return load_fleet(workspace.tenants_dir, dict(workspace.config), root=workspace.tenants_dir.parent)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("precos.santarita.mg.gov.br", "precos.santarita.mg.gov.br"),
        ("PRECOS.Santarita.MG.gov.br", "precos.santarita.mg.gov.br"),
        ("precos.santarita.mg.gov.br.", "precos.santarita.mg.gov.br"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("precos.santarita.mg.gov.br..", None),
        ("", None),
        (None, None),
        (" precos.santarita.mg.gov.br", None),
        ("precos.santarita.mg.gov.br\n", None),
        ("bücher.example", None),
        ("127.0.0.1", None),
        ("[::1]", None),
        ("shop.example.com:443", None),
        ("*.fleet.localhost", None),
        ("shop.example.com/path", None),
        ("a..b.example", None),
        ("-shop.example.com", None),
        ("localhost", None),
        ("a" * 64 + ".example.com", None),
        (("a" * 60 + ".") * 5 + "com", None),  # 308 characters: fine labels, too long a name
    ],
)
def test_hostnames_are_normalised_and_anything_malformed_is_refused(raw, expected):
    assert normalised_hostname(raw) == expected


def test_active_tenants_hostnames_leave_out_suspended_tenants(workspace):
    names = active_hostnames(fleet_of(workspace))
    assert names["precos.santarita.mg.gov.br"] == "santarita"
    assert names["api-gurupi.fleet.localhost"] == "gurupi" and names["app-gurupi.fleet.localhost"] == "gurupi"
    assert not any(tenant == "catasaltas" for tenant in names.values())  # suspended in the shipped fleet


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_service_answers_from_the_tenant_files_and_reloads_them(workspace):
    clock = Clock()
    source = FileSource(lambda: fleet_of(workspace), "tenant files", reload_seconds=30, clock=clock)
    service = AskService(source, cache_seconds=0, clock=clock)
    allowed = service.answer("PRECOS.SANTARITA.MG.GOV.BR.")
    assert (allowed.status, allowed.tenant, allowed.hostname) == (200, "santarita", "precos.santarita.mg.gov.br")
    assert service.answer("app-catasaltas.fleet.localhost").status == 403
    assert service.answer("evil.example.com").status == 403
    assert service.answer("not a name").status == 400 and service.answer(None).status == 400

    workspace.edit("santarita", status="suspended")
    assert service.answer("precos.santarita.mg.gov.br").status == 200  # the files are re-read every 30 s
    clock.now += 30
    assert service.answer("precos.santarita.mg.gov.br").status == 403

    (workspace.tenants_dir / "gurupi.yaml").write_text("name: gurupi\nplan: [broken")  # an edit in progress
    clock.now += 30
    assert service.answer("app-novaroma.fleet.localhost").status == 200  # the last good files are kept


def test_answers_are_cached_but_an_unavailable_source_is_asked_again():
    calls: list[str] = []

    class Flaky:
        description = "flaky"
        down = True

        def tenant_of(self, hostname: str):
            calls.append(hostname)
            if self.down:
                raise SourceUnavailable("registry down")
            return "santarita" if hostname == "shop.example.com" else None

    clock, source = Clock(), Flaky()
    service = AskService(source, cache_seconds=10, clock=clock)
    assert service.answer("shop.example.com").status == 503
    source.down = False
    assert service.answer("shop.example.com").status == 200  # a 503 is not cached
    assert service.answer("Shop.Example.com").status == 200 and service.answer("evil.example.com").status == 403
    assert service.answer("evil.example.com").status == 403
    assert calls == ["shop.example.com", "shop.example.com", "evil.example.com"]
    clock.now += 10
    service.answer("shop.example.com")
    assert calls[-1] == "shop.example.com" and len(calls) == 4


def test_a_fleet_without_tenant_files_is_unavailable_not_open(tmp_path, workspace):
    source = FileSource(lambda: load_fleet(tmp_path / "missing", dict(workspace.config), root=tmp_path), "no files")
    assert AskService(source).answer("precos.santarita.mg.gov.br").status == 503


# ---------------------------------------------------------------- the stack config and the program


def test_on_demand_tls_is_passed_to_the_proxy_server(workspace):
    workspace.config["proxy"] = {**workspace.config.get("proxy", {}), "automatic_https": True, "on_demand_tls": {"ask": "http://127.0.0.1:9123/ask"}}
    (server,) = of_type(workspace.evaluate(), SERVER)
    assert (server.raw_inputs["on_demand_ask"], server.raw_inputs["on_demand_issuer"]) == ("http://127.0.0.1:9123/ask", "acme")


def test_without_on_demand_tls_the_proxy_server_has_none(workspace):
    (server,) = of_type(workspace.evaluate(), SERVER)
    assert server.raw_inputs.get("on_demand_ask") is None


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ({"automatic_https": False, "on_demand_tls": {"ask": "http://127.0.0.1:9123/ask"}}, "on_demand_tls needs automatic_https: true"),
        ({"on_demand_tls": {"ask": "ftp://127.0.0.1/ask"}}, "fleet:proxy.on_demand_tls.ask: 'ftp://127.0.0.1/ask' is not an http(s) URL"),
        ({"on_demand_tls": {"ask": "http://127.0.0.1:9123/ask", "issuer": "zerossl"}}, "fleet:proxy.on_demand_tls.issuer"),
    ],
)
def test_bad_on_demand_settings_are_spec_errors(workspace, proxy, message):
    workspace.config["proxy"] = {**workspace.config.get("proxy", {}), **proxy}
    with pytest.raises(SpecError, match="fleet:proxy") as raised:
        fleet_of(workspace)
    assert message in str(raised.value)


def test_the_on_demand_policy_is_a_catch_all_with_the_chosen_issuer():
    assert on_demand_policy("fleet", "acme") == {"@id": "fleet-on-demand", "on_demand": True}  # Caddy's default ACME issuers
    assert on_demand_policy("fleet", "internal")["issuers"] == [{"module": "internal"}]
    assert "subjects" not in on_demand_policy("fleet", "internal")


def test_check_with_an_empty_name_refuses_it_instead_of_starting_the_server(tmp_path, capsys):
    from fleet.cli.main import main
    from fleet.paths import PROJECT_ROOT

    assert main(["ask", "--check", "", "--root", str(PROJECT_ROOT)]) == 1
    assert capsys.readouterr().out.startswith("400 refused")
