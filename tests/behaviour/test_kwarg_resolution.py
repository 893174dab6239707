"""Keyword-argument resolution: upstream results, channel keys, then defaults."""

from __future__ import annotations

from graflow import TaskExecutionContext, task, workflow
from graflow.core.context import ExecutionContext
from graflow.exceptions import GraflowRuntimeError


def record(ctx, value):
    ctx.get_channel().set("seen", value)


def test_result_key_wins_over_plain_key_and_default(driver):
    with workflow("precedence") as wf:

        @task(inject_context=True)
        def probe(ctx, x="default"):
            record(ctx, x)

    out = driver.run(wf, initial_channel={"x": "plain", "x.__result__": "result"})
    assert out.channel.get("seen") == "result"


def test_plain_key_wins_over_default(driver):
    with workflow("plain") as wf:

        @task(inject_context=True)
        def probe(ctx, x="default"):
            record(ctx, x)

    out = driver.run(wf, initial_channel={"x": "plain"})
    assert out.channel.get("seen") == "plain"


def test_default_when_nothing_in_channel(driver):
    with workflow("default") as wf:

        @task(inject_context=True)
        def probe(ctx, x="default"):
            record(ctx, x)

    out = driver.run(wf)
    assert out.channel.get("seen") == "default"


def test_parameter_named_after_upstream_task_gets_its_result(driver):
    with workflow("upstream") as wf:

        @task
        def load():
            return [1, 2, 3]

        @task
        def total(load):
            return sum(load)

        load >> total

    out = driver.run(wf, initial_channel={"load": "plain value loses"})
    assert out.error is None
    assert out.result == 6


def test_stored_none_is_a_value(driver):
    with workflow("none_value") as wf:

        @task
        def up():
            return None

        @task(inject_context=True)
        def probe(ctx, up="default"):
            record(ctx, ["got", up])

        up >> probe

    out = driver.run(wf)
    assert out.channel.get("seen") == ["got", None]


def test_missing_required_parameter_gives_the_functions_type_error(driver):
    with workflow("required") as wf:

        @task
        def needs(x):
            return x

    out = driver.run(wf)
    assert isinstance(out.error, GraflowRuntimeError)
    assert isinstance(out.error.cause, TypeError)
    assert "x" in str(out.error.cause)


def test_keyword_only_parameters_are_resolved(driver):
    with workflow("kwonly") as wf:

        @task(inject_context=True)
        def probe(ctx, *, k="default"):
            record(ctx, k)

    out = driver.run(wf, initial_channel={"k": "resolved"})
    assert out.channel.get("seen") == "resolved"


def test_var_args_and_var_kwargs_are_ignored(driver):
    with workflow("varargs") as wf:

        @task(inject_context=True)
        def probe(ctx, a="a-default", *args, **kwargs):
            record(ctx, [a, list(args), kwargs])

    out = driver.run(
        wf, initial_channel={"a": "A", "args": "nope", "kwargs": "nope", "extra": "nope"}
    )
    assert out.channel.get("seen") == ["A", [], {}]


def test_values_are_passed_exactly_as_stored(driver):
    with workflow("exact") as wf:

        @task(inject_context=True)
        def probe(ctx, n: int = 0, s: set | None = None, t: tuple | None = None):
            record(ctx, [type(n).__name__, n, type(s).__name__, type(t).__name__, s, t])

    out = driver.run(wf, initial_channel={"n": "5", "s": {1, 2}, "t": (1, "x")})
    assert out.channel.get("seen") == ["str", "5", "set", "tuple", {1, 2}, (1, "x")]


def test_bound_instance_kwargs_beat_the_channel(driver):
    with workflow("bound") as wf:

        @task(inject_context=True)
        def probe(ctx, x="default", y="default"):
            record(ctx, [x, y])

        probe(task_id="inst", x="bound")

    out = driver.run(wf, "inst", initial_channel={"x": "channel", "x.__result__": "result",
                                                  "y": "channel-y"})
    assert out.error is None
    assert out.channel.get("seen") == ["bound", "channel-y"]


def test_explicit_call_kwargs_beat_bound_kwargs_and_channel():
    with workflow("explicit") as wf:

        @task
        def f(x="default"):
            return x

        inst = f(task_id="inst", x="bound")

    assert inst.run() == "bound"
    assert inst.run(x="explicit") == "explicit"
    ctx = ExecutionContext.create(wf.graph, "inst")
    ctx.channel.set("x", "channel")
    with ctx.executing_task(inst):
        assert inst() == "bound"
        assert inst(x="explicit") == "explicit"
    with ctx.executing_task(f):
        assert f() == "channel"
        assert f(x="explicit") == "explicit"


def test_injected_context_is_excluded_from_resolution(driver):
    with workflow("inject_excluded") as wf:

        @task
        def context():
            return "a result named like the parameter"

        @task(inject_context=True)
        def probe(context, other="d"):
            context.get_channel().set(
                "seen", [isinstance(context, TaskExecutionContext), other]
            )

        context >> probe

    out = driver.run(wf, initial_channel={"context": "plain"})
    assert out.error is None
    assert out.channel.get("seen") == [True, "d"]


def test_a_functions_parameters_are_analysed_once_for_all_its_tasks() -> None:
    # The analysis belongs to the function: every task, instance and iteration made
    # from it shares one (it is the costly part of a task's first attempt).
    from graflow.core.task import TaskWrapper

    def body(a: int, b: int = 2, *, c: int = 3) -> int:
        return a + b + c

    first, second = TaskWrapper("first", body), TaskWrapper("second", body)
    analysed = first._analyse()
    assert analysed == (("a", "a.__result__", "POSITIONAL_OR_KEYWORD"),
                        ("b", "b.__result__", "POSITIONAL_OR_KEYWORD"),
                        ("c", "c.__result__", "KEYWORD_ONLY"))  # fmt: skip
    assert second._analyse() is analysed
    injected = TaskWrapper("third", body, inject_context=True)._analyse()
    assert [name for name, _, _ in injected] == ["b", "c"]  # the first parameter is the context
