"""`TaskGraph`: nodes, edges, members, start candidates, fingerprint, text drawing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from graflow import parallel, task, workflow
from graflow.core.graph import TaskGraph
from graflow.core.handlers.group_policy import AtLeastNGroupPolicy
from graflow.core.task import ParallelGroup, TaskWrapper
from graflow.exceptions import DuplicateTaskError, GraflowRuntimeError

REPO = Path(__file__).resolve().parents[2]


def mark(ctx, name):
    ctx.get_channel().append("order", name)


def _t(tid):
    return TaskWrapper(tid, lambda: tid, register_to_context=False)


def _run_python(code: str, *, cwd: Path, extra_path: Path | None = None, seed: str = "0") -> str:
    env = dict(os.environ)
    paths = [str(REPO)] + ([str(extra_path)] if extra_path else [])
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONHASHSEED"] = seed
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# --- nodes and edges -------------------------------------------------------------------


def test_add_node_uses_task_id_by_default_and_accepts_explicit_id():
    g = TaskGraph()
    a = _t("a")
    g.add_node(a)
    g.add_node(_t("b"), "bee")
    assert g.has_node("a")
    assert g.get_node("a") is a
    assert g.has_node("bee")
    assert not g.has_node("b")


def test_add_node_duplicate_raises_and_skip_if_exists_does_not():
    g = TaskGraph()
    a = _t("a")
    g.add_node(a)
    with pytest.raises(DuplicateTaskError):
        g.add_node(_t("a"))
    g.add_node(_t("a"), skip_if_exists=True)
    assert g.get_node("a") is a


def test_add_edge_before_nodes_exist_is_allowed():
    g = TaskGraph()
    g.add_edge("a", "b")
    a, b = _t("a"), _t("b")
    g.add_node(a, skip_if_exists=True)
    g.add_node(b, skip_if_exists=True)
    assert list(g.edges) == [("a", "b")]
    assert g.get_node("a") is a


def test_edge_to_node_without_task_fails_at_execution(driver):
    with workflow("ghost_edge") as wf:

        @task(inject_context=True)
        def a(ctx):
            mark(ctx, "a")

        wf.add_edge("a", "ghost")

    out = driver.run(wf, "a")
    assert isinstance(out.error, GraflowRuntimeError)
    assert "ghost" in str(out.error)
    assert out.completed_tasks == ["a"]


def test_nodes_edges_successors_predecessors_in_insertion_order():
    g = TaskGraph()
    for tid in ("a", "c", "b", "d"):
        g.add_node(_t(tid))
    g.add_edge("a", "c")
    g.add_edge("a", "b")
    g.add_edge("c", "d")
    g.add_edge("b", "d")
    assert list(g.nodes) == ["a", "c", "b", "d"]
    assert list(g.edges) == [("a", "c"), ("a", "b"), ("c", "d"), ("b", "d")]
    assert list(g.get_edges()) == [("a", "c"), ("a", "b"), ("c", "d"), ("b", "d")]
    assert list(g.successors("a")) == ["c", "b"]
    assert list(g.predecessors("d")) == ["c", "b"]


def test_get_node_and_has_node_search_group_members_at_any_depth():
    a, b, c = _t("a"), _t("b"), _t("c")
    inner = ParallelGroup([a, b], name="inner")
    outer = ParallelGroup([inner, c], name="outer")
    g = TaskGraph()
    g.add_node(outer)
    assert g.has_node("outer")
    assert g.has_node("inner") and g.get_node("inner") is inner
    assert g.has_node("c") and g.get_node("c") is c
    assert g.has_node("a") and g.get_node("a") is a  # depth 2
    assert not g.has_node("zzz")


def test_get_node_unknown_raises_key_error_naming_the_id():
    g = TaskGraph()
    g.add_node(_t("a"))
    with pytest.raises(KeyError) as info:
        g.get_node("missing_node_id")
    assert "missing_node_id" in str(info.value)


def test_static_cycles_are_allowed_and_detected():
    g = TaskGraph()
    for tid in ("agent", "tool", "other"):
        g.add_node(_t(tid))
    g.add_edge("agent", "tool")
    g.add_edge("tool", "agent")
    cycles = g.detect_cycles()
    assert any(set(c) == {"agent", "tool"} for c in cycles)
    dag = TaskGraph()
    dag.add_node(_t("x"))
    dag.add_node(_t("y"))
    dag.add_edge("x", "y")
    assert not dag.detect_cycles()


def test_get_parallel_group_members():
    with workflow("members") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        @task
        def c():
            pass

        g = parallel(a, b, c)
    assert wf.graph.get_parallel_group_members(g.task_id) == ["a", "b", "c"]


def test_clear_empties_the_graph():
    g = TaskGraph()
    g.add_node(_t("a"))
    g.add_node(_t("b"))
    g.add_edge("a", "b")
    g.clear()
    assert list(g.nodes) == []
    assert list(g.edges) == []


def test_rename_node_keeps_edges_and_rejects_bad_names():
    g = TaskGraph()
    for tid in ("a", "b", "c"):
        g.add_node(_t(tid))
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.rename_node("b", "bee")
    assert not g.has_node("b")
    assert g.has_node("bee")
    assert list(g.successors("a")) == ["bee"]
    assert list(g.successors("bee")) == ["c"]
    with pytest.raises(KeyError):
        g.rename_node("missing", "x")
    with pytest.raises(ValueError):
        g.rename_node("a", "c")


def test_nx_graph_builds_a_networkx_digraph():
    import networkx as nx

    g = TaskGraph()
    a, b = _t("a"), _t("b")
    g.add_node(a)
    g.add_node(b)
    g.add_edge("a", "b")
    nxg = g.nx_graph()
    assert isinstance(nxg, nx.DiGraph)
    assert list(nxg.nodes) == ["a", "b"]
    assert list(nxg.edges) == [("a", "b")]
    assert nxg.nodes["a"]["task"] is a


# --- start candidates (D2) -------------------------------------------------------------


def test_start_candidates_exclude_nodes_with_incoming_edges_and_group_members():
    with workflow("starts") as wf:

        @task
        def a():
            pass

        @task
        def b():
            pass

        @task
        def c():
            pass

        @task
        def d():
            pass

        @task
        def lonely():
            pass

        a >> (b | c) >> d
    starts = wf.graph.get_start_nodes()
    assert sorted(starts) == ["a", "lonely"]


def test_start_candidates_exclude_nested_group_members():
    a, b, c = _t("a"), _t("b"), _t("c")
    g = TaskGraph()
    for t in (a, b, c):
        g.add_node(t)
    inner = ParallelGroup([a, b], name="inner")
    outer = ParallelGroup([inner, c], name="outer")
    g.add_node(inner)
    g.add_node(outer)
    assert g.get_start_nodes() == ["outer"]


def test_pure_cycle_has_no_start_candidate():
    g = TaskGraph()
    g.add_node(_t("x"))
    g.add_node(_t("y"))
    g.add_edge("x", "y")
    g.add_edge("y", "x")
    assert g.get_start_nodes() == []


# --- fingerprint -----------------------------------------------------------------------


def _build(variant: str):
    with workflow("fp") as wf:

        @task
        def a():
            return 1

        @task
        def b():
            return 2

        @task
        def c():
            return 3

        if variant == "edges":
            a >> b >> c
        elif variant == "other_edges":
            a >> c >> b
        elif variant == "group_strict":
            a >> (b | c)
        elif variant == "group_atleast":
            a >> (b | c).with_execution(policy=AtLeastNGroupPolicy(min_success=1))
    return wf


def test_fingerprint_is_hex_sha256_and_stable_for_same_definition():
    fp1 = _build("edges").graph.fingerprint()
    fp2 = _build("edges").graph.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", fp1)
    assert fp1 == fp2


def test_fingerprint_changes_with_edges():
    assert _build("edges").graph.fingerprint() != _build("other_edges").graph.fingerprint()


def test_fingerprint_changes_with_group_policy():
    strict = _build("group_strict").graph.fingerprint()
    at_least = _build("group_atleast").graph.fingerprint()
    assert strict != at_least


def test_fingerprint_changes_when_a_node_is_added():
    wf = _build("edges")
    before = wf.graph.fingerprint()
    wf.graph.add_node(_t("extra"))
    assert wf.graph.fingerprint() != before


_FP_MODULE = '''
from graflow import task, workflow

def build():
    with workflow("fpmod") as wf:
        @task
        def load():
            return {value}
        @task
        def save(load):
            return load
        load >> save
    return wf
'''

_FP_PRINT = "import {mod}; print({mod}.build().graph.fingerprint())"


def _fingerprint_in_subprocess(tmp_path: Path, name: str, source: str, seed: str) -> str:
    d = tmp_path / name
    d.mkdir()
    (d / "fpmod.py").write_text(source)
    return _run_python(_FP_PRINT.format(mod="fpmod"), cwd=d, extra_path=d, seed=seed)


def test_fingerprint_same_code_same_value_in_any_process(tmp_path):
    src = _FP_MODULE.format(value="[1, 2, 3]")
    fp1 = _fingerprint_in_subprocess(tmp_path, "p1", src, seed="1")
    fp2 = _fingerprint_in_subprocess(tmp_path, "p2", src, seed="2")
    assert re.fullmatch(r"[0-9a-f]{64}", fp1)
    assert fp1 == fp2


def test_fingerprint_ignores_line_numbers(tmp_path):
    src = _FP_MODULE.format(value="[1, 2, 3]")
    fp1 = _fingerprint_in_subprocess(tmp_path, "p1", src, seed="1")
    fp2 = _fingerprint_in_subprocess(tmp_path, "p2", "\n\n\n# shifted\n" + src, seed="1")
    assert fp1 == fp2


def test_fingerprint_changes_when_a_task_body_changes(tmp_path):
    fp1 = _fingerprint_in_subprocess(tmp_path, "p1", _FP_MODULE.format(value="[1, 2, 3]"), "1")
    fp2 = _fingerprint_in_subprocess(tmp_path, "p2", _FP_MODULE.format(value="[1, 2, 4]"), "1")
    assert fp1 != fp2


# --- text drawing and imports ----------------------------------------------------------


def test_str_is_an_ascii_drawing_naming_the_nodes():
    text = str(_build("edges").graph)
    assert text.isascii()
    for tid in ("a", "b", "c"):
        assert tid in text


def test_graph_module_imports_no_networkx_or_plotting(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        from graflow import task, workflow
        import graflow.core.graph
        with workflow("w") as wf:
            @task
            def a(): return 1
            @task
            def b(): return 2
            @task
            def c(): return 3
            a >> (b | c)
        g = wf.graph
        g.get_start_nodes(); g.fingerprint(); str(g); g.detect_cycles()
        heavy = [m for m in ("networkx", "matplotlib", "pygraphviz", "pydot") if m in sys.modules]
        print(",".join(heavy))
        """
    )
    assert _run_python(code, cwd=tmp_path) == ""


@pytest.mark.parametrize("change", ["add_node", "add_edge", "remove_edge", "remove_node", "rename_node", "clear"])
def test_a_copy_and_its_original_never_see_each_others_changes(change):
    """``copy`` shares the maps until one side changes (copy-on-write): whichever side
    changes, the other keeps the structure it had, also after a second copy."""
    a, b, c = _t("a"), _t("b"), _t("c")
    original = TaskGraph()
    for t in (a, b, c):
        original.add_node(t)
    original.add_edge("a", "b")
    original.add_edge("b", "c")
    before = (sorted(original.nodes), sorted(original.edges))

    def apply(g):
        {
            "add_node": lambda: g.add_node(_t("x")),
            "add_edge": lambda: g.add_edge("a", "c"),
            "remove_edge": lambda: g.remove_edge("a", "b"),
            "remove_node": lambda: g.remove_node("c"),
            "rename_node": lambda: g.rename_node("b", "bb"),
            "clear": g.clear,
        }[change]()

    for changed_side in ("copy", "original"):
        base = TaskGraph()
        for t in (a, b, c):
            base.add_node(t)
        base.add_edge("a", "b")
        base.add_edge("b", "c")
        first, second = base.copy(), base.copy()
        target = first if changed_side == "copy" else base
        apply(target)
        untouched = [g for g in (base, first, second) if g is not target]
        for g in untouched:
            assert (sorted(g.nodes), sorted(g.edges)) == before, (changed_side, g)
            assert g.successors("a") == ["b"] and g.predecessors("c") == ["b"]
        assert (sorted(target.nodes), sorted(target.edges)) != before


def test_next_task_in_a_run_leaves_the_workflow_graph_alone():
    with workflow("cow") as wf:

        @task(inject_context=True)
        def start(ctx):
            ctx.next_task(TaskWrapper("extra", lambda: "x", register_to_context=False))

        @task
        def end():
            return "end"

        start >> end

    wf.execute("start")
    wf.execute("start")
    assert sorted(wf.graph.nodes) == ["end", "start"] and wf.graph.edges == [("start", "end")]
