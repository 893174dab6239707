"""E5: local checkpoint, crash, fix, resume — the example program verbatim, in a tmp cwd.

Restored tasks are copies, so the program logs progress to e5.log, not to a global.
"""
# ruff: noqa: E701, E702, I001, SIM105, SIM115  (the program is copied as written)

import pytest


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the program leaves files to the GC
def test_e5_local_checkpoint_crash_fix_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E5_CRASH", "")  # restored after the test; the program sets it
    # --- E5, verbatim
    import os
    from graflow import task, workflow
    from graflow.core.checkpoint import CheckpointManager
    from graflow.core.engine import WorkflowEngine
    from graflow.exceptions import CheckpointCorruptError
    def log(name):
        with open("e5.log", "a") as f: f.write(name + "\n")
    with workflow("ckpt") as wf:
        @task(inject_context=True)
        def a(ctx): log("a"); ctx.checkpoint(path="ck/after_a", metadata={"stage": "a"})
        @task
        def b():
            log("b")
            if os.environ.get("E5_CRASH") == "1": raise RuntimeError("crash")
            return "done"
        a >> b
        os.environ["E5_CRASH"] = "1"
        try: wf.execute()
        except Exception: pass
    os.environ["E5_CRASH"] = "0"
    ctx, meta = CheckpointManager.resume_from_checkpoint("ck/after_a.pkl")
    assert ctx.completed_tasks == ["a"] and meta.user_metadata["stage"] == "a"
    assert WorkflowEngine().execute(ctx) == "done"
    assert open("e5.log").read().split() == ["a", "b", "b"]           # a never re-ran
    open("ck/after_a.state.json", "w").write("{broken")
    try: CheckpointManager.resume_from_checkpoint("ck/after_a")
    except CheckpointCorruptError as e: assert "after_a.state.json" in str(e)
    else: raise AssertionError("corruption not detected")
    # --- end
    assert sorted(os.listdir()) == ["ck", "e5.log"]  # nothing else was created
    assert sorted(os.listdir("ck")) == ["after_a.meta.json", "after_a.pkl", "after_a.state.json"]
