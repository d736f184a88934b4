"""Integrations with frameworks a service already runs (each imports its framework itself)."""
