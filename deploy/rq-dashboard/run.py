"""Start rq-dashboard on the graflow Redis (the ``rq-dashboard`` service of docker-compose.yml).

The Redis URL comes from ``RQ_DASHBOARD_REDIS_URL`` (compose passes GRAFLOW_REDIS_URL) and
``REDIS_PASSWORD`` fills in a password the URL does not carry, URL-quoted, the way graflow's
own commands do, so one password in deploy/.env serves Redis, workers and dashboard. The
URL travels in the environment, not on the command line, where ``ps`` would show it.
``--json``: graflow's rq jobs use rq's JSONSerializer. Optional HTTP basic auth:
``RQ_DASHBOARD_USERNAME`` / ``RQ_DASHBOARD_PASSWORD``.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote, urlsplit, urlunsplit


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    if not password or parts.password is not None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def main() -> None:
    url = os.environ.get("RQ_DASHBOARD_REDIS_URL") or "redis://redis:6379/0"
    os.environ["RQ_DASHBOARD_REDIS_URL"] = with_password(url, os.environ.get("REDIS_PASSWORD", ""))
    for name in ("RQ_DASHBOARD_USERNAME", "RQ_DASHBOARD_PASSWORD"):
        if not os.environ.get(name):
            os.environ.pop(name, None)  # empty = no basic auth
    args = ["--json", "--bind", "0.0.0.0", "--port", "9181", *sys.argv[1:]]
    os.execv(sys.executable, [sys.executable, "-m", "rq_dashboard", *args])


if __name__ == "__main__":
    main()
