"""Upstream path of the graph store; it lives in ``graflow.core.graph_store``."""

from __future__ import annotations

from graflow.core.graph_store import (
    DEFAULT_GRAPH_TTL,
    GraphStore,
    code_by_value,
    graph_ttl,
    pickle_graph,
)

__all__ = ["DEFAULT_GRAPH_TTL", "GraphStore", "code_by_value", "graph_ttl", "pickle_graph"]
