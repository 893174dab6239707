"""Every Redis key name graflow uses, in one place (listed in docs/keys.md).

``P`` is the key prefix (default ``graflow``), ``S`` a session id. All keys of one
session carry the hash tag ``{S}`` so that a session's atomic step stays on one
shard of a Redis Cluster; only content-addressed graph blobs are shared (and the list of
live runs, ``live_runs``). Ids are data: SCAN patterns built from them go through
``glob_escape`` (their allowed form is in ``graflow.identifiers``).
"""

from __future__ import annotations

from graflow.defaults import DEFAULT_PREFIX


def graph(prefix: str, graph_hash: str) -> str:
    """A content-addressed graph envelope (shared by every run of that definition)."""
    return f"{prefix}:graph:{graph_hash}"


def channel_prefix(prefix: str, name: str) -> str:
    """Channel data of run ``name``: ``{prefix}:channel:{name}:{key}`` (upstream's layout), with
    the name in braces as a hash tag, so a result written by a completion shares the
    session's cluster slot and both go in one atomic step."""
    return f"{prefix}:channel:{{{name}}}:"


def channel_lock(prefix: str, name: str, key: str) -> str:
    return f"{prefix}:lock:{{{name}}}:{key}"


def reaper_lock(prefix: str, queue: str) -> str:
    """Held for one reaper pass over ``queue``, so only one worker reaps it at a time."""
    return f"{prefix}:reaper:{queue}"


class SessionKeys:
    """The keys of one run (session) under prefix ``P``."""

    __slots__ = ("prefix", "root", "session_id")

    def __init__(self, prefix: str, session_id: str) -> None:
        self.prefix = prefix
        self.session_id = session_id
        self.root = f"{prefix}:session:{{{session_id}}}"

    @property
    def meta(self) -> str:
        """Hash: state, stop_reason, steps, max_steps, graph_hash, queue, timestamps, error…"""
        return self.root

    def part(self, name: str) -> str:
        return f"{self.root}:{name}"

    @property
    def pending(self) -> str:
        return self.part("pending")

    @property
    def running(self) -> str:
        return self.part("running")

    @property
    def done(self) -> str:
        return self.part("done")

    @property
    def completed(self) -> str:
        return self.part("completed")

    @property
    def cycles(self) -> str:
        return self.part("cycles")

    @property
    def retries(self) -> str:
        return self.part("retries")

    @property
    def joins(self) -> str:
        return self.part("joins")

    @property
    def known(self) -> str:
        return self.part("known")

    def dynamic_task(self, task_id: str, version: str | None = None) -> str:
        """A dynamic task's envelope: the latest definition, or one version of it.

        An activation names the version it was scheduled with, so a later ``next_task``
        that replaces the definition cannot change what an earlier activation runs."""
        return self.part(f"dyn:{task_id}@{version}" if version else f"dyn:{task_id}")

    @property
    def dynkeys(self) -> str:
        """Set of versioned dynamic-task keys (so they get the session TTL)."""
        return self.part("dynkeys")

    def group(self, group_run: str) -> str:
        return self.part(f"group:{group_run}")

    def group_done(self, group_run: str) -> str:
        """Pub/sub channel: published once when the last branch of a producer-driven
        group run has finished (the producer waits on it, not on every event)."""
        return self.part(f"group:{group_run}:done")

    @property
    def cycled(self) -> str:
        """Hash of activations whose cycle was counted (a redelivery must not count again)."""
        return self.part("cycled")

    @property
    def groups(self) -> str:
        """Set of this session's group runs (so their keys get the session TTL)."""
        return self.part("groups")

    @property
    def handover(self) -> str:
        """Hash: spec id -> the activations its commit made ready (re-driven by a retry)."""
        return self.part("handover")

    @property
    def log(self) -> str:
        return self.part("log")

    @property
    def events(self) -> str:
        return self.part("events")

    @property
    def workers(self) -> str:
        """Hash: worker name -> attempts it started in this run (``graflow runs`` shows them)."""
        return self.part("workers")

    @property
    def output(self) -> str:
        """Stream: what the run's task attempts wrote (stdout, stderr, logging), per attempt
        (graflow.worker.capture writes it, graflow.distributed.run_logs reads it)."""
        return self.part("output")

    @property
    def shape(self) -> str:
        """String: the graph's shape as JSON (nodes, groups, edges; no code), written at
        submit so the dashboard draws a run without unpickling its graph."""
        return self.part("shape")

    @property
    def parents(self) -> str:
        """Hash: dynamic task id -> the task whose ``next_task``/``next_iteration`` added it."""
        return self.part("parents")

    @property
    def checkpoints(self) -> str:
        """Hash: checkpoint location -> JSON ``{time, steps}`` of every checkpoint written."""
        return self.part("checkpoints")

    @property
    def writes(self) -> str:
        """Hash: task id -> JSON list of the channel keys its attempts wrote (pooled runs;
        graflow.distributed.run_writes writes and reads it)."""
        return self.part("writes")

    def fixed(self) -> list[str]:
        """Every fixed-name key of the session (dynamic-task and group keys come from sets)."""
        return [
            self.meta, self.pending, self.running, self.done, self.completed, self.cycles,
            self.retries, self.joins, self.known, self.cycled, self.groups, self.handover, self.log,
            self.dynkeys, self.workers, self.output, self.shape, self.parents,
            self.checkpoints, self.writes,
        ]  # fmt: skip

    def pattern(self) -> str:
        """A SCAN pattern for every key of this session except channel data and locks."""
        return f"{glob_escape(self.root)}*"


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern (SCAN MATCH, KEYS): an id is data,
    and ``*``, ``?``, ``[``, ``]`` or ``\\`` in it must not select other keys."""
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in text)


_GLOB_SPECIAL = frozenset("*?[]\\")


def hash_tag(name: bytes | str) -> bytes | None:
    """The hash tag of key ``name`` as Redis Cluster reads it (the text between the first
    ``{`` and the first ``}`` after it), or None. Every key of session S has the tag S, so
    a scan for S keeps only keys whose tag is exactly S."""
    raw = name.encode("utf-8", "surrogateescape") if isinstance(name, str) else name
    start = raw.find(b"{")
    if start < 0:
        return None
    end = raw.find(b"}", start + 1)
    return raw[start + 1 : end] if end > start + 1 else None


def session_channel_pattern(prefix: str, session_id: str) -> list[str]:
    """SCAN patterns for a session's channel data and locks (ids escaped: literal text)."""
    tag = glob_escape(f"{{{session_id}}}")
    return [f"{glob_escape(prefix)}:channel:{tag}:*", f"{glob_escape(prefix)}:lock:{tag}:*"]


def leases(prefix: str) -> str:
    """Sorted set: the lease of every running graflow job of the pool under ``prefix``,
    member ``{job_id}:{execution_id}``, score its deadline in the Redis server's time."""
    return f"{prefix}:leases"


def lease_clock(prefix: str) -> str:
    """The Redis time of the last lease pass under ``prefix`` (the outage guard)."""
    return f"{prefix}:leases:clock"


def intermediate_seen(prefix: str) -> str:
    """Hash: job id -> Redis time a lease pass first saw it dequeued but not started."""
    return f"{prefix}:leases:seen"


def worker_alive(prefix: str, name: str) -> str:
    """Exists while worker ``name`` is alive: set with a lease-long TTL on each lease pass
    (Redis's clock decides when it is gone, never a worker's)."""
    return f"{prefix}:alive:{name}"


def live_runs(prefix: str) -> str:
    """Hash: session id -> graph hash of every live run under ``prefix``. While a run is in
    it, its graph has no TTL; the run's end removes it and starts the graph's TTL."""
    return f"{prefix}:runs"


def run_index(prefix: str) -> str:
    """Sorted set: session id -> creation time of every run under ``prefix`` whose keys
    still exist (``graflow runs`` pages through it newest first, no SCAN)."""
    return f"{prefix}:runs:index"


def run_expiry(prefix: str) -> str:
    """Sorted set: session id -> when the ended run's keys expire; past it the run leaves
    ``run_index`` too, so the index expires with the runs it lists."""
    return f"{prefix}:runs:expiry"


def live_runs_sweep_lock(prefix: str) -> str:
    """Set by the reaper pass that sweeps ``live_runs`` and left to expire: the rate limit.
    Under the reaper's keys; ``/`` is in no queue name, so no queue's lock has this name."""
    return f"{prefix}:reaper:/live-runs"


__all__ = [
    "DEFAULT_PREFIX",
    "SessionKeys",
    "channel_lock",
    "channel_prefix",
    "glob_escape",
    "graph",
    "hash_tag",
    "intermediate_seen",
    "lease_clock",
    "leases",
    "live_runs",
    "live_runs_sweep_lock",
    "reaper_lock",
    "run_expiry",
    "run_index",
    "session_channel_pattern",
    "worker_alive",
]
