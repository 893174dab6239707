"""graflow.utils.graph as upstream's examples use it (examples/09_visualization): every
function takes a TaskGraph, a workflow, or an nx.DiGraph, with upstream's keywords.

The expected texts below are what upstream graflow 0.2.0 printed for the same graphs
(captured by running upstream's ``graflow.utils.graph``); where upstream's output depends
on the hash seed (the order of a group's members inside its Mermaid subgraph), the
comparison ignores that order.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from graflow import task, workflow
from graflow.exceptions import MissingDependencyError, UnsupportedFeatureError
from graflow.utils.graph import (
    build_graph,
    create_agraph,
    draw_ascii,
    draw_dot,
    draw_mermaid,
    draw_mermaid_png,
    draw_png,
    draw_task_graph,
    show_graph_info,
    visualize_dependencies,
)

STYLES = (
    "    classDef first fill:#e1f5fe,stroke:#01579b,stroke-width:2px;\n"
    "    classDef last fill:#fff3e0,stroke:#e65100,stroke-width:2px;\n"
    "    classDef parallelGroup fill:#f3e5f5,stroke:#4a148c,stroke-width:3px;\n"
    "    classDef default fill:#f9f9f9,stroke:#333,stroke-width:1px;\n"
)
FRONT = "---\nconfig:\n  flowchart:\n    curve: linear\n---\n"

UP_INFO = (
    "=== Graph Information ===\nNodes: ['load', 'check', 'save', 'report']\n"
    "Edges: [('load', 'check'), ('check', 'save'), ('check', 'report')]\nNo cycles detected\n"
)
UP_DEPS = "=== Dependencies ===\nload >> check\ncheck >> save >> report\nsave (no dependencies)\nreport (no dependencies)\n"
UP_BODY = (
    "    load_1([load]):::first;\n    check_1[check];\n    save_1[save];\n    report_1([report]):::last;\n"
    "    load_1 --> check_1;\n    check_1 --> save_1;\n    check_1 --> report_1;\n"
)
UP_MERMAID = (
    FRONT + "graph TD;\n    %% Pipeline\n" + UP_BODY + STYLES
    + "    classDef load_1_style fill:#90EE90;\n    class load_1 load_1_style;\n"
)  # fmt: skip
UP_MERMAID_PLAIN = "graph TD;\n" + UP_BODY
UP_EDGELESS = "+-------------+\n| lonely_task |\n+-------------+\n|      x      |\n+-------------+\n"
UP_LABELS = (
    "graph TD;\n    x_1[x];\n    y_1([y]):::last;\n    1_1([1]):::first;\n"
    "    x_1 -- one two<br>three four<br>five --> y_1;\n    1_1 --> x_1;\n"
)
UP_WF_INFO = (
    "=== Graph Information ===\nNodes: ['a', 'b', 'b2', 'c', 'd', 'ParallelGroup_1']\n"
    "Edges: [('a', 'ParallelGroup_1'), ('b', 'b2'), ('ParallelGroup_1', 'd')]\nNo cycles detected\n"
)
UP_WF_DEPS = (
    "=== Dependencies ===\na >> ParallelGroup_1\nb >> b2\nb2 (no dependencies)\nc (no dependencies)\n"
    "d (no dependencies)\nParallelGroup_1 >> d\n"
)
# Upstream lists the subgraph's tasks from a set; graflow lists members first, then what they lead to.
WF_MERMAID = (
    FRONT + "graph TD;\n    %% Group\n"
    '    subgraph ParallelGroup_1_1[" ParallelGroup_1 "]\n        direction TB\n'
    "        b_1[b];\n        c_1[c];\n        b2_1[b2];\n    end\n    class ParallelGroup_1_1 parallelGroup;\n"
    "    a_1([a]):::first;\n    d_1([d]):::last;\n"
    "    a_1 --> ParallelGroup_1_1;\n    b_1 --> b2_1;\n    ParallelGroup_1_1 --> d_1;\n"
    + STYLES + "    classDef a_1_style fill:#fff;\n    class a_1 a_1_style;\n"
)  # fmt: skip
UP_WF_MERMAID_LINES = sorted(WF_MERMAID.splitlines())  # upstream's, in any member order


def _printed(fn: Callable[[Any], None], graph: Any) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fn(graph)
    return out.getvalue()


def _pipeline() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_edges_from([("load", "check"), ("check", "save"), ("check", "report")])
    return g


def _group_workflow() -> Any:
    with workflow("drawn") as wf:

        @task
        def a() -> None: ...

        @task
        def b() -> None: ...

        @task
        def b2() -> None: ...

        @task
        def c() -> None: ...

        @task
        def d() -> None: ...

        a >> ((b >> b2) | c) >> d
    return wf


def test_reports_and_mermaid_of_a_networkx_graph_match_upstream() -> None:
    g = _pipeline()
    assert _printed(show_graph_info, g) == UP_INFO
    assert _printed(visualize_dependencies, g) == UP_DEPS
    assert draw_mermaid(g, title="Pipeline", node_colors={"load": "#90EE90"}) == UP_MERMAID
    assert draw_mermaid(g, with_styles=False) == UP_MERMAID_PLAIN


def test_empty_and_edgeless_graphs_match_upstream() -> None:
    assert draw_ascii(nx.DiGraph()) == "Empty graph"
    assert draw_mermaid(nx.DiGraph()) == "graph TD;\n    EmptyGraph[Empty Graph];\n"
    g = nx.DiGraph()
    g.add_nodes_from(["lonely_task", "x"])
    assert draw_ascii(g) == UP_EDGELESS


def test_edge_labels_wrap_and_node_ids_need_not_be_strings() -> None:
    g = nx.DiGraph()
    g.add_edge("x", "y", label="one two three four five")
    g.add_edge(1, "x")
    assert draw_mermaid(g, wrap_label_n_words=2, with_styles=False) == UP_LABELS


@pytest.mark.parametrize("form", ["nx", "task_graph", "workflow"])
def test_a_workflow_draws_the_same_in_every_form(form: str) -> None:
    wf = _group_workflow()
    graph = {"nx": wf.graph.nx_graph(), "task_graph": wf.graph, "workflow": wf}[form]
    assert _printed(show_graph_info, graph) == UP_WF_INFO
    assert _printed(visualize_dependencies, graph) == UP_WF_DEPS
    drawn = draw_mermaid(graph, title="Group", node_colors={"a": "#fff"})
    assert drawn == WF_MERMAID and sorted(drawn.splitlines()) == UP_WF_MERMAID_LINES
    # The call that failed before (AttributeError: no all_group_member_ids on a DiGraph).
    assert draw_ascii(graph) == (
        "a\n    +-> ParallelGroup_1 [b | c]\n        :: b\n            +-> b2\n        :: c\n        +-> d"
    )
    assert draw_dot(graph) == draw_dot(wf.graph)


def test_loops_are_marked_and_cycles_reported_without_networkx_help() -> None:
    with workflow("loop") as wf:

        @task
        def p() -> None: ...

        @task
        def q() -> None: ...

        @task
        def r() -> None: ...

        p >> q >> p
        q >> r >> q

    assert draw_ascii(wf) == "p\n    +-> q\n        +-> p (loop)\n        +-> r\n            +-> q (loop)"
    assert _printed(show_graph_info, wf.graph).endswith("Cycles detected: [['p', 'q'], ['q', 'r']]\n")
    assert str(wf.graph) == draw_ascii(wf.graph)


def test_dot_carries_labels_colors_and_group_clusters() -> None:
    wf = _group_workflow()
    dot = draw_dot(wf, node_labels={"a": "Load & <check>\nnow"}, node_colors={"d": "plum"})
    assert dot.startswith('digraph "" {\n    graph [compound=true, nodesep=0.5, ranksep=1.2];\n')
    assert '"a" [label=<<B>Load &amp; &lt;check&gt;<BR/>now</B>>, style=filled, fillcolor="lightblue"' in dot
    assert '"d" [label=<<B>d</B>>, style=filled, fillcolor="plum"' in dot
    cluster = dot[dot.index("subgraph cluster_0") : dot.index("    }\n")]
    assert 'label="ParallelGroup_1"' in cluster and all(f'"{m}" [' in cluster for m in ("b", "c", "b2"))
    assert '"a" -> "b" [lhead=cluster_0' in dot and '"b" -> "d" [ltail=cluster_0' in dot
    assert '"b" -> "b2" [fontsize=10' in dot
    assert "Empty Graph" in draw_dot(nx.DiGraph())


def test_build_graph_copies_what_is_connected_and_leaves_the_workflow_alone() -> None:
    wf = _group_workflow()
    with workflow("other") as other:

        @task
        def alone() -> None: ...

    before = (wf.graph.nodes, wf.graph.edges)
    part = build_graph(wf.graph.get_node("d"), wf)
    assert part is not wf.graph and (wf.graph.nodes, wf.graph.edges) == before
    assert set(part.nodes) == {"a", "b", "b2", "c", "d", "ParallelGroup_1"}
    assert set(part.edges) == {("a", "ParallelGroup_1"), ("ParallelGroup_1", "d"), ("b", "b2")}
    assert build_graph(alone, other).nodes == ["alone"]


def test_anything_else_is_refused_with_what_to_pass() -> None:
    with pytest.raises(TypeError, match="TaskGraph"):
        draw_ascii({"a": ["b"]})


def test_renderers_that_need_the_network_or_pygraphviz_say_so() -> None:
    g = _pipeline()
    with pytest.raises(UnsupportedFeatureError, match=r"mermaid\.ink") as info:
        draw_mermaid_png(g, title="x", background_color="white")
    assert isinstance(info.value, NotImplementedError) and "draw_png" in str(info.value)
    if importlib.util.find_spec("pygraphviz") is None:
        with pytest.raises(MissingDependencyError, match="pip install pygraphviz") as missing:
            create_agraph(g)
        assert isinstance(missing.value, ImportError) and "draw_dot" in str(missing.value)


def test_png_without_the_viz_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if graflow[viz] were not installed
    target = tmp_path / "unused.png"
    for call in (lambda: draw_png(_pipeline(), output_path=str(target)), lambda: draw_task_graph(_pipeline())):
        with pytest.raises(MissingDependencyError, match=r"pip install 'graflow\[viz\]'") as info:
            call()
        assert isinstance(info.value, ImportError)
    assert not target.exists()


def test_png_with_the_viz_extra(tmp_path: Path) -> None:
    # matplotlib and networkx are in the test extras, so this runs wherever the suite does.
    target = tmp_path / "g.png"
    data = draw_png(_group_workflow(), output_path=str(target), node_labels={"a": "A"}, node_colors={"a": "plum"})
    assert data.startswith(b"\x89PNG") and target.read_bytes() == data
    assert draw_png(_pipeline()).startswith(b"\x89PNG")


def test_task_graphs_draw_without_networkx() -> None:
    # networkx is optional (graflow[nx]): every text drawing of a TaskGraph works without it.
    program = textwrap.dedent(
        """
        import sys
        sys.modules["networkx"] = None  # any import of networkx now fails
        from graflow import task, workflow
        from graflow.utils.graph import draw_ascii, draw_dot, draw_mermaid, show_graph_info, visualize_dependencies
        with workflow("w") as wf:
            @task
            def a(): ...
            @task
            def b(): ...
            @task
            def c(): ...
            a >> (b | c)
        for fn in (draw_ascii, draw_dot, draw_mermaid):
            assert "ParallelGroup_1" in fn(wf.graph)
        show_graph_info(wf)
        visualize_dependencies(wf.graph)
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "No cycles detected" in done.stdout and "a >> ParallelGroup_1" in done.stdout
