"""README.md stays true to the code: quick start, snippets, commands, configuration.

``make demo`` runs for real, in a copy of the repository with a fresh virtualenv, as a new
user would run it. ``make test`` is not run from here (it runs this suite: CI runs it).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from deploytools import ROOT, load_compose, read_env_file, service_argv

README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def readme() -> str:
    return README.read_text()


def section(title: str) -> str:
    """The text of the ``## title`` section (up to the next ``## ``)."""
    text = readme()
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


def blocks(text: str, lang: str | None = None) -> list[str]:
    return [body for kind, body in FENCE.findall(text) if lang is None or kind == lang]


def commands(block: str) -> list[str]:
    """Shell lines of a block, without comments and blank lines."""
    out = []
    for line in block.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def test_quick_start_is_exactly_make_demo_and_make_test() -> None:
    quick = section("Quick start")
    first = blocks(quick, "sh")[0]
    assert commands(first) == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test", "lint"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no {target} target"


def _repo_files() -> list[str]:
    """What a clone would contain: tracked files plus new files not ignored by git."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_make_demo_works_on_a_fresh_copy(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for name in _repo_files():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    assert not (repo / ".venv").exists()
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "VIRTUAL_ENV", "PYTHONPATH")
           and not k.startswith("GRAFLOW_")}  # fmt: skip
    venv = tmp_path / "venv"
    proc = subprocess.run(["make", "demo", f"VENV={venv}"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=840)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (venv / "bin" / "graflow").exists()  # installed into the fresh virtualenv
    shown = blocks(section("Quick start"), "text")[0]
    for line in shown.strip().splitlines():
        assert line in proc.stdout.splitlines(), f"README shows {line!r}; make demo printed:\n{proc.stdout}"
    # the demo wrote nothing into the repository (its checkpoint goes to a temp dir)
    assert not (repo / "checkpoints").exists()


def _source_of(text_before: str) -> str | None:
    names = re.findall(r"examples/(\w+\.py)", text_before)
    return names[-1] if names else None


def test_every_python_snippet_is_part_of_an_example_file() -> None:
    """Each ```python block is a verbatim excerpt of the examples/ file named just before it."""
    text = readme()
    previous_end = 0
    checked = 0
    for m in FENCE.finditer(text):
        if m.group(1) == "python":
            name = _source_of(text[previous_end:m.start()])
            assert name, f"no examples/<file>.py named before the snippet:\n{m.group(2)[:200]}"
            source = (ROOT / "examples" / name).read_text()
            assert m.group(2).strip("\n") in source, f"README snippet is not in examples/{name}"
            checked += 1
        previous_end = m.end()
    assert checked >= 6


def test_readme_and_examples_name_each_other() -> None:
    text = readme()
    shown = set(re.findall(r"examples/(\w+\.py)", text))
    on_disk = {p.name for p in (ROOT / "examples").glob("*.py")}
    assert shown <= on_disk, f"README names missing examples: {sorted(shown - on_disk)}"
    assert on_disk <= shown, f"examples the README does not mention: {sorted(on_disk - shown)}"


def _graflow_lines() -> list[str]:
    """`graflow …` lines of the shell blocks, including those run in a container."""
    demo = " ".join(shlex.quote(a) for a in service_argv("demo", read_env_file()))
    out = []
    for block in blocks(readme(), "sh"):
        for line in commands(block):
            if line.startswith("graflow "):
                out.append(line)
            elif " exec worker graflow " in line:
                out.append(line.split(" exec worker ", 1)[1])
            elif line.startswith("docker compose") and " run --rm demo" in line:
                out.append(demo + line.split(" run --rm demo", 1)[1])  # entrypoint + arguments
    return out


def test_documented_graflow_commands_parse() -> None:
    """Every `graflow …` line in a shell block uses a real command and real flags."""
    import click

    from graflow.cli import cli

    def parse(argv: list[str]) -> None:
        """Parse ``graflow argv`` down to its last subcommand, running nothing."""
        command: click.Command = cli
        ctx = click.Context(cli, info_name="graflow")
        rest = click.Command.parse_args(command, ctx, argv)
        while isinstance(command, click.Group) and rest:
            _name, sub, rest = command.resolve_command(ctx, rest)
            assert sub is not None
            command, ctx = sub, click.Context(sub, parent=ctx, info_name=_name)
            rest = click.Command.parse_args(command, ctx, rest)
        assert not rest, f"unexpected arguments {rest}"

    lines = _graflow_lines()
    assert {ln.split()[1] for ln in lines} >= {"worker", "submit", "checkpoints", "resume", "status"}
    assert any("--set delay=30" in ln for ln in lines)  # the demo container, with arguments
    for line in lines:
        argv = [re.sub(r"<[^>]+>", "x", a) for a in shlex.split(line)[1:]]
        try:
            parse(argv)
        except (click.ClickException, AssertionError) as exc:
            raise AssertionError(f"README command does not parse: {line}") from exc


def test_cli_exit_codes_match_the_code() -> None:
    from graflow.cli import common

    table = section("CLI")
    assert f"{common.EXIT_TIMEOUT} timeout" in table and f"{common.EXIT_CANCELED} canceled" in table
    assert f"{common.EXIT_NOT_FOUND} unknown session" in table
    assert f"{common.EXIT_REDIS} Redis unreachable" in table and f"{common.EXIT_USAGE} usage" in table


def _env_vars_read_by_graflow() -> set[str]:
    names: set[str] = set()
    pattern = re.compile(r"""(?:environ\.get|getenv|env\.get|environ\[)\(?\s*["']([A-Z][A-Z0-9_]+)["']""")
    for path in (ROOT / "graflow").rglob("*.py"):
        text = path.read_text()
        names |= set(pattern.findall(text))
        names |= set(re.findall(r"""^ENV_VAR\s*=\s*["']([A-Z0-9_]+)["']""", text, re.M))
        for group in re.findall(r"for var in \(([^)]*)\)", text):  # loops over variable names
            names |= set(re.findall(r"""["']([A-Z][A-Z0-9_]+)["']""", group))
    return names


def test_configuration_table_lists_every_variable() -> None:
    config = section("Configuration")
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", config))
    read = _env_vars_read_by_graflow()
    assert {"GRAFLOW_REDIS_URL", "GRAFLOW_SECRET_KEY", "GRAFLOW_QUEUE", "GRAFLOW_CONCURRENCY"} <= read
    missing = read - documented
    assert not missing, f"variables graflow reads but README's Configuration omits: {sorted(missing)}"
    in_compose = set(read_env_file())
    assert not in_compose - documented, f"undocumented: {sorted(in_compose - documented)}"


def test_benchmarks_and_compose_commands_exist() -> None:
    text = readme()
    for name in re.findall(r"python (benchmarks/\w+\.py)", text):
        assert (ROOT / name).exists(), name
    assert len(re.findall(r"python (benchmarks/\w+\.py)", text)) == 6
    services = load_compose()["services"]
    assert "--profile demo run --rm demo" in text and services["demo"]["profiles"] == ["demo"]
    assert "docker compose -f deploy/docker-compose.yml up --build --scale worker=3" in text
