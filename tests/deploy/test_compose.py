"""deploy/docker-compose.yml: its structure, then its services run as local processes.

Docker is not needed (nor available in CI): the ``worker``, ``demo`` and ``dashboard``
services' commands and environments are taken from the compose file, the image
(worker/Dockerfile) and deploy/.env.example, and run as subprocesses. Only what is specific
to the host changes: the Redis host ``redis`` becomes the test's Redis, the checkpoint
volume a temporary directory, the image's /app this repository, ports in the container
free ports on loopback, and the key prefix and queue are private.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from deploytools import (
    DEPLOY,
    ENV_EXAMPLE,
    ROOT,
    RQ_DASHBOARD_DIR,
    WORKER_DOCKERFILE,
    Procs,
    base_env,
    compose_variables,
    dockerfile_env,
    exec_form,
    interpolate,
    last,
    load_compose,
    local_argv,
    parse_duration,
    read_env_file,
    service_argv,
    service_env,
    wait_until,
)

SERVICES = {"redis", "worker", "dashboard", "rq-dashboard", "prometheus", "demo"}
#: Where graflow's dashboard listens inside its container (its entrypoint says so).
DASHBOARD_PORT = "9182"


def _cmd_text(value: Any) -> str:
    return " ".join(value) if isinstance(value, list) else str(value)


def _named_volume_mounts(spec: dict[str, Any], top_volumes: dict[str, Any]) -> dict[str, str]:
    """``{container path: volume name}`` for the named volumes a service mounts."""
    mounts = {}
    for item in spec.get("volumes", []):
        if isinstance(item, str):
            source, _, target = item.partition(":")
            target = target.split(":")[0]
        else:
            source, target = item.get("source", ""), item.get("target", "")
        if source in top_volumes:
            mounts[target] = source
    return mounts


# -- structure ------------------------------------------------------------------------------


def test_services_and_redis_persistence() -> None:
    compose = load_compose()
    services = compose["services"]
    assert set(services) >= SERVICES
    top_volumes = compose.get("volumes") or {}
    redis = services["redis"]
    assert str(redis["image"]).startswith("redis:")  # the official image
    command = _cmd_text(redis["command"])
    assert "redis-server" in command
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert "/data" in _named_volume_mounts(redis, top_volumes)  # AOF on a named volume
    check = redis["healthcheck"]
    assert "redis-cli" in _cmd_text(check["test"]) and "ping" in _cmd_text(check["test"])
    assert parse_duration(check["interval"]) <= 10 and check["retries"] >= 3


def test_worker_service_scales_and_shuts_down_warm() -> None:
    compose = load_compose()
    worker = compose["services"]["worker"]
    build = worker["build"]
    assert (DEPLOY / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == WORKER_DOCKERFILE
    assert worker["deploy"]["replicas"] >= 2
    # `--scale worker=3` needs containers without fixed names or host ports
    assert "container_name" not in worker and "ports" not in worker
    assert parse_duration(worker["stop_grace_period"]) >= 30
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    # no command: the image's ENTRYPOINT `graflow worker`, configured by environment
    assert service_argv("worker", read_env_file()) == ["graflow", "worker"]
    env = service_env("worker", read_env_file())
    assert env["GRAFLOW_REDIS_URL"].startswith("redis://redis:")
    for name in ("GRAFLOW_SECRET_KEY", "GRAFLOW_CONCURRENCY", "GRAFLOW_HEARTBEAT",
                 "GRAFLOW_QUEUE", "GRAFLOW_KEY_PREFIX", "GRAFLOW_CHECKPOINT_DIR"):  # fmt: skip
        assert name in env


def test_checkpoints_are_shared_by_every_replica() -> None:
    compose = load_compose()
    worker = compose["services"]["worker"]
    ckdir = service_env("worker", read_env_file())["GRAFLOW_CHECKPOINT_DIR"]
    if ckdir.startswith(("redis://", "rediss://")):
        return
    mounts = _named_volume_mounts(worker, compose.get("volumes") or {})
    assert any(ckdir == t or ckdir.startswith(t.rstrip("/") + "/") for t in mounts), (
        f"GRAFLOW_CHECKPOINT_DIR={ckdir} is not on a named volume shared by the replicas: {mounts}"
    )
    # the image creates the mount point owned by its user: the volume starts out writable
    assert dockerfile_env(WORKER_DOCKERFILE)["GRAFLOW_CHECKPOINT_DIR"] == ckdir
    assert f"chown graflow:graflow {ckdir}" in WORKER_DOCKERFILE.read_text()


def _mounts(spec: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """``{container path: (source, mode)}`` of a service's short-syntax volumes."""
    out = {}
    for item in spec.get("volumes", []):
        source, target, *mode = str(item).split(":")
        out[target] = (source, mode[0] if mode else "rw")
    return out


def test_rq_dashboard_and_demo_services() -> None:
    services = load_compose()["services"]
    rq_dashboard = services["rq-dashboard"]
    ports = [interpolate(p, {}) for p in rq_dashboard["ports"]]
    assert ports == ["127.0.0.1:9181:9181"]  # loopback only, on its usual port
    assert [interpolate(p, read_env_file()) for p in rq_dashboard["ports"]] == ports
    assert "${RQ_DASHBOARD_PORT:-9181}" in rq_dashboard["ports"][0]
    assert str(interpolate(services["redis"]["ports"][0], {})).startswith("127.0.0.1:")
    assert (DEPLOY / rq_dashboard["build"]["context"]).resolve() == RQ_DASHBOARD_DIR
    assert (RQ_DASHBOARD_DIR / "Dockerfile").exists()
    assert service_env("rq-dashboard", {})["RQ_DASHBOARD_REDIS_URL"].startswith("redis://redis:")
    assert rq_dashboard["depends_on"]["redis"]["condition"] == "service_healthy"
    demo = services["demo"]
    assert demo["profiles"] == ["demo"]  # not started by a plain `up`
    assert demo["image"] == services["worker"]["image"] and demo["build"] == services["worker"]["build"]
    argv = service_argv("demo", read_env_file())
    assert argv[:3] == ["graflow", "submit", "examples.pool_demo:wf"] and "--wait" in argv


def test_dashboard_service_runs_graflow_dashboard_in_the_worker_image() -> None:
    compose = load_compose()
    services = compose["services"]
    dashboard, worker = services["dashboard"], services["worker"]
    assert dashboard["image"] == worker["image"] and dashboard["build"] == worker["build"]
    argv = service_argv("dashboard", read_env_file())
    assert argv == ["graflow", "dashboard", "--host", "0.0.0.0", "--port", DASHBOARD_PORT, "--no-auth"]
    # published on the host's loopback only, to the port it listens on
    ports = [str(interpolate(p, read_env_file())) for p in dashboard["ports"]]
    assert ports == [f"127.0.0.1:9182:{DASHBOARD_PORT}"]
    assert [str(interpolate(p, {"GRAFLOW_DASHBOARD_PORT": "8000"})) for p in dashboard["ports"]] == [
        f"127.0.0.1:8000:{DASHBOARD_PORT}"
    ]
    # the workers' settings, their lease length, and optional credentials (empty: none)
    env = service_env("dashboard", read_env_file())
    worker_env = service_env("worker", read_env_file())
    shared = ("GRAFLOW_REDIS_URL", "REDIS_PASSWORD", "GRAFLOW_SECRET_KEY", "GRAFLOW_KEY_PREFIX",
              "GRAFLOW_CHECKPOINT_DIR", "GRAFLOW_HEARTBEAT")  # fmt: skip
    assert {k: env[k] for k in shared} == {k: worker_env[k] for k in shared}
    assert {k: env[k] for k in ("GRAFLOW_DASHBOARD_TOKEN", "GRAFLOW_DASHBOARD_USER", "GRAFLOW_DASHBOARD_PASSWORD")} == {
        "GRAFLOW_DASHBOARD_TOKEN": "", "GRAFLOW_DASHBOARD_USER": "", "GRAFLOW_DASHBOARD_PASSWORD": ""}  # fmt: skip
    set_env = service_env("dashboard", {"GRAFLOW_DASHBOARD_TOKEN": "t0k", "GRAFLOW_HEARTBEAT": "7"})
    assert set_env["GRAFLOW_DASHBOARD_TOKEN"] == "t0k" and set_env["GRAFLOW_HEARTBEAT"] == "7"
    assert "GRAFLOW_METRICS_PORT" not in env  # a worker's setting, not the dashboard's
    # the workers' checkpoints, at the path the workers record them under, read-only
    ckdir = env["GRAFLOW_CHECKPOINT_DIR"]
    mounts, worker_mounts = _mounts(dashboard), _mounts(worker)
    assert mounts[ckdir] == ("checkpoints", "ro") and worker_mounts[ckdir] == ("checkpoints", "rw")
    assert "checkpoints" in (compose.get("volumes") or {})
    assert dashboard["depends_on"]["redis"]["condition"] == "service_healthy"
    assert dashboard["restart"] == "unless-stopped"
    # its own healthcheck, not the image's `graflow worker --check`: /healthz, with python
    check = dashboard["healthcheck"]
    assert not check.get("disable") and check["test"][:3] == ["CMD", "python", "-c"]
    assert f"http://127.0.0.1:{DASHBOARD_PORT}/healthz" in check["test"][3]
    assert parse_duration(check["interval"]) <= 60 and check["retries"] >= 1
    assert parse_duration(check["timeout"]) > 5  # longer than the probe's own urlopen timeout


def test_dashboard_service_needs_its_no_auth_flag_to_listen_on_every_address() -> None:
    """Without --no-auth and without credentials, `--host 0.0.0.0` is refused (exit 2): the
    flag is what lets the container listen; the host's loopback is then the boundary."""
    argv = [a for a in service_argv("dashboard", read_env_file()) if a != "--no-auth"]
    proc = subprocess.run(local_argv(argv), env=base_env(), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "refusing to serve 0.0.0.0 without credentials" in proc.stderr, proc.stderr


def test_prometheus_scrapes_every_worker_replica() -> None:
    """Workers serve /metrics on the compose network only; Prometheus finds every replica
    by DNS on that port and publishes its own UI on loopback only."""
    import yaml

    services = load_compose()["services"]
    env = service_env("worker", read_env_file())
    port = int(env["GRAFLOW_METRICS_PORT"])
    assert port > 0 and env["GRAFLOW_METRICS_HOST"] == "0.0.0.0"  # reachable from the prometheus container
    assert "ports" not in services["worker"]  # ... and from nowhere else
    prom = services["prometheus"]
    assert str(prom["image"]).startswith("prom/prometheus")
    ports = [interpolate(p, read_env_file()) for p in prom["ports"]]
    assert ports and all(str(p).startswith("127.0.0.1:") for p in ports)
    mounted = {item.split(":")[1]: item.split(":")[0] for item in prom["volumes"] if item.startswith("./")}
    config_path = DEPLOY / mounted["/etc/prometheus/prometheus.yml"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    config = yaml.safe_load(config_path.read_text())
    [job] = config["scrape_configs"]
    [sd] = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["type"] == "A" and sd["port"] == port
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # the worker image installs the metrics extra (prometheus-client)
    assert re.search(r"pip install '/src\[[a-z,]*\bmetrics\b[a-z,]*\]'", WORKER_DOCKERFILE.read_text())


def test_env_example_covers_every_variable_and_holds_no_secret() -> None:
    example = read_env_file()
    used = compose_variables(load_compose())
    assert used == set(example), (
        f"in compose only: {sorted(used - set(example))}; in .env.example only: "
        f"{sorted(set(example) - used)}"
    )
    assert example["GRAFLOW_SECRET_KEY"] == "" and example["REDIS_PASSWORD"] == ""
    text = ENV_EXAMPLE.read_text()
    assert "secrets.token_hex" in text  # says how to generate a key
    assert "deploy/.env" in (ROOT / ".gitignore").read_text()  # the real one stays local


# -- the services, run ----------------------------------------------------------------------


def _rq_cleanup(client: Any, prefix: str, queue: str) -> None:
    sessions = {
        k.decode().split("{", 1)[1].split("}", 1)[0]
        for k in client.scan_iter(match=f"{prefix}:session:*", count=1000)
    }
    names = list(client.scan_iter(match=f"{prefix}*", count=1000))
    names += list(client.scan_iter(match=f"rq:*{queue}*", count=1000))
    names += [k for k in client.scan_iter(match="rq:*gf-*", count=1000)
              if any(s in k.decode(errors="replace") for s in sessions)]  # fmt: skip
    if names:
        client.unlink(*set(names))
    for set_key in ("rq:queues", "rq:workers"):
        stale = [m for m in client.smembers(set_key) if queue in m.decode(errors="replace")]
        if stale:
            client.srem(set_key, *stale)


def run_pool_and_demo(redis_url: str, tmp_path: Path, extra: dict[str, str] | None = None,
                      replicas: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Start the worker service's replicas and run the demo service against ``redis_url``."""
    import redis
    from rq import Queue, Worker

    compose = load_compose()
    values = {**read_env_file(), **(extra or {})}
    prefix = f"gfdeploy{uuid.uuid4().hex[:10]}"
    queue = f"{prefix}-jobs"
    ckdir = tmp_path / "checkpoints"
    workdir = tmp_path / "app"
    workdir.mkdir()
    image_env = dockerfile_env(WORKER_DOCKERFILE)
    volume_target = image_env["GRAFLOW_CHECKPOINT_DIR"]

    def host_env(service: str) -> dict[str, str]:
        env = {**base_env(), **image_env, **service_env(service, values)}
        assert env["GRAFLOW_REDIS_URL"] == "redis://redis:6379/0"
        assert env["GRAFLOW_CHECKPOINT_DIR"] == volume_target
        env["GRAFLOW_REDIS_URL"] = redis_url  # the host `redis` → the test's server
        env["GRAFLOW_CHECKPOINT_DIR"] = str(ckdir)  # the shared volume → a directory
        env["PYTHONPATH"] = env["PYTHONPATH"].replace("/app", str(ROOT))  # the image's /app
        env["GRAFLOW_KEY_PREFIX"] = prefix
        env["GRAFLOW_QUEUE"] = queue  # workers serve it, `graflow submit` sends to it
        return env

    replicas = replicas or compose["services"]["worker"]["deploy"]["replicas"]
    worker_argv = local_argv(service_argv("worker", values))
    worker_env = host_env("worker")
    client = redis.Redis.from_url(worker_env["GRAFLOW_REDIS_URL"], password=values.get("REDIS_PASSWORD") or None)
    procs = Procs()
    try:
        # Each replica's metrics port (the compose file's, one per container) becomes a free
        # port on loopback here: the replicas share this host.
        assert worker_env["GRAFLOW_METRICS_PORT"] == "9100"
        metrics_ports = [_free_port() for _ in range(replicas)]
        workers = [procs.start(worker_argv, {**worker_env, "GRAFLOW_METRICS_PORT": str(port),
                                             "GRAFLOW_METRICS_HOST": "127.0.0.1"}, workdir)
                   for port in metrics_ports]  # fmt: skip

        def registered() -> bool:
            dead = [p for p in workers if p.poll() is not None]
            assert not dead, procs.log(dead[0])
            return len(Worker.all(connection=client, queue=Queue(queue, connection=client))) == replicas

        wait_until(registered, 20, "the worker replicas to register with rq")
        # rq-dashboard and `rq info` list the pool's queue
        assert f"rq:queue:{queue}".encode() in client.smembers("rq:queues")

        # the image's HEALTHCHECK, with a worker's environment
        health = exec_form(last(WORKER_DOCKERFILE, "HEALTHCHECK").split("CMD", 1)[1].strip())  # type: ignore[union-attr]
        check = subprocess.run(local_argv(health), env=worker_env, cwd=workdir, capture_output=True,
                               text=True, timeout=30)  # fmt: skip
        assert check.returncode == 0, check.stderr

        demo = subprocess.run(local_argv(service_argv("demo", values)), env=host_env("demo"),
                              cwd=workdir, capture_output=True, text=True, timeout=90)  # fmt: skip
        assert demo.returncode == 0, demo.stderr + "".join(procs.log(w) for w in workers)
        session_id, result_line = demo.stdout.strip().splitlines()
        assert re.fullmatch(r"[0-9a-f]{32}", session_id)
        result = json.loads(result_line)
        assert result["words"] == 23 and result["top"] == ["the", "dog", "fox"]
        assert result["workers"]  # each entry is host-pid of a worker that ran a shard

        # the worker that completed `merge` wrote its checkpoint to GRAFLOW_CHECKPOINT_DIR
        metas = sorted(ckdir.glob("*.meta.json"))
        assert [m.name for m in metas] == [f"session_{session_id}_step_6.meta.json"]
        assert json.loads(metas[0].read_text())["user_metadata"]["stage"] == "merged"

        # the dashboard service, on the same Redis, prefix and checkpoint volume, shows the run
        _run_dashboard_service(procs, host_env("dashboard"), values, session_id, workdir)

        # every replica serves /metrics; together they ran the demo's tasks
        completed = 0.0
        for port in metrics_ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                text = response.read().decode()
            assert f'graflow_queue_load{{queue="{queue}"}} 0.0' in text and "graflow_redis_up 1.0" in text
            completed += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                             if line.startswith("graflow_task_attempts_total{") and 'outcome="completed"' in line)  # fmt: skip
        assert completed >= 6  # the demo's tasks, all completed

        # SIGTERM (compose's stop signal): warm shutdown, exit 0
        for w in workers:
            os.kill(w.pid, signal.SIGTERM)
        for w in workers:
            assert w.wait(30) == 0, procs.log(w)
        return {"session_id": session_id, "result": result, "env": worker_env}
    finally:
        procs.stop_all()
        _rq_cleanup(client, prefix, queue)
        client.close()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _flag(argv: list[str], flag: str, container_value: str, host_value: str) -> list[str]:
    """``argv`` with ``flag``'s value, the container's, swapped for the host's."""
    i = argv.index(flag)
    assert argv[i + 1] == container_value, argv
    return [*argv[: i + 1], host_value, *argv[i + 2 :]]


def _run_dashboard_service(procs: Procs, env: dict[str, str], values: dict[str, str], session_id: str,
                           workdir: Path) -> None:  # fmt: skip
    """The ``dashboard`` service's command, environment and healthcheck, run here: it answers
    /healthz, lists the demo's run as completed and reads its checkpoint's meta.json from the
    volume; credentials set in .env are asked for despite --no-auth."""
    spec = load_compose()["services"]["dashboard"]
    port = _free_port()
    # host-specific only: the container's every-address listener becomes one on loopback
    argv = local_argv(service_argv("dashboard", values))
    argv = _flag(_flag(argv, "--host", "0.0.0.0", "127.0.0.1"), "--port", DASHBOARD_PORT, str(port))
    assert argv[-1] == "--no-auth"
    base = f"http://127.0.0.1:{port}"
    test = interpolate(spec["healthcheck"]["test"], values)
    assert test[:2] == ["CMD", "python"]
    probe = [sys.executable, *test[2:-1], test[-1].replace(f"127.0.0.1:{DASHBOARD_PORT}/", f"127.0.0.1:{port}/")]
    assert probe[-1] != test[-1]

    def healthcheck() -> int:
        return subprocess.run(probe, env=base_env(), capture_output=True, timeout=30).returncode

    dashboard = procs.start(argv, env, workdir)

    def up() -> bool:
        assert dashboard.poll() is None, procs.log(dashboard)
        return f"graflow dashboard on {base}/" in procs.log(dashboard)

    wait_until(up, 30, "the dashboard to listen")
    assert _get(f"{base}/healthz") == (200, {"ok": True})  # no credentials needed
    assert healthcheck() == 0  # the service's own healthcheck
    token = values.get("GRAFLOW_DASHBOARD_TOKEN") or ""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if token:
        assert env["GRAFLOW_DASHBOARD_TOKEN"] == token
        assert _get(f"{base}/api/runs")[0] == 401  # --no-auth does not switch a token off
        assert _get(f"{base}/api/runs", {"authorization": "Bearer wrong"})[0] == 401
    status, doc = _get(f"{base}/api/runs", headers)
    assert status == 200, doc
    [row] = [r for r in doc["runs"] if r["session_id"] == session_id]
    assert row["state"] == "completed" and row["done"]
    assert doc["prefix"] == env["GRAFLOW_KEY_PREFIX"]
    status, run = _get(f"{base}/api/runs/{session_id}", headers)
    assert status == 200, run
    [checkpoint] = run["checkpoints"]  # meta.json, read from the checkpoint volume
    assert checkpoint["readable"] and checkpoint["metadata"]["stage"] == "merged", checkpoint
    # stopped, the healthcheck fails
    os.killpg(dashboard.pid, signal.SIGTERM)
    dashboard.wait(20)
    assert healthcheck() != 0


@pytest.mark.redis
@pytest.mark.slow
def test_worker_replicas_and_demo_producer_run(redis_url: str, tmp_path: Path) -> None:
    run_pool_and_demo(redis_url, tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("redis-server") and shutil.which("redis-cli") and shutil.which("sh")),
                    reason="needs redis-server, redis-cli and sh")  # fmt: skip
def test_redis_service_with_password_serves_workers_and_demo(tmp_path: Path) -> None:
    """The redis service's own command and healthcheck, with REDIS_PASSWORD set in .env."""
    import redis

    password = "pa ss/w@rd:1"
    values = {**read_env_file(), "REDIS_PASSWORD": password}
    spec = load_compose()["services"]["redis"]
    argv = interpolate(spec["command"], values)
    assert argv[:2] == ["sh", "-c"]
    port = _free_port()
    data = tmp_path / "data"
    data.mkdir()
    # host-specific only: a free port on loopback and a directory instead of the volume
    argv = [*argv[:2], f"{argv[2]} --port {port} --bind 127.0.0.1 --dir {data}"]
    env = {**base_env(), **service_env("redis", values)}
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
    try:
        test = interpolate(spec["healthcheck"]["test"], values)
        assert test[0] == "CMD-SHELL"
        probe = ["sh", "-c", test[1].replace("redis-cli", f"redis-cli -p {port}")]

        def healthy(e: dict[str, str]) -> bool:
            return subprocess.run(probe, env=e, capture_output=True, timeout=10).returncode == 0

        wait_until(lambda: healthy(env), 10, "the redis healthcheck to pass")
        assert not healthy({**env, "REDIS_PASSWORD": "wrong"})
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        client = redis.Redis(port=port, password=password)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert (data / "appendonlydir").is_dir()
        client.close()
        # workers, the demo and the dashboard get the password from REDIS_PASSWORD, not from
        # the URL; the dashboard, given a token in .env, asks for it
        run_pool_and_demo(f"redis://127.0.0.1:{port}/0", tmp_path,
                          {"REDIS_PASSWORD": password, "GRAFLOW_DASHBOARD_TOKEN": "s3cret-t0ken"}, 1)  # fmt: skip
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)


def test_rq_dashboard_launcher_fills_in_the_password() -> None:
    spec = importlib.util.spec_from_file_location("rq_dashboard_run", RQ_DASHBOARD_DIR / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fill = module.with_password
    assert fill("redis://redis:6379/0", "") == "redis://redis:6379/0"
    assert fill("redis://redis:6379/0", "p@ss/w:1") == "redis://:p%40ss%2Fw%3A1@redis:6379/0"
    assert fill("redis://bob@redis:6379/0", "pw") == "redis://bob:pw@redis:6379/0"
    assert fill("redis://:own@redis:6379/0", "other") == "redis://:own@redis:6379/0"
    assert fill("rediss://redis:6380/1", "pw") == "rediss://:pw@redis:6380/1"
