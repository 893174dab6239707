"""Workflow tracing: the hooks the engine calls around a run (upstream graflow 0.2.0's interface).

``from graflow.trace import Tracer, NoopTracer`` as upstream; also importable from
``graflow.trace.base`` and ``graflow.trace.noop``. Upstream's ``ConsoleTracer`` and
``LangFuseTracer`` do not ship. The hooks and their arguments: docs/execution.md#tracing.
"""

from graflow.trace.base import Tracer
from graflow.trace.noop import NoopTracer, SilentTracer

__all__ = ["NoopTracer", "SilentTracer", "Tracer"]
