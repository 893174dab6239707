"""The worker-pool demo: a word count fanned out over three workers, then merged.

    graflow submit examples.pool_demo:wf --wait           # on a running pool
    graflow submit examples.pool_demo:wf --wait --set delay=20   # slow: time to kill a worker
    python examples/pool_demo.py                          # in-process, no Redis

``split`` cuts the text into words; three ``count`` tasks (a parallel group) each count
one shard and append their partial counts to the run's channel; ``merge`` adds them up
and requests a checkpoint, which the worker that completes it writes to
``GRAFLOW_CHECKPOINT_DIR``; ``report`` returns the result that ``--wait`` prints.
Tasks must be idempotent (a task may run twice after a failover), and these are: a
re-run shard replaces its own entry instead of appending a second one.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter

from graflow import TaskExecutionContext, parallel, task, workflow

SHARDS = 3
TEXT = (
    "the quick brown fox jumps over the lazy dog "
    "the dog sleeps and the fox runs "
    "a fox a dog and the end"
)


@task(inject_context=True)
def count(ctx: TaskExecutionContext, split: list[str], shard: int, delay: float = 0.0) -> int:
    """Count the words of one shard (every SHARDS-th word, starting at ``shard``)."""
    time.sleep(delay)  # --set delay=20: long enough to kill the worker running it
    words = split[shard::SHARDS]
    channel = ctx.get_channel()
    with channel.lock("partials"):  # read-modify-write, keyed by shard: idempotent
        partials = channel.get("partials", {})
        partials[str(shard)] = dict(Counter(words))
        channel.set("partials", partials)
    channel.append("ran_on", f"{socket.gethostname()}-{os.getpid()}")
    print(f"shard {shard}: {len(words)} words")  # kept per attempt: `graflow logs <session>`
    return len(words)


with workflow("pool_demo") as wf:

    @task
    def split(text: str = TEXT) -> list[str]:
        return text.split()

    @task(inject_context=True)
    def merge(ctx: TaskExecutionContext) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for partial in ctx.get_channel().get("partials").values():
            totals.update(partial)
        ctx.checkpoint(metadata={"stage": "merged"})  # written after merge completes
        return dict(totals)

    @task(inject_context=True)
    def report(ctx: TaskExecutionContext, merge: dict[str, int]) -> dict[str, object]:
        top = sorted(merge.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        return {
            "words": sum(merge.values()),
            "distinct": len(merge),
            "top": [word for word, _n in top],
            "workers": sorted(set(ctx.get_channel().get("ran_on", []))),
        }

    shards = [count(task_id=f"count_{i}", shard=i) for i in range(SHARDS)]
    split >> parallel(*shards) >> merge >> report


def main() -> None:
    """Run in-process (no Redis), checkpointing into a temporary directory."""
    import tempfile

    os.environ.setdefault("GRAFLOW_CHECKPOINT_DIR", tempfile.mkdtemp(prefix="graflow-pool-demo-"))
    result = wf.execute()
    print(result)
    assert result["words"] == len(TEXT.split()) and result["top"] == ["the", "dog", "fox"]


if __name__ == "__main__":
    main()
