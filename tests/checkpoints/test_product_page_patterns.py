"""The product page's Idempotency, Common Patterns and Best Practices headings.

Continues test_product_page.py: one test per heading, each page snippet copied
verbatim between ``# --- page`` and ``# --- end`` markers, the page's undefined helpers
taken from page_stubs. Re-execution is made observable by failing a stub once
(``arm``) under ``default_max_retries=1``, or by running the task again after a
resume. Rows marked (R) take the ``backend`` fixture (memory and Redis channels).
"""

import re
import textwrap
import uuid  # the "Idempotency with External APIs" snippet uses uuid without importing it
from pathlib import Path
from typing import Any

import pytest
from ckutil import arm, bases, calls, meta, only_checkpoint
from page_stubs import (
    charge_customer,
    expensive_computation,
    fetch_new_orders,
    finalize,
    initialize_resources,
    payment_api,
    prepare_data,
    process_data,
    process_payment,
    ship_order,
    ship_product,
    train_epoch,
    upload_result,
    validate_order,
)

from graflow.core.checkpoint import CheckpointManager
from graflow.core.context import TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.workflow import workflow


def of_session(session_id: str) -> list[tuple[str, Any]]:
    return [(loc, m) for loc, m in CheckpointManager.list_checkpoints() if m.session_id == session_id]


def test_non_idempotent_task_bad() -> None:
    with workflow("bad") as wf:
        # --- page: Non-Idempotent Task (Bad)
        # ❌ Dangerous: Not idempotent
        @task(inject_context=True)
        def process_orders(ctx: TaskExecutionContext):
            orders = fetch_new_orders()
            for order in orders:
                charge_customer(order)  # Double charge on re-execution!
                ship_product(order)     # Double shipment!
            ctx.checkpoint()
        # --- end
        arm("charge.2")  # the first attempt fails at order 2 and is re-executed
        wf.execute(default_max_retries=1)
    charges = [c for c in calls() if c.startswith("charge")]
    assert charges == ["charge 1", "charge 1", "charge 2", "charge 3"]  # order 1 twice
    assert len(bases()) == 1


def test_idempotent_task_with_channel_state(backend: Any) -> None:
    with workflow("good") as wf:
        # --- page: Idempotent Task with Channel State (Good)
        # ✅ Safe: Track state in channel
        @task(inject_context=True)
        def process_orders(ctx: TaskExecutionContext):
            channel = ctx.get_channel()
            processed_ids = channel.get("processed_order_ids", set())

            orders = fetch_new_orders()
            for order in orders:
                if order.id in processed_ids:
                    continue  # Skip already processed

                charge_customer(order)
                ship_product(order)

                processed_ids.add(order.id)
                channel.set("processed_order_ids", processed_ids)

            ctx.checkpoint()
        # --- end
        arm("charge.2")
        wf.execute(default_max_retries=1)
    ctx = backend.ctx
    assert ctx.channel.get("processed_order_ids") == {1, 2, 3}
    assert isinstance(ctx.channel.get("processed_order_ids"), set)
    WorkflowEngine().execute(ctx, start_task_id="process_orders")  # re-execute once more
    assert [c for c in calls() if c.startswith("charge")] == ["charge 1", "charge 2", "charge 3"]


def test_idempotent_task_with_state_machine(backend: Any) -> None:
    def build() -> Any:
        with workflow("state_machine") as wf:
            # --- page: Idempotent Task with State Machine (Good)
            # ✅ Safe: State machine pattern
            @task(inject_context=True)
            def multi_stage_task(ctx: TaskExecutionContext):
                channel = ctx.get_channel()
                state = channel.get("state", "INIT")

                if state == "INIT":
                    initialize_resources()
                    channel.set("state", "PROCESSING")
                    ctx.checkpoint()
                    ctx.next_iteration()

                elif state == "PROCESSING":
                    process_data()
                    channel.set("state", "FINALIZING")
                    ctx.checkpoint()
                    ctx.next_iteration()

                elif state == "FINALIZING":
                    finalize()
                    return "COMPLETE"
            # --- end
        return wf

    assert build().execute() == "COMPLETE"
    assert calls() == ["initialize_resources", "process_data", "finalize"]
    assert len(of_session(backend.ctx.session_id)) == 2
    arm("process_data")  # the second run dies in PROCESSING, after the first checkpoint
    with pytest.raises(Exception, match="injected failure"):
        build().execute()
    [(location, _)] = of_session(backend.ctx.session_id)
    ctx, _ = CheckpointManager.resume_from_checkpoint(location)
    assert ctx.channel.get("state") == "PROCESSING"
    assert WorkflowEngine().execute(ctx) == "COMPLETE"
    assert calls()[3:] == ["initialize_resources", "process_data", "finalize"]


def test_idempotency_with_external_apis(backend: Any) -> None:
    with workflow("payments") as wf:
        # --- page: Idempotency with External APIs
        # ✅ Safe: Idempotency key prevents duplicate execution
        @task(inject_context=True)
        def call_payment_api(ctx: TaskExecutionContext):
            channel = ctx.get_channel()

            # Generate or retrieve idempotency key
            idempotency_key = channel.get("idempotency_key")
            if not idempotency_key:
                idempotency_key = str(uuid.uuid4())
                channel.set("idempotency_key", idempotency_key)

            # Same key prevents duplicate charges
            result = payment_api.charge(
                amount=100,
                idempotency_key=idempotency_key
            )

            ctx.checkpoint()
            return result
        # --- end
        arm("payment")  # the first call times out after the provider took it
        result = wf.execute(default_max_retries=1)
    key = backend.ctx.channel.get("idempotency_key")
    assert calls() == [f"payment 100 {key}", f"payment 100 {key}"]
    assert result == {"charged": 100, "key": key}


def test_pattern_1_state_machine_with_checkpoints() -> None:
    with workflow("orders") as wf:
        # --- page: Pattern 1: State Machine with Checkpoints
        @task(inject_context=True)
        def order_processor(ctx: TaskExecutionContext):
            channel = ctx.get_channel()
            state = channel.get("order_state", "NEW")

            if state == "NEW":
                validate_order()
                channel.set("order_state", "VALIDATED")
                ctx.checkpoint(metadata={"stage": "validated"})
                ctx.next_iteration()

            elif state == "VALIDATED":
                process_payment()
                channel.set("order_state", "PAID")
                ctx.checkpoint(metadata={"stage": "paid"})
                ctx.next_iteration()

            elif state == "PAID":
                ship_order()
                return "ORDER_COMPLETE"
        # --- end
        assert wf.execute() == "ORDER_COMPLETE"
    stages = [m.user_metadata["stage"] for _, m in CheckpointManager.list_checkpoints()]
    assert stages == ["validated", "paid"]
    assert calls() == ["validate_order", "process_payment", "ship_order"]


def test_pattern_2_periodic_checkpoints() -> None:
    with workflow("training") as wf:
        # --- page: Pattern 2: Periodic Checkpoints
        @task(inject_context=True)
        def ml_training(ctx: TaskExecutionContext):
            channel = ctx.get_channel()
            epoch = channel.get("epoch", 0)

            while epoch < 100:
                train_epoch(epoch)
                epoch += 1
                channel.set("epoch", epoch)

                # Checkpoint every 10 epochs
                if epoch % 10 == 0:
                    ctx.checkpoint(metadata={"epoch": epoch})

            return "TRAINING_COMPLETE"
        # --- end
        assert wf.execute() == "TRAINING_COMPLETE"
    assert meta(only_checkpoint())["user_metadata"]["epoch"] == 100  # ten requests, one checkpoint
    assert len(calls()) == 100


def test_pattern_3_fault_recovery() -> None:
    with workflow("fault") as wf:
        # --- page: Pattern 3: Fault Recovery
        @task(inject_context=True)
        def fault_tolerant_pipeline(ctx: TaskExecutionContext):
            channel = ctx.get_channel()

            # Step 1: Data preparation (idempotent)
            if not channel.get("data_prepared"):
                prepare_data()
                channel.set("data_prepared", True)
                ctx.checkpoint(metadata={"stage": "data_prepared"})

            # Step 2: Expensive computation
            if not channel.get("computed"):
                result = expensive_computation()
                channel.set("computed", True)
                channel.set("result", result)
                ctx.checkpoint(metadata={"stage": "computed"})

            # Step 3: External API call (may fail)
            if not channel.get("uploaded"):
                upload_result(channel.get("result"))
                channel.set("uploaded", True)

            return "COMPLETE"
        # --- end
        assert wf.execute() == "COMPLETE"
    base = only_checkpoint()
    assert meta(base)["user_metadata"]["stage"] == "computed"
    assert calls() == ["prepare_data", "expensive_computation", "upload_result 42"]
    ctx, _ = CheckpointManager.resume_from_checkpoint(base)
    assert WorkflowEngine().execute(ctx, start_task_id="fault_tolerant_pipeline") == "COMPLETE"
    assert len(calls()) == 3 and bases() == [base]  # re-executed: every step skipped


def test_best_practices() -> None:
    with workflow("best_practices") as wf:
        # --- page: Best Practices 1. Checkpoint After Expensive Operations
        @task(inject_context=True)
        def expensive_task(ctx: TaskExecutionContext):
            expensive_computation()  # Hours of work
            ctx.checkpoint()         # Save progress!
        # --- end

        @task(inject_context=True)
        def validate(ctx: TaskExecutionContext) -> None:
            # --- page: Best Practices 2. Include Meaningful Metadata
            ctx.checkpoint(metadata={
                "stage": "validation_complete",
                "records_processed": 10000,
                "accuracy": 0.95
            })
            # --- end

        expensive_task >> validate
        wf.execute()
    found = CheckpointManager.list_checkpoints()
    assert [m.user_metadata["task_id"] for _, m in found] == ["expensive_task", "validate"]
    assert found[1][1].user_metadata["accuracy"] == 0.95
    assert found[1][1].user_metadata["records_processed"] == 10000


PAGE = Path(__file__).resolve().parents[3] / "shared" / "seed" / "checkpoints.md"


@pytest.mark.skipif(not PAGE.exists(), reason="shared/seed/checkpoints.md is not beside the repo")
def test_every_page_snippet_is_run_verbatim() -> None:
    """Each python block of the page is one ``# --- page`` snippet of these two files."""

    def lines(text: str) -> tuple[str, ...]:
        return tuple(line.rstrip() for line in textwrap.dedent(text).strip("\n").splitlines())

    blocks = {lines(b) for b in re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)}
    here = Path(__file__).parent
    sources = (here / "test_product_page.py").read_text() + Path(__file__).read_text()
    pattern = r"^ *# --- page: .*?\n(.*?)^ *# --- end"
    snippets = {lines(s) for s in re.findall(pattern, sources, re.S | re.M)}
    assert len(blocks) == 15 and snippets == blocks
