"""tenant-fleet: tenant YAML files in, per-tenant infrastructure out (docs/architecture.md).

One subpackage per layer, imported only downwards: model, postgres, (components), program, offline,
preview and engine, ops, bench, cli.
"""
