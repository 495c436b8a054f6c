"""tenant-fleet's CrossGuard policy pack; the rules live in `policies.fleet_policies` (see policies/README.md)."""
