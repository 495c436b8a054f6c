"""The model layer: the YAML schema, loading and validation, pure derivation and the type tokens.

No Pulumi resources and no I/O besides reading the YAML files; everything above imports from here.
"""
