"""The import rules: `import graflow` stays light and exports exactly six names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

HEAVY = ("redis", "rq", "msgspec", "networkx", "matplotlib")


def _run(code: str, cwd: Path) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_graflow_imports_no_heavy_dependency(tmp_path):
    out = _run(
        f"""
        import json, sys
        import graflow
        from graflow import task, workflow, chain, parallel, TaskExecutionContext, RetryPolicy
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})))
        """,
        tmp_path,
    )
    assert json.loads(out) == []


def test_import_graflow_creates_no_file(tmp_path):
    _run("import graflow\nfrom graflow import task, workflow\n", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_all_is_exactly_the_six_names(tmp_path):
    out = _run(
        """
        import json, graflow
        print(json.dumps(list(graflow.__all__)))
        """,
        tmp_path,
    )
    names = json.loads(out)
    assert len(names) == 6
    assert set(names) == {
        "task", "workflow", "chain", "parallel", "TaskExecutionContext", "RetryPolicy",
    }


def test_top_level_names_are_the_module_map_objects():
    import graflow
    from graflow.core.context import TaskExecutionContext
    from graflow.core.decorators import task
    from graflow.core.retry import RetryPolicy
    from graflow.core.task import chain, parallel
    from graflow.core.workflow import workflow

    assert graflow.task is task
    assert graflow.workflow is workflow
    assert graflow.chain is chain
    assert graflow.parallel is parallel
    assert graflow.TaskExecutionContext is TaskExecutionContext
    assert graflow.RetryPolicy is RetryPolicy


def test_version_exists():
    import importlib.metadata

    import graflow

    assert isinstance(graflow.__version__, str) and graflow.__version__
    try:
        expected = importlib.metadata.version("graflow")
    except importlib.metadata.PackageNotFoundError:
        expected = "0+unknown"
    assert graflow.__version__ == expected
