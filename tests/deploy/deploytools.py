"""Read the deployment files the way Docker would, so tests can check and run them without it.

No Docker engine is needed: the compose file is parsed with PyYAML (merge keys included),
``${VAR:-default}`` is interpolated from ``deploy/.env.example`` as compose does, and the
Dockerfile's ENTRYPOINT/CMD/ENV/COPY are parsed, so a test can run a service's command with
its environment as local processes, swapping only what is host-specific (the Redis host,
the volume path, the image's /app).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
WORKER_DOCKERFILE = ROOT / "worker" / "Dockerfile"
#: rq-dashboard's image (service ``rq-dashboard``); graflow's dashboard runs in the worker image.
RQ_DASHBOARD_DIR = DEPLOY / "rq-dashboard"

#: Settings of the test process that must not leak into the processes a test starts.
SCRUB = ("GRAFLOW_SECRET_KEY", "GRAFLOW_CHECKPOINT_DIR", "GRAFLOW_KEY_PREFIX", "GRAFLOW_QUEUE",
         "GRAFLOW_REDIS_URL", "REDIS_URL", "REDIS_PASSWORD", "GRAFLOW_CONCURRENCY",
         "GRAFLOW_HEARTBEAT", "GRAFLOW_MAX_REDELIVERIES", "GRAFLOW_SESSION_TTL",
         "GRAFLOW_GRAPH_TTL", "GRAFLOW_CHECKPOINT_TTL", "GRAFLOW_CRASH_AT", "PYTHONPATH",
         "GRAFLOW_DASHBOARD_TOKEN", "GRAFLOW_DASHBOARD_USER", "GRAFLOW_DASHBOARD_PASSWORD")  # fmt: skip


def load_compose() -> dict[str, Any]:
    import yaml

    with open(COMPOSE) as f:
        data = yaml.safe_load(f)  # resolves the <<: merge keys, as compose does
    assert isinstance(data, dict)
    return data


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """``KEY=VALUE`` lines (comments and blanks skipped), as compose reads a ``.env``."""
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=VALUE: {raw!r}"
        out[key.strip()] = value.strip()
    return out


_VAR = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.S)


def compose_variables(document: Any) -> set[str]:
    """Names of the variables interpolated anywhere in a parsed compose document."""
    if isinstance(document, dict):
        return set().union(*(compose_variables(v) for v in document.values()), set())
    if isinstance(document, list):
        return set().union(*(compose_variables(v) for v in document), set())
    if not isinstance(document, str):
        return set()
    names = set()
    for m in _VAR.finditer(document):
        if m.group("braced") is not None:
            names.add(_BRACED.match(m.group("braced")).group("name"))  # type: ignore[union-attr]
        elif m.group("plain"):
            names.add(m.group("plain"))
    return names


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation: ``$$`` → ``$``; ``${V}``, ``${V:-d}``, ``${V-d}``, ``${V:?e}``, ``${V:+x}``."""
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group("dollar"):
            return "$"
        if m.group("plain"):
            return env.get(m.group("plain"), "")
        parsed = _BRACED.match(m.group("braced"))
        assert parsed, f"bad interpolation {m.group(0)!r}"
        name, op, arg = parsed.group("name"), parsed.group("op"), parsed.group("arg") or ""
        current = env.get(name)
        empty = current is None or (current == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if empty else str(current)
        if op in (":?", "?"):
            assert not empty, f"compose would refuse: {name} is required ({arg})"
            return str(current)
        if op in (":+", "+"):
            return "" if empty else arg
        return current or ""

    return _VAR.sub(sub, value)


def service_env(service: str, env_values: dict[str, str]) -> dict[str, str]:
    """The environment compose gives a service's containers (interpolated)."""
    spec = load_compose()["services"][service]
    raw = spec.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: "" if v is None else str(interpolate(v, env_values)) for k, v in raw.items()}


def parse_duration(text: str) -> float:
    """Compose durations: ``60s``, ``1m30s``, ``1h``, ``500ms``."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text))
    assert parts and "".join(n + u for n, u in parts) == str(text), f"bad duration {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


# -- Dockerfiles ---------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, f"{path}: dangling line continuation"
    return out


def exec_form(args: str) -> list[str] | None:
    """A JSON array argument (``["graflow", "worker"]``), else None (shell form)."""
    if not args.startswith("["):
        return None
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def dockerfile_env(path: Path) -> dict[str, str]:
    """The image's ENV settings (``ENV K=V K2=V2`` form)."""
    env: dict[str, str] = {}
    for word, args in dockerfile_instructions(path):
        if word == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"use ENV KEY=VALUE, got {args!r}"
                env[key] = value
    return env


def last(path: Path, instruction: str) -> str | None:
    found = [args for word, args in dockerfile_instructions(path) if word == instruction]
    return found[-1] if found else None


def copy_sources(path: Path) -> list[str]:
    """The context paths every COPY/ADD of a Dockerfile reads (``--from`` copies excluded)."""
    sources = []
    for word, args in dockerfile_instructions(path):
        if word not in ("COPY", "ADD"):
            continue
        parts = exec_form(args) or shlex.split(args)
        parts = [p for p in parts if not p.startswith("--chown") and not p.startswith("--chmod")]
        if any(p.startswith("--from") for p in parts):
            continue
        sources += parts[:-1]
    return sources


def dockerignore_patterns(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.exists():
        return []
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def ignored(relpath: str, patterns: list[str]) -> bool:
    """Whether .dockerignore drops ``relpath`` (or a directory above it) from the context."""
    assert not any(p.startswith("!") for p in patterns), "exceptions (!) are not handled here"
    parts = relpath.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        pat = pattern.strip("/")
        for cand in candidates:
            if fnmatch.fnmatchcase(cand, pat):
                return True
            if pat.startswith("**/") and any(
                fnmatch.fnmatchcase("/".join(cand.split("/")[i:]), pat[3:])
                for i in range(len(cand.split("/")))
            ):
                return True
    return False


def service_argv(service: str, env_values: dict[str, str]) -> list[str]:
    """What a container of ``service`` executes: entrypoint + command, Docker's rules.

    A service's ``entrypoint`` replaces the image's ENTRYPOINT and drops its CMD; a
    ``command`` replaces CMD. Services built from worker/Dockerfile inherit its values.
    """
    spec = load_compose()["services"][service]
    image_entry = exec_form(last(WORKER_DOCKERFILE, "ENTRYPOINT") or "[]") or []
    image_cmd = exec_form(last(WORKER_DOCKERFILE, "CMD") or "[]") or []
    if "entrypoint" in spec:
        entry = spec["entrypoint"]
        entry = shlex.split(entry) if isinstance(entry, str) else list(entry)
        cmd: list[str] = []
    else:
        entry, cmd = image_entry, image_cmd
    if "command" in spec:
        command = spec["command"]
        cmd = shlex.split(command) if isinstance(command, str) else list(command)
    return [str(interpolate(a, env_values)) for a in [*entry, *cmd]]


def local_argv(argv: list[str]) -> list[str]:
    """``graflow …`` inside the image = ``python -m graflow …`` with this interpreter."""
    assert argv and argv[0] == "graflow", argv
    return [sys.executable, "-m", "graflow", *argv[1:]]


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in SCRUB:
        env.pop(name, None)
    return env


# -- processes -------------------------------------------------------------------------------


class Procs:
    """Background processes of one test, each in its own session, logs in files."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[str] = []

    def start(self, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        log = tempfile.NamedTemporaryFile(prefix="graflow-deploy-", suffix=".log", delete=False)  # noqa: SIM115
        self.logs.append(log.name)
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        with open(self.logs[self.procs.index(proc)], errors="replace") as f:
            return f.read()[-4000:]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for name in self.logs:
            os.unlink(name)


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
