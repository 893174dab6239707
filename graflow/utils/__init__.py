"""Upstream module path of the graph drawings, kept as a re-export (see docs/architecture.md)."""
