"""Upstream module paths of the queues, kept as re-exports (see docs/architecture.md)."""
