"""PostgreSQL tooling shared by the dynamic providers and the operations: access, dumps, catalog, sessions.

Identifiers are always quoted with `psycopg.sql.Identifier`, never built into SQL by hand.
"""
