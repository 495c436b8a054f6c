"""On-demand TLS for custom domains: `fleet ask` answering from a real registry, and a real Caddy asking it.

The registry is deployed through the real engine on a real PostgreSQL (as tests/e2e/test_registry_engine.py
does), and one tenant is then removed from the files (its row stays, inactive). `fleet ask` answers from that
table. A proxy-only stack with `fleet:proxy.on_demand_tls` is deployed through the real engine to a real
Caddy on loopback, with Caddy's internal issuer (no ACME CA is reachable here): a TLS handshake for an active
tenant's custom domain gets a certificate for exactly that name, signed by Caddy's local CA; a name the
endpoint refuses gets no certificate and the handshake fails.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from components.providers.caddy import on_demand_policy_id
from fleet.bench.servers import PostgresCluster, UpstreamHTTPServer, free_port
from fleet.cli.main import main
from fleet.engine import driver as engine
from fleet.ops.ask import AskServer, AskService, RegistrySource
from tests.e2e.test_fleet_proxy import ProxyStack
from tests.e2e.test_registry_engine import DATABASE, RegistryStack
from tests.integration.test_backup import STACK as OPS_STACK
from tests.support.fixtures import require_engine, running

CUSTOM_DOMAIN = "precos.santarita.mg.gov.br"  # santarita's own domain (tenants/santarita.yaml)


def ask(server: AskServer, domain: str | None) -> tuple[int, dict]:
    query = "" if domain is None else "?" + urllib.parse.urlencode({"domain": domain})
    try:
        with urllib.request.urlopen(server.url + query, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def cluster():
    with running(PostgresCluster("ask-e2e-admin-4c2e")) as (server,):
        yield server


@pytest.fixture(scope="module")
def registry(tmp_path_factory, cluster):
    require_engine()
    stack = RegistryStack(tmp_path_factory.mktemp("ask-root"), tmp_path_factory.mktemp("ask-state"), cluster)
    stack.fleet.config["registry"] = {"server": "shared-1", "database": DATABASE}
    stack.run("up")
    (stack.workspace.tenants_dir / "gurupi.yaml").unlink()  # gurupi leaves: its row stays, inactive
    stack.run("up")
    yield stack
    try:
        engine.run("destroy", stack.stack(), on_output=None)
    except engine.EngineError:
        pass


@pytest.fixture(scope="module")
def ask_server(registry):
    # No cache: each test sees the registry as it is now.
    service = AskService(RegistrySource.from_inventory(registry.fleet.inventory()), cache_seconds=0)
    with AskServer(service) as server:
        yield server


def test_the_registry_rows_the_answers_come_from(registry):
    rows = registry.rows()
    assert rows["gurupi"]["active"] is False
    assert rows["catasaltas"]["status"] == "suspended"
    assert CUSTOM_DOMAIN in rows["santarita"]["hostnames"] + rows["santarita"]["custom_domains"]


def test_ask_allows_an_active_tenants_domain_normalised(ask_server):
    for name in (CUSTOM_DOMAIN, CUSTOM_DOMAIN.upper() + ".", "app-novaroma.fleet.localhost", "api-pirapora.fleet.localhost"):
        status, answer = ask(ask_server, name)
        assert status == 200, (name, answer)
        assert answer["allowed"] is True
    assert ask(ask_server, CUSTOM_DOMAIN.upper() + ".")[1] == {
        "allowed": True, "hostname": CUSTOM_DOMAIN, "tenant": "santarita", "reason": f"{CUSTOM_DOMAIN}: tenant santarita",
    }


def test_ask_refuses_suspended_removed_unknown_and_malformed_names(ask_server):
    name: str | None
    for name in ("app-catasaltas.fleet.localhost", "app-gurupi.fleet.localhost", "precos.gurupi.to.gov.br", "evil.example.com"):
        status, answer = ask(ask_server, name)
        assert (status, answer["allowed"]) == (403, False), name
    for name in ("bad name.example.com", "127.0.0.1", "shop.example.com:443", "*.fleet.localhost", "", None):
        status, answer = ask(ask_server, name)
        assert (status, answer["allowed"]) == (400, False), name


def test_ask_follows_the_registry(registry, ask_server):
    registry.workspace.edit("novaroma", status="suspended")
    registry.run("up")
    try:
        assert ask(ask_server, "app-novaroma.fleet.localhost")[0] == 403
    finally:
        registry.workspace.edit("novaroma", status="active")
        registry.run("up")
    assert ask(ask_server, "app-novaroma.fleet.localhost")[0] == 200


def test_fleet_ask_check_from_the_command_line(registry):
    registry.fleet.write_stack_file()
    secrets = registry.fleet.write_secrets_file()
    common = ["ask", "--root", str(registry.root), "--stack", OPS_STACK, "--secrets", str(secrets)]
    for name, code in ((CUSTOM_DOMAIN, 0), ("app-gurupi.fleet.localhost", 1)):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main([*common, "--check", name]) == code
        assert out.getvalue().startswith("200 allowed" if code == 0 else "403 refused")


# ---------------------------------------------------------------- through Caddy


@pytest.fixture(scope="module")
def upstreams():
    servers = {role: UpstreamHTTPServer(role) for role in ("backend", "frontend")}
    with running(*servers.values()):
        yield servers


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory, caddy_process, upstreams, ask_server):
    caddy_process.reset()
    # Automatic HTTPS adds a redirect server on the HTTP port: a free loopback port, not :80.
    caddy_process.admin("POST", "/config/apps", {"http": {"http_port": free_port(), "https_port": free_port()}})
    stack = ProxyStack(tmp_path_factory.mktemp("tls"), caddy_process, tmp_path_factory.mktemp("tls-state"), upstreams)
    stack.config["proxy"]["automatic_https"] = True
    stack.config["proxy"]["on_demand_tls"] = {"ask": ask_server.url, "issuer": "internal"}
    yield stack
    try:
        engine.run("destroy", stack.stack(), on_output=None)
    except engine.EngineError:
        pass
    caddy_process.reset()


def handshake(stack: ProxyStack, name: str, cafile: Path) -> tuple[dict, str]:
    """A TLS handshake with SNI `name` on the fleet's listener, verifying the certificate against Caddy's local CA."""
    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", stack.port), timeout=15) as raw, context.wrap_socket(raw, server_hostname=name) as tls:
        certificate = tls.getpeercert()
        assert certificate is not None  # the handshake verified one
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        response = b""
        while chunk := tls.recv(4096):
            response += chunk
    return certificate, response.decode(errors="replace")


def local_ca(caddy_process) -> Path:
    return caddy_process.base_dir / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"


def test_up_sets_the_ask_endpoint_and_the_on_demand_policy(tls_stack, ask_server):
    summary = tls_stack.run("up")
    assert summary["changes"] == {"create": 1 + 1 + 5 * 4}
    caddy = tls_stack.caddy
    assert caddy.config("apps/tls/automation/on_demand/ask") == ask_server.url
    assert caddy.admin("GET", f"/id/{on_demand_policy_id('fleet')}") == {
        "@id": "fleet-on-demand", "on_demand": True, "issuers": [{"module": "internal"}],
    }
    assert caddy.config("apps/pki/certificate_authorities/local/install_trust") is False
    assert set(tls_stack.run("preview")["changes"]) == {"same"}


def test_an_active_tenants_custom_domain_gets_a_certificate_at_its_first_handshake(tls_stack):
    certificate, response = handshake(tls_stack, CUSTOM_DOMAIN, local_ca(tls_stack.caddy))
    assert ("DNS", CUSTOM_DOMAIN) in certificate["subjectAltName"]
    assert response.startswith("HTTP/1.1 200") and f"frontend host={CUSTOM_DOMAIN}" in response


def test_names_the_endpoint_refuses_get_no_certificate(tls_stack):
    # gurupi still has routes in this proxy stack, but the registry says it left: no certificate.
    for name in ("evil.example.com", "app-gurupi.fleet.localhost", "app-catasaltas.fleet.localhost"):
        with pytest.raises(ssl.SSLError):
            handshake(tls_stack, name, local_ca(tls_stack.caddy))
    assert not list((tls_stack.caddy.base_dir / "data").rglob("evil.example.com*"))


def test_turning_on_demand_tls_off_removes_the_policy_and_the_ask(tls_stack):
    del tls_stack.config["proxy"]["on_demand_tls"]
    summary = tls_stack.run("up")
    assert summary["changes"].get("update") == 1 and "create" not in summary["changes"] and "delete" not in summary["changes"]
    caddy = tls_stack.caddy
    with pytest.raises(urllib.error.HTTPError):
        caddy.admin("GET", f"/id/{on_demand_policy_id('fleet')}")
    assert (caddy.config("apps/tls/automation") or {}).get("on_demand") is None


def test_destroy_takes_the_policy_and_the_ask_with_the_server(tls_stack, ask_server):
    tls_stack.config["proxy"]["on_demand_tls"] = {"ask": ask_server.url, "issuer": "internal"}
    assert tls_stack.run("up")["changes"].get("update") == 1
    assert tls_stack.caddy.admin("GET", f"/id/{on_demand_policy_id('fleet')}")["on_demand"] is True
    tls_stack.run("destroy")
    caddy = tls_stack.caddy
    with pytest.raises(urllib.error.HTTPError):
        caddy.admin("GET", f"/id/{on_demand_policy_id('fleet')}")
    assert (caddy.config("apps/tls/automation") or {}).get("on_demand") is None
    assert "fleet" not in (caddy.config("apps/http/servers") or {})
