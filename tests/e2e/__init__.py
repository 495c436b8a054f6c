"""End-to-end tests that drive the real Pulumi engine built by ./scripts/setup."""
