"""The run's channel: the key-value store every task of one run shares.

    python examples/channels.py

The same calls work on the in-process memory channel and on Redis (the pool, or
``channel_backend="redis"``), and values round-trip exactly: a set stays a set.
"""

from typing import TypedDict

from graflow import TaskExecutionContext, task, workflow


class Progress(TypedDict):
    task_id: str
    done: int


with workflow("channels") as wf:

    @task(inject_context=True)
    def produce(ctx: TaskExecutionContext) -> None:
        ch = ctx.get_channel()
        ch.set("seen", {"a", "b"})  # any picklable value; sets stay sets
        ch.append("log", "produce")  # lists built by append/prepend
        ch.atomic_add("count", 2)  # atomic counters
        with ch.lock("config"):  # an advisory per-key lock
            ch.set("config", {"mode": "fast"}, ttl=60)  # expires after 60 s
        ctx.get_typed_channel(Progress).send("progress", {"task_id": ctx.task_id, "done": 1})

    @task(inject_context=True)
    def consume(ctx: TaskExecutionContext, config: dict[str, str]) -> str:
        ch = ctx.get_channel()  # `config` above was resolved from the channel key
        ch.append("log", "consume")
        progress = ctx.get_typed_channel(Progress).receive("progress")
        assert ch.get("seen") == {"a", "b"} and ch.get("count") == 2
        assert progress == {"task_id": "produce", "done": 1}
        return f"{config['mode']}: {ch.get('log')}"

    produce >> consume
    result = wf.execute()
    assert result == "fast: ['produce', 'consume']"
    print(result)
