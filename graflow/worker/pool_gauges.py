"""Pool-wide gauges, read from Redis when Prometheus scrapes a worker command.

Every worker command serving a queue reports the same values for it (they describe the
queue, not the command): aggregate them across workers with ``max``, not ``sum``. One
round trip per scrape (``_READ``, a read-only script over rq's keys of the served queues;
no SCAN); a scrape that cannot reach Redis still answers, with ``graflow_redis_up 0``.
The counters of the command's own processes come from ``metrics`` beside these.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from graflow.distributed.rqapi import layout
from graflow.redisconn import as_text

log = logging.getLogger("graflow.worker")

#: Seconds a scrape waits for Redis before it answers ``graflow_redis_up 0``.
SCRAPE_TIMEOUT = 2.0

#: The gauges of each served queue (label ``queue``), in the order ``collect`` fills them.
QUEUE_GAUGES = (
    ("graflow_queue_jobs", "Jobs waiting in the queue."),
    ("graflow_queue_oldest_job_age_seconds", "Seconds the oldest waiting job has waited (0: none waits)."),
    ("graflow_queue_running", "Jobs of the queue running now, on any worker (rq's started registry)."),
    ("graflow_queue_scheduled", "Delayed jobs of the queue (retries waiting for their back-off)."),
    ("graflow_queue_load", "Running + waiting jobs: the scaling signal (max over workers, not sum)."),
)

# KEYS: per queue, its list, started registry and scheduled registry; ARGV[1]: rq's job key
# prefix. Returns per queue: jobs waiting, the head job's enqueued_at (rq's format, or ""),
# running (started) jobs, delayed jobs. The head of the list is the next job out: the
# oldest, as rq pushes to the tail (a hand-back to the head is older still).
_READ = """
local out = {}
for i = 1, #KEYS, 3 do
  local head = redis.call('LINDEX', KEYS[i], 0)
  local enqueued = false
  if head then enqueued = redis.call('HGET', ARGV[1] .. head, 'enqueued_at') end
  out[#out + 1] = redis.call('LLEN', KEYS[i])
  out[#out + 1] = enqueued or ''
  out[#out + 1] = redis.call('ZCARD', KEYS[i + 1])
  out[#out + 1] = redis.call('ZCARD', KEYS[i + 2])
end
return out
"""


def read_queues(client: Any, queues: list[str]) -> dict[str, tuple[int, float, int, int]]:
    """``{queue: (waiting, age of the oldest waiting job in s, running, scheduled)}``."""
    keys: list[str] = []
    for queue in queues:
        keys += [layout.queue_key(queue), layout.started_key(queue), layout.scheduled_key(queue)]
    raw = client.eval(_READ, len(keys), *keys, layout.JOB_PREFIX)
    moment = time.time()
    out = {}
    for i, queue in enumerate(queues):
        waiting, enqueued, running, scheduled = raw[4 * i : 4 * i + 4]
        age = 0.0
        text = as_text(enqueued)
        if int(waiting) and text:
            try:
                age = max(0.0, moment - layout.utcparse(text).timestamp())
            except ValueError:
                age = 0.0
        out[queue] = (int(waiting), age, int(running), int(scheduled))
    return out


class PoolCollector:
    """A prometheus_client collector: the served queues' gauges, Redis reachability and
    the command's live worker processes (``alive``)."""

    def __init__(self, client: Any, queues: list[str], alive: Callable[[], int]) -> None:
        self.client = client
        self.queues = list(queues)
        self.alive = alive

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily("graflow_workers_alive", "Worker processes of this worker command "
                                "that are running now.", value=self.alive())  # fmt: skip
        try:
            rows = read_queues(self.client, self.queues)
        except Exception as exc:
            log.debug("metrics: cannot read the queues from Redis: %s", exc)
            yield GaugeMetricFamily("graflow_redis_up", "1 when this scrape read the queues from Redis.", value=0)
            return
        yield GaugeMetricFamily("graflow_redis_up", "1 when this scrape read the queues from Redis.", value=1)
        families = [GaugeMetricFamily(name, text, labels=["queue"]) for name, text in QUEUE_GAUGES]
        for queue, (waiting, age, running, scheduled) in rows.items():
            values = (waiting, age, running, scheduled, running + waiting)
            for family, value in zip(families, values, strict=True):
                family.add_metric([queue], float(value))
        yield from families


__all__ = ["QUEUE_GAUGES", "SCRAPE_TIMEOUT", "PoolCollector", "read_queues"]
