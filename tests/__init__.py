"""tenant-fleet tests: unit (mocks), integration (real servers), e2e (the real engine)."""
