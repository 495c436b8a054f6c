"""The PostgreSQL test clusters behave like the servers the fleet targets: password login over 127.0.0.1 only."""

from __future__ import annotations

import psycopg
import pytest


def test_two_clusters_run_side_by_side_and_take_their_own_superuser_password(postgres_cluster_factory):
    first = postgres_cluster_factory(admin_password="first-secret")
    second = postgres_cluster_factory(admin_password="second-secret")

    assert first.port != second.port
    for cluster in (first, second):
        with cluster.connect() as connection:
            row = connection.execute(
                "select current_user, inet_server_addr()::text, current_setting('port')::int, "
                "rolsuper, current_setting('password_encryption') from pg_roles where rolname = current_user"
            ).fetchone()
        assert row == ("postgres", "127.0.0.1/32", cluster.port, True, "scram-sha-256")

    # Each cluster's password is its own: the other one's is refused.
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        first.connect(password="second-secret")


def test_wrong_password_is_refused(postgres_cluster):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        postgres_cluster.connect(password="not-the-password")


def test_a_login_role_authenticates_with_scram_over_tcp(postgres_cluster):
    with postgres_cluster.connect() as admin:
        admin.execute("drop role if exists support_probe")
        admin.execute("create role support_probe login password 'probe-secret'")
    try:
        with postgres_cluster.connect(user="support_probe", password="probe-secret") as connection:
            assert connection.execute("select current_user").fetchone() == ("support_probe",)
        with postgres_cluster.connect() as admin:
            stored = admin.execute("select rolpassword from pg_authid where rolname = 'support_probe'").fetchone()[0]
        assert stored.startswith("SCRAM-SHA-256$")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            postgres_cluster.connect(user="support_probe", password="wrong")
    finally:
        with postgres_cluster.connect() as admin:
            admin.execute("drop role if exists support_probe")


def test_stop_removes_the_cluster(postgres_cluster_factory):
    cluster = postgres_cluster_factory()
    base_dir, port = cluster.base_dir, cluster.port
    cluster.stop()

    assert not base_dir.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", password="fleet-test-superuser", dbname="postgres", connect_timeout=2)
    cluster.stop()  # idempotent
