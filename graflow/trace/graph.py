"""The runtime graph a tracer records, built only when networkx imports.

networkx is an optional extra (``graflow[nx]``), and ``import graflow`` must not load
it: a tracer asks for a graph here when it is constructed, and gets ``None`` when
networkx is missing, in which case only the execution order is kept.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from graflow.exceptions import ConfigError

EXPORT_FORMATS = ("dict", "json", "graphml")


def new_graph() -> Any:
    """An empty ``networkx.DiGraph``, or ``None`` when networkx is not installed."""
    try:
        import networkx as nx
    except ImportError:
        return None
    return nx.DiGraph()


def export(graph: Any, order: list[str], format: str) -> dict[str, Any]:
    """``Tracer.export_runtime_graph``: the graph as plain data in ``format``."""
    if format == "dict":
        return {
            "nodes": [{"id": node, **graph.nodes[node]} for node in graph.nodes()],
            "edges": [{"source": u, "target": v, **graph.edges[u, v]} for u, v in graph.edges()],
            "execution_order": order,
        }
    if format == "json":
        text = json.dumps(export(graph, order, "dict"), default=_text)
        return dict(json.loads(text))
    if format == "graphml":
        import networkx as nx

        # GraphML holds only scalars (upstream hands it datetimes and dicts, and fails).
        flat = nx.DiGraph()
        flat.add_nodes_from((node, _scalars(data)) for node, data in graph.nodes(data=True))
        flat.add_edges_from((u, v, _scalars(data)) for u, v, data in graph.edges(data=True))
        return {"graphml": "\n".join(nx.generate_graphml(flat))}
    raise ConfigError(f"unsupported runtime graph export format {format!r}; use one of {EXPORT_FORMATS}")


def _scalars(data: dict[str, Any]) -> dict[str, Any]:
    """Attributes GraphML can hold: scalars as they are, the rest as JSON text, no None."""
    return {key: _scalar(value) for key, value in data.items() if value is not None}


def _scalar(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    return value.isoformat() if isinstance(value, datetime) else json.dumps(value, default=_text)


def _text(value: Any) -> str:
    """JSON for what json cannot encode: datetimes in ISO form, anything else as ``str()``."""
    return value.isoformat() if isinstance(value, datetime) else str(value)
