"""worker/Dockerfile, rq-dashboard's Dockerfile and .dockerignore, checked without Docker.

The slow test builds a wheel from exactly the files the worker image copies (after
.dockerignore), as its ``pip install .`` does, so a file missing from the COPY lines or
excluded from the context fails here rather than in ``docker compose build``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from deploytools import (
    ROOT,
    RQ_DASHBOARD_DIR,
    WORKER_DOCKERFILE,
    copy_sources,
    dockerfile_env,
    dockerfile_instructions,
    dockerignore_patterns,
    exec_form,
    ignored,
    last,
    load_compose,
)


def _final_user(path: Path) -> str | None:
    return last(path, "USER")


@pytest.mark.parametrize("path", [WORKER_DOCKERFILE, RQ_DASHBOARD_DIR / "Dockerfile"], ids=["worker", "rq-dashboard"])
def test_slim_official_base_and_non_root_user(path: Path) -> None:
    words = [w for w, _ in dockerfile_instructions(path)]
    base = last(path, "FROM")
    assert base is not None and re.fullmatch(r"python:3\.\d+-slim", base), base
    user = _final_user(path)
    assert user and user.split(":")[0] not in ("root", "0"), f"{path} must run as a non-root user"
    # nothing runs as root after the switch
    assert "RUN" not in words[words.index("USER"):], f"{path}: RUN after USER"
    assert "HEALTHCHECK" in words


def test_worker_image_runs_graflow_worker_from_env() -> None:
    assert exec_form(last(WORKER_DOCKERFILE, "ENTRYPOINT") or "") == ["graflow", "worker"]
    assert exec_form(last(WORKER_DOCKERFILE, "CMD") or "[]") == []  # settings come from env
    health = last(WORKER_DOCKERFILE, "HEALTHCHECK") or ""
    options, _, cmd = health.partition("CMD")
    assert exec_form(cmd.strip()) == ["graflow", "worker", "--check"]
    assert "--interval=" in options and "--timeout=" in options
    assert last(WORKER_DOCKERFILE, "STOPSIGNAL") == "SIGTERM"
    env = dockerfile_env(WORKER_DOCKERFILE)
    # the demo's `examples.pool_demo` is importable: examples/ is copied under PYTHONPATH
    workdirs = [a for w, a in dockerfile_instructions(WORKER_DOCKERFILE) if w == "WORKDIR"]
    assert env["PYTHONPATH"] == "/app" and workdirs[-1] == "/app"
    assert "examples/" in copy_sources(WORKER_DOCKERFILE)
    assert env["GRAFLOW_CHECKPOINT_DIR"].startswith("/data/")
    # one image for every graflow command: the dashboard's extra is installed too
    install = re.search(r"pip install '/src\[([a-z,]+)\]'", WORKER_DOCKERFILE.read_text())
    assert install and {"metrics", "rich", "dashboard"} <= set(install.group(1).split(","))


@pytest.mark.parametrize(
    ("dockerfile", "context"),
    [(WORKER_DOCKERFILE, ROOT), (RQ_DASHBOARD_DIR / "Dockerfile", RQ_DASHBOARD_DIR)],
    ids=["worker", "rq-dashboard"],
)
def test_every_copy_source_is_in_the_build_context(dockerfile: Path, context: Path) -> None:
    patterns = dockerignore_patterns(context)
    sources = copy_sources(dockerfile)
    assert sources
    for source in sources:
        assert (context / source).exists(), f"{dockerfile}: COPY {source}: not in {context}"
        assert not ignored(source, patterns), f"{dockerfile}: COPY {source} is excluded by .dockerignore"


def test_build_contexts_match_the_compose_file() -> None:
    services = load_compose()["services"]
    worker = services["worker"]["build"]
    assert (ROOT / "deploy" / worker["context"]).resolve() == ROOT
    assert (ROOT / worker["dockerfile"]).resolve() == WORKER_DOCKERFILE
    assert (ROOT / "deploy" / services["rq-dashboard"]["build"]["context"]).resolve() == RQ_DASHBOARD_DIR
    # graflow's dashboard is no image of its own: it runs in the workers' image
    assert services["dashboard"]["build"] == worker and services["dashboard"]["image"] == services["worker"]["image"]


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = dockerignore_patterns(ROOT)
    for path in (".venv", ".venv/bin/python", ".git", "checkpoints/x.pkl", "deploy/.env", ".env",
                 "graflow/__pycache__/x.pyc", ".pytest_cache", ".mypy_cache", "graflow.egg-info"):  # fmt: skip
        assert ignored(path, patterns), f".dockerignore lets {path} into the build context"
    for path in ("pyproject.toml", "README.md", "graflow/cli/__init__.py", "examples/pool_demo.py"):
        assert not ignored(path, patterns), f".dockerignore drops {path}, which the image needs"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_package_builds_from_exactly_the_copied_files(tmp_path: Path) -> None:
    """``COPY pyproject.toml README.md …; COPY graflow/ …; RUN pip install .``, without Docker."""
    patterns = dockerignore_patterns(ROOT)
    context = tmp_path / "src"
    context.mkdir()
    installed_from = [s for s in copy_sources(WORKER_DOCKERFILE) if s != "examples/"]
    for source in installed_from:
        src = ROOT / source
        if src.is_dir():
            for f in src.rglob("*"):
                rel = f.relative_to(ROOT).as_posix()
                if f.is_file() and not ignored(rel, patterns):
                    (context / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, context / rel)
        else:
            shutil.copy2(src, context / source)
    out = tmp_path / "wheels"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(context)],
        capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("graflow-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "graflow = graflow.cli:main" in zf.read(entry_points).decode()  # the ENTRYPOINT
    assert "graflow/cli/worker.py" in names and "graflow/py.typed" in names
    # `graflow dashboard` in the image: its pages ship in the wheel, its extra is declared
    assert {"graflow/dashboard/static/runs.html", "graflow/dashboard/static/run.js"} <= set(names)
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Provides-Extra: dashboard" in metadata
    assert not any("__pycache__" in n or n.startswith(("tests/", "examples/")) for n in names)
