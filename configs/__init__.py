"""The published configurations and small ones for the synthetic set and tests (YAML)."""
