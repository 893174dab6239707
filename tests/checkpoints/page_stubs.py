"""The helpers the product page leaves undefined, as deterministic stubs.

Each records into calls.log (ckutil.record); ``maybe_fail(name)`` raises once after
``ckutil.arm(name)``, so a test can make a step fail and observe the re-execution.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ckutil import maybe_fail, record


@dataclass(frozen=True)
class Order:
    id: int


class PaymentAPI:
    def charge(self, amount: int, idempotency_key: str) -> dict[str, Any]:
        record("payment", amount, idempotency_key)
        maybe_fail("payment")  # e.g. a timeout after the provider took the charge
        return {"charged": amount, "key": idempotency_key}


payment_api = PaymentAPI()


def train_model() -> str:
    record("train_model")
    return "model"


def expensive_computation() -> int:
    record("expensive_computation")
    return 42


def process_batch() -> None:
    record("process_batch")


def step_1() -> None:
    record("step_1")


def step_2() -> None:
    """Also records whether any checkpoint file exists yet."""
    record("step_2", os.path.isdir("checkpoints") and os.listdir("checkpoints"))


def fetch_new_orders() -> list[Order]:
    return [Order(1), Order(2), Order(3)]


def charge_customer(order: Order) -> None:
    maybe_fail(f"charge.{order.id}")
    record("charge", order.id)


def ship_product(order: Order) -> None:
    record("ship", order.id)


def initialize_resources() -> None:
    record("initialize_resources")


def process_data() -> None:
    maybe_fail("process_data")
    record("process_data")


def finalize() -> None:
    record("finalize")


def validate_order() -> None:
    record("validate_order")


def process_payment() -> None:
    record("process_payment")


def ship_order() -> None:
    record("ship_order")


def train_epoch(epoch: int) -> None:
    record("train_epoch", epoch)


def prepare_data() -> None:
    record("prepare_data")


def upload_result(result: Any) -> None:
    record("upload_result", result)


#: A workflow module for the Backend Support row: written to the test's directory so
#: that another process can import it when it resumes the checkpoint.
FLOWS = '''
import os
from graflow import task, workflow

def record(name):
    with open("calls.log", "a") as fh:
        fh.write(name + "\\n")

def build():
    with workflow("backend_support") as wf:
        @task(inject_context=True)
        def produce(ctx):
            record("produce")
            ctx.get_channel().set("payload", {"n": 21})
            ctx.checkpoint(metadata={"stage": "produced"})

        @task(inject_context=True)
        def consume(ctx):
            record("consume")
            if os.environ.get("FLOWS_FAIL") == "1":
                raise RuntimeError("worker lost")
            return ctx.get_channel().get("payload")["n"] * 2

        produce >> consume
    return wf
'''

#: ``python -c RESUME <checkpoint>``: the page's resume code in another process.
RESUME = """import sys
from graflow.core.checkpoint import CheckpointManager
from graflow.core.engine import WorkflowEngine
ctx, meta = CheckpointManager.resume_from_checkpoint(sys.argv[1])
print(WorkflowEngine().execute(ctx))"""
