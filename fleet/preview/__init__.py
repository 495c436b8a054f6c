"""The pull-request summary: what a change to the fleet does to each tenant, offline, against a git ref.

diff (resource level) → wording (tenant level) → summary (the whole change) → render (text, markdown,
JSON); `guard` checks the engine's own preview for database replacements.
"""
