"""``graflow dashboard``: the web view of the pool's runs and workers (``graflow[dashboard]``)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import click

from graflow import settings
from graflow.cli import handler
from graflow.cli.common import EXIT_OK, CliError, key_prefix, pool_options, redis_url
from graflow.exit_codes import EXIT_USAGE

DEFAULT_PORT = 9182


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("dashboard", short_help="serve the web dashboard",
               help="Serve the web dashboard of the pool under the key prefix: every run as a live "
                    "graph, its tasks' attempts, logs, results and checkpoints; the workers; cancel, "
                    "resume and retry. Needs graflow[dashboard]. Binds to 127.0.0.1 unless --host says "
                    "otherwise; another address needs GRAFLOW_DASHBOARD_TOKEN (or --token), basic auth "
                    "(GRAFLOW_DASHBOARD_USER and GRAFLOW_DASHBOARD_PASSWORD), or --no-auth.")  # fmt: skip
@pool_options
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="port to listen on (0: any free port, printed)")  # fmt: skip
@click.option("--queue", "queues", multiple=True, metavar="Q", help="workers page: only workers of this queue")
@click.option("--token", default=None, help="token to ask for (default: $GRAFLOW_DASHBOARD_TOKEN)")
@click.option("--no-auth", is_flag=True,
              help="serve a non-loopback address without credentials (behind a proxy that checks them)")  # fmt: skip
@handler
def command(args: Any) -> int:
    try:
        import uvicorn

        from graflow.dashboard.app import create_app
        from graflow.dashboard.auth import AuthConfig
        from graflow.dashboard.backend import Backend
    except ImportError as exc:
        raise CliError(f"the dashboard needs its extra ({exc.name} is missing) — pip install 'graflow[dashboard]'") from exc
    from graflow.distributed.run import connect
    from graflow.redisconn import mask_url, wrap_connection_errors

    config = settings.Settings.from_env(dashboard_token=args.token)
    auth = AuthConfig(config.dashboard_token, config.dashboard_user, config.dashboard_password)
    if not auth.enabled and not args.no_auth and not _loopback(args.host):
        raise CliError(f"refusing to serve {args.host} without credentials — set GRAFLOW_DASHBOARD_TOKEN (or "
                       "--token), or basic auth, or pass --no-auth behind a proxy that checks them", EXIT_USAGE)  # fmt: skip
    url = redis_url(args.url)
    client, url = connect(url)
    with wrap_connection_errors(url):
        client.ping()
    backend = Backend(client, url, key_prefix(args.prefix), queues=list(args.queues))
    app = create_app(backend, auth)
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"graflow dashboard on http://{shown}:{port}/ (Redis {mask_url(url)}, prefix {backend.prefix!r}"
          f"{', token required' if auth.token else ''}{', basic auth' if auth.basic else ''})", flush=True)  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2))
    server.run(sockets=[sock])
    return EXIT_OK


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the server starts so its port can be printed
    (``--port 0``) and a taken port is a one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc} — choose another --port or --host") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
