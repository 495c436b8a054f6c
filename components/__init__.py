"""The components layer: one Pulumi ComponentResource per concern, and the project's own providers."""
