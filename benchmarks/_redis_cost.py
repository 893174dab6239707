"""How many Redis commands per second processes cost, from the server's own counters.

``CommandWindow`` reads ``INFO stats`` + ``INFO commandstats`` at the start and end of a
window and subtracts the one INFO of its own that falls inside it. It also runs MONITOR
on a side connection and maps each client's port to a process through /proc (socket
inodes), so the same window is split by process (supervisor, child, the child's rq
scheduler process). MONITOR lists
top-level commands with their client; commands a Lua script runs show as ``lua``
(commandstats counts those too, so its total is top-level + inside scripts).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

_LINE = re.compile(rb'^\+(\d+\.\d+) \[\d+ ([^\]]+)\] "([^"]*)"')


def socket_ports(pids: dict[int, str], redis_port: int) -> dict[int, str]:
    """{local port: role} for the TCP connections to ``redis_port`` held by ``pids``.

    ``pids`` lists ancestors first. A socket held by several of them was inherited across
    a fork: it goes to the first, the one that opened it (redis-py does not use a
    connection in a process other than the one that made it)."""
    inode_port: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                local, remote, inode = cols[1], cols[2], cols[9]
                if int(remote.rsplit(":", 1)[1], 16) == redis_port:
                    inode_port[inode] = int(local.rsplit(":", 1)[1], 16)
    owners: dict[int, str] = {}
    for pid, role in pids.items():
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    port = inode_port.get(link[8:-1]) if link.startswith("socket:[") else None
                    if port is not None:
                        owners.setdefault(port, role)
    return owners


class Monitor:
    """MONITOR on a raw socket in a thread; ``entries``: (server time, client addr, command)."""

    def __init__(self, host: str, port: int, roles: Callable[[], dict[int, str]]) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.settimeout(0.25)
        self.own_port = self.sock.getsockname()[1]
        self.redis_port = port
        self.roles = roles
        self.entries: list[tuple[float, str, str]] = []
        self.port_roles: dict[int, str] = {}
        self._stop = threading.Event()
        self.sock.sendall(b"MONITOR\r\n")
        self._buf = b""
        while b"\r\n" not in self._buf:  # +OK
            self._buf += self.sock.recv(65536)
        self._buf = self._buf.split(b"\r\n", 1)[1]
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._mapper = threading.Thread(target=self._map, daemon=True)
        self._reader.start()
        self._mapper.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            self._buf += chunk
            *lines, self._buf = self._buf.split(b"\r\n")
            for line in lines:
                m = _LINE.match(line)
                if m:
                    self.entries.append((float(m[1]), m[2].decode(), m[3].decode().lower()))

    def _map(self) -> None:
        """Sample port owners often: a connection opened and closed between samples stays unattributed."""
        while not self._stop.wait(0.2):
            self.port_roles.update(socket_ports(self.roles(), self.redis_port))

    def close(self) -> None:
        self._stop.set()
        self._reader.join(2)
        self._mapper.join(2)
        self.sock.close()

    def split(self, start: float, end: float, exclude_ports: set[int]) -> dict[str, Any]:
        """Commands in [start, end) by role and by command: counts, not rates."""
        by_role: dict[str, Counter[str]] = {}
        lua: Counter[str] = Counter()
        for when, addr, cmd in list(self.entries):
            if not start <= when < end:
                continue
            if addr == "lua":
                lua[cmd] += 1
                continue
            port = int(addr.rsplit(":", 1)[1]) if ":" in addr else -1
            if port in exclude_ports or port == self.own_port:
                continue
            role = self.port_roles.get(port, "unattributed")
            by_role.setdefault(role, Counter())[cmd] += 1
        return {"by_role": by_role, "lua": lua}


def _stats(client: Any) -> tuple[int, dict[str, int]]:
    info = client.info("all")
    calls = {k[len("cmdstat_"):]: int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_")}
    return int(info["total_commands_processed"]), calls


def _rates(counter: Counter[str] | dict[str, int], seconds: float) -> dict[str, float]:
    return {k: round(v / seconds, 3) for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])) if v}


def measure_window(url: str, seconds: float, roles: Callable[[], dict[int, str]]) -> dict[str, Any]:
    """Commands/s on the server over ``seconds``, overall, by command and by process role."""
    import redis

    client = redis.Redis.from_url(url)
    # Connect before the window opens; our INFOs all go through this one connection.
    mine = {int(str(client.client_info()["addr"]).rsplit(":", 1)[1])}
    host, port = client.connection_pool.connection_kwargs["host"], client.connection_pool.connection_kwargs["port"]
    monitor = Monitor(host, int(port), roles)
    try:
        time.sleep(0.5)  # one mapping sample before the window opens
        total0, calls0 = _stats(client)
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
        total1, calls1 = _stats(client)
        time.sleep(0.3)  # let MONITOR lines of the window's last moments arrive
    finally:
        monitor.close()
    elapsed = t1 - t0
    own = Counter({"info": 1})  # the first INFO is counted by the second one
    delta = Counter({k: calls1.get(k, 0) - calls0.get(k, 0) for k in calls1}) - own
    split = monitor.split(t0, t1, mine)
    by_role = split["by_role"]
    client.close()
    return {
        "window_s": round(elapsed, 3),
        "commands_per_s": round(sum(delta.values()) / elapsed, 3),
        "total_commands_processed_per_s": round((total1 - total0 - 1) / elapsed, 3),
        "by_command_per_s": _rates(delta, elapsed),
        "monitor": {
            "top_level_commands_per_s": round(sum(sum(c.values()) for c in by_role.values()) / elapsed, 3),
            "inside_lua_scripts_per_s": round(sum(split["lua"].values()) / elapsed, 3),
            "by_process_per_s": {role: round(sum(c.values()) / elapsed, 3) for role, c in sorted(by_role.items())},
            "by_process_and_command_per_s": {role: _rates(c, elapsed) for role, c in sorted(by_role.items())},
            "inside_lua_scripts_by_command_per_s": _rates(split["lua"], elapsed),
        },
    }

