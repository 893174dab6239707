"""Upstream module paths of the group backends, kept as re-exports (see docs/architecture.md)."""
