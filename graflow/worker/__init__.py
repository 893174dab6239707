"""The worker runtime: ``graflow worker`` and ``python -m graflow.worker.main``.

Kept light on purpose: importing ``graflow.worker`` pulls in neither redis nor rq, so
``graflow.worker.jobs`` (the rq job function) and the CLI load only what they use.
Modules: ``settings`` (flags and environment), ``rq_worker`` (the rq ``Worker``
subclass with leases and signals), ``heartbeat`` (its refresh cadence), ``handback``
(second-signal hand-back), ``delayed`` (delayed jobs without rq's scheduler process),
``runner`` (start-up, exit codes), ``supervisor`` (N processes), ``restarts`` (when it
restarts a dead one), ``takeover`` (a dead worker's name and jobs), ``main`` (the
upstream-compatible entry point) and ``worker`` (upstream's threaded ``TaskWorker``).
How they fit together: docs/architecture.md and docs/failover.md.
"""

from __future__ import annotations

__all__: list[str] = []
