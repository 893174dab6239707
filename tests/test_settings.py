"""``graflow.settings``: every variable read once, in one place, checked, and documented."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
from pathlib import Path

import pytest

from graflow import defaults, settings
from graflow.exceptions import ConfigError
from graflow.settings import VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[1]
#: The only modules allowed to touch the environment, and why.
ENV_READERS = {
    "graflow/settings.py": "reads every setting",
    "graflow/crash.py": "crash-injection test hooks, read where they fire",
}


def _env_accesses(path: Path) -> list[int]:
    """Lines of ``path`` that use ``os.environ`` or ``os.getenv`` (or ``environ``/``getenv`` imported)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb")) or (isinstance(node, ast.ImportFrom) and node.module == "os"
              and any(alias.name in ("environ", "getenv", "environb") for alias in node.names)):
            lines.append(node.lineno)
    return lines


def test_only_settings_reads_the_environment() -> None:
    found = []
    for path in sorted((ROOT / "graflow").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ENV_READERS:
            continue
        found += [f"{rel}:{line}" for line in _env_accesses(path)]
    assert not found, "read the environment through graflow.settings instead:\n" + "\n".join(found)
    assert _env_accesses(ROOT / "graflow/settings.py")  # the check does see an access


def test_every_variable_is_read_by_from_env_and_listed() -> None:
    text = (ROOT / "graflow/settings.py").read_text(encoding="utf-8")
    read = set(re.findall(r"""env\.get\(["']([A-Z][A-Z0-9_]+)["']\)""", text))
    listed = [v.name for v in VARIABLES]
    assert len(listed) == len(set(listed))
    assert read == set(listed), f"read but not listed: {read - set(listed)}; listed, not read: {set(listed) - read}"
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert len(fields) == len(listed)  # one field per variable


def test_max_redeliveries_is_read_one_way() -> None:
    hits = [p.relative_to(ROOT).as_posix() for p in (ROOT / "graflow").rglob("*.py")
            if '"GRAFLOW_MAX_REDELIVERIES"' in p.read_text(encoding="utf-8")]  # fmt: skip
    assert hits == ["graflow/settings.py"]


def _table() -> str:
    rows = ["| Variable | Flag | Default | Meaning |", "|---|---|---|---|"]
    for v in VARIABLES:
        flag = f"`{v.flag}`" if v.flag else "—"
        rows.append(f"| `{v.name}` | {flag} | `{v.default}` | {v.meaning} |")
    return "\n".join(rows)


def test_configuration_page_matches_the_settings() -> None:
    text = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    start = text.index("-->\n", text.index("<!-- generated from graflow.settings.VARIABLES")) + 4
    end = text.index("\n<!-- end of generated table -->")
    assert text[start:end] == _table(), "docs/configuration.md is stale; its table should read:\n" + _table()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [v.name for v in VARIABLES if f"`{v.name}`" not in readme]
    assert not missing, f"README's Configuration table omits {missing}"


def test_defaults_come_from_defaults_py() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert (s.url, s.key_prefix, s.served_queues) == (defaults.DEFAULT_URL, defaults.DEFAULT_PREFIX, ("graflow",))
    assert (s.session_ttl, s.graph_ttl) == (defaults.WEEK, defaults.WEEK)
    assert s.max_redeliveries == defaults.DEFAULT_MAX_REDELIVERIES and s.checkpoint_ttl is None
    assert s.redis_retry_for == 60.0 and s.worker_redis_wait == 10.0 and s.secret_keys == ()
    assert s.checkpoint_dir == "checkpoints" and s.max_value_bytes == 64 * 1024 * 1024


def test_values_flags_and_blanks() -> None:
    env = {
        "GRAFLOW_REDIS_URL": "", "REDIS_URL": "redis://r:1/2", "REDIS_PASSWORD": "pw",
        "GRAFLOW_QUEUE": "a, b,a", "GRAFLOW_SESSION_TTL": "30", "GRAFLOW_GRAPH_TTL": " ",
        "GRAFLOW_CHECKPOINT_TTL": "40", "GRAFLOW_REDIS_RETRY_FOR": "2.5",
        "GRAFLOW_MAX_REDELIVERIES": "7", "GRAFLOW_SECRET_KEY": "k" * 16 + ", " + "j" * 20,
    }  # fmt: skip
    s = Settings.from_env(env)
    assert s.url == "redis://r:1/2" and s.redis_password == "pw" and s.queues == ("a", "b")
    assert (s.session_ttl, s.graph_ttl, s.checkpoint_ttl) == (30, defaults.WEEK, 40)
    assert s.redis_retry_for == 2.5 and s.max_redeliveries == 7
    assert s.secret_keys == (b"k" * 16, b"j" * 20) and "kkkk" not in repr(s) and "pw" not in repr(s)
    flagged = Settings.from_env(env, url="redis://f:1/0", queues=["q"], max_redeliveries=0)
    assert (flagged.url, flagged.queues, flagged.max_redeliveries) == ("redis://f:1/0", ("q",), 0)
    # a flag given is not read from its variable, so a bad variable under it does no harm
    assert Settings.from_env({"GRAFLOW_HEARTBEAT": "soon"}, heartbeat=5).heartbeat == 5.0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GRAFLOW_SESSION_TTL", "a week", "GRAFLOW_SESSION_TTL='a week' is not a positive whole number of seconds; set"),
        ("GRAFLOW_GRAPH_TTL", "-1", "GRAFLOW_GRAPH_TTL='-1' is not a positive whole number"),
        ("GRAFLOW_CHECKPOINT_TTL", "soon", "GRAFLOW_CHECKPOINT_TTL='soon' is not a positive whole number"),
        ("GRAFLOW_MAX_VALUE_BYTES", "64MB", "GRAFLOW_MAX_VALUE_BYTES='64MB' is not a number of bytes; set"),
        ("GRAFLOW_REDIS_RETRY_FOR", "x", "GRAFLOW_REDIS_RETRY_FOR='x' is not a number of seconds; set"),
        ("GRAFLOW_WORKER_REDIS_WAIT", "-2", "GRAFLOW_WORKER_REDIS_WAIT='-2' is not a number of seconds"),
        ("GRAFLOW_MAX_REDELIVERIES", "many", "--max-redeliveries/GRAFLOW_MAX_REDELIVERIES is 'many', not a number"),
        ("GRAFLOW_SECRET_KEY", "short", "the secret key from GRAFLOW_SECRET_KEY is too short"),
        ("GRAFLOW_KEY_PREFIX", "a b", "--prefix/GRAFLOW_KEY_PREFIX"),
        ("GRAFLOW_CRASH_LOOP_DEATHS", "0", "--crash-loop-deaths 0 is invalid"),
        ("GRAFLOW_FINISHED_JOB_TTL", "-1", "GRAFLOW_FINISHED_JOB_TTL='-1' is not a whole number of seconds (0 or more)"),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert message in str(caught.value)


def test_finished_job_ttl_zero_keeps_nothing() -> None:
    assert Settings.from_env({}).finished_job_ttl == defaults.DEFAULT_FINISHED_JOB_TTL == 500
    assert Settings.from_env({"GRAFLOW_FINISHED_JOB_TTL": "0"}).finished_job_ttl == 0
    assert Settings.from_env({"GRAFLOW_FINISHED_JOB_TTL": " 60 "}).finished_job_ttl == 60


def test_current_reads_once_and_reload_reads_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_SESSION_TTL", "11")  # the fixture reloads after each change
    first = settings.current()
    assert first.session_ttl == 11 and settings.current() is first
    os.environ["GRAFLOW_SESSION_TTL"] = "12"  # not through monkeypatch: nothing reloads (undone after the test)
    assert settings.current() is first  # read once: a later change is not seen ...
    settings.reload()
    assert settings.current().session_ttl == 12  # ... until reload()


def test_use_and_using_install_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from graflow.distributed.session import session_ttl
    from graflow.limits import max_redeliveries

    monkeypatch.setenv("GRAFLOW_MAX_REDELIVERIES", "4")
    assert max_redeliveries() == 4
    with settings.using(Settings(max_redeliveries=9, session_ttl=5)) as installed:
        assert settings.current() is installed
        assert max_redeliveries() == 9 and session_ttl() == 5
        monkeypatch.setenv("GRAFLOW_MAX_REDELIVERIES", "1")  # installed settings win over the environment
        assert max_redeliveries() == 9
    assert max_redeliveries() == 1
    settings.use(Settings(max_redeliveries=2))
    try:
        assert max_redeliveries() == 2
    finally:
        settings.use(None)
    assert max_redeliveries() == 1


def test_a_bad_variable_fails_each_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFLOW_GRAPH_TTL", "forever")
    for _ in range(2):
        with pytest.raises(ConfigError, match="GRAFLOW_GRAPH_TTL"):
            settings.current()


def test_the_worker_package_never_imports_the_cli() -> None:
    found = []
    for path in sorted((ROOT / "graflow/worker").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])  # fmt: skip
            found += [f"{path.name}:{node.lineno}" for n in names if n == "graflow.cli" or n.startswith("graflow.cli.")]
    assert not found, found


@pytest.mark.parametrize("module", ["settings", "settings_values"])
def test_settings_imports_only_the_ground_floor(module: str) -> None:
    tree = ast.parse((ROOT / f"graflow/{module}.py").read_text(encoding="utf-8"))
    graflow_imports = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("graflow"):
            graflow_imports |= {f"{node.module}.{a.name}" if node.module == "graflow" else node.module
                                for a in node.names}  # fmt: skip
        elif isinstance(node, ast.Import):
            graflow_imports |= {a.name for a in node.names if a.name.startswith("graflow")}
    allowed = {"graflow.defaults", "graflow.exceptions", "graflow.identifiers", "graflow.settings_values"}
    assert graflow_imports <= allowed - {f"graflow.{module}"}
