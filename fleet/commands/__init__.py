"""One module per verb group; each has `register(verbs)` adding its sub-parsers. Add a new module to COMMANDS."""

COMMANDS = (
    "fleet.commands.plan",
    "fleet.commands.schema",
    "fleet.commands.engine",
    "fleet.commands.ops",
    "fleet.commands.bench",
)
