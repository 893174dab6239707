"""OpenTelemetry on the workers: `graflow worker --import otel_worker_setup` (examples/ on PYTHONPATH).

Imported before the first job, it sets the process's TracerProvider; graflow then gives
every task attempt a span in its run's trace (README, "Tracing"). Needs `graflow[otel]`
and `opentelemetry-sdk`. Swap ConsoleSpanExporter for your backend's exporter, e.g.
`OTLPSpanExporter()` from `opentelemetry-exporter-otlp`.
"""

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

provider = TracerProvider(resource=Resource.create({"service.name": "graflow-worker"}))
provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)

if __name__ == "__main__":
    print("tracing set up in this process; start workers with: graflow worker --import otel_worker_setup")
