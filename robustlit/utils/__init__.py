"""Small shared helpers (distributed sharding, fingerprints)."""
