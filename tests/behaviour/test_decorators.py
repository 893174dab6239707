"""`@task`: forms, metadata, options, errors and registration."""

from __future__ import annotations

import pytest

from graflow import RetryPolicy, TaskExecutionContext, task, workflow
from graflow.core.task import TaskWrapper
from graflow.exceptions import (
    ConfigError,
    CycleLimitExceededError,
    DuplicateTaskError,
    GraflowRuntimeError,
    RetryLimitExceededError,
)


def mark(ctx, name):
    ctx.get_channel().append("order", name)


@task
def module_level_never_used() -> int:
    return 0


# --- forms -----------------------------------------------------------------------------


def test_bare_decorator_gives_taskwrapper_named_after_function():
    with workflow("forms") as wf:

        @task
        def alpha():
            return 1

    assert isinstance(alpha, TaskWrapper)
    assert alpha.task_id == "alpha"
    assert wf.graph.has_node("alpha")


def test_empty_parentheses_form():
    with workflow("forms") as wf:

        @task()
        def beta():
            return 1

    assert isinstance(beta, TaskWrapper)
    assert beta.task_id == "beta"
    assert wf.graph.has_node("beta")


def test_positional_id_form():
    with workflow("forms") as wf:

        @task("custom_id")
        def gamma():
            return 1

    assert gamma.task_id == "custom_id"
    assert wf.graph.has_node("custom_id")
    assert not wf.graph.has_node("gamma")


def test_positional_id_with_options_form():
    with workflow("forms"):

        @task("cid", max_retries=3, inject_context=True)
        def delta(ctx):
            return 1

    assert delta.task_id == "cid"
    assert delta.max_retries == 3
    assert delta.inject_context is True


def test_id_keyword_with_options_form():
    with workflow("forms") as wf:

        @task(id="kid", max_cycles=4)
        def epsilon():
            return 1

    assert epsilon.task_id == "kid"
    assert epsilon.max_cycles == 4
    assert wf.graph.has_node("kid")


def test_wrapper_carries_function_metadata():
    def original(x: int, y: str = "a") -> float:
        """The docstring."""
        return 1.0

    wrapped = task(original)
    assert isinstance(wrapped, TaskWrapper)
    assert wrapped.__name__ == "original"
    assert wrapped.__doc__ == "The docstring."
    assert wrapped.__module__ == original.__module__ == __name__
    assert wrapped.__qualname__ == original.__qualname__
    assert wrapped.__annotations__ == original.__annotations__


def test_option_defaults_are_attributes():
    @task
    def plain():
        return 1

    assert plain.inject_context is False
    assert plain.handler_type == "direct"
    assert plain.resolve_keyword_args is True
    assert plain.max_cycles is None
    assert plain.max_retries is None
    assert plain.retry_policy is None


def test_handler_option_sets_handler_type():
    @task(handler="custom")
    def h():
        return 1

    assert h.handler_type == "custom"


# --- option semantics ------------------------------------------------------------------


def test_inject_context_passes_task_execution_context_first(driver):
    with workflow("inject") as wf:

        @task(inject_context=True)
        def probe(ctx, x=0):
            ctx.get_channel().set(
                "probe", [isinstance(ctx, TaskExecutionContext), ctx.task_id, x]
            )

    out = driver.run(wf, initial_channel={"x": 4})
    assert out.error is None
    assert out.channel.get("probe") == [True, "probe", 4]


def test_injected_context_is_never_resolved_from_channel_whatever_its_name(driver):
    with workflow("inject_names") as wf:

        @task
        def load():
            return 5

        @task(inject_context=True)
        def use(load, ctx=None):
            # the first parameter receives the context even though a result "load" exists
            load.get_channel().set("got", [isinstance(load, TaskExecutionContext), ctx])

        load >> use

    out = driver.run(wf, initial_channel={"ctx": "from-channel"})
    assert out.error is None
    # `ctx` is an ordinary parameter here, so it resolves from the channel
    assert out.channel.get("got") == [True, "from-channel"]


def test_injected_context_named_ctx_ignores_channel_keys_named_ctx(driver):
    with workflow("inject_ctx_key") as wf:

        @task(inject_context=True)
        def probe(ctx):
            ctx.get_channel().set("ok", isinstance(ctx, TaskExecutionContext))

    out = driver.run(wf, initial_channel={"ctx": "nope", "ctx.__result__": "nope"})
    assert out.error is None
    assert out.channel.get("ok") is True


def test_unknown_handler_raises_config_error_at_execution_not_decoration(driver):
    with workflow("handler") as wf:

        @task(handler="no_such_handler_xyz")
        def h():
            return 1

    assert h.handler_type == "no_such_handler_xyz"  # decoration succeeded
    out = driver.run(wf)
    assert isinstance(out.error, ConfigError)
    assert isinstance(out.error, ValueError)
    assert "no_such_handler_xyz" in str(out.error)
    assert "h" not in out.completed_tasks


def test_resolve_keyword_args_false_ignores_channel(driver):
    with workflow("noresolve") as wf:

        @task(inject_context=True, resolve_keyword_args=False)
        def probe(ctx, x="default"):
            ctx.get_channel().set("seen", x)

    out = driver.run(wf, initial_channel={"x": "channel", "x.__result__": "result"})
    assert out.error is None
    assert out.channel.get("seen") == "default"


def test_max_cycles_none_uses_context_default_of_ten(driver):
    with workflow("cycles_default") as wf:

        @task(inject_context=True)
        def loop(ctx, data=None):
            mark(ctx, ctx.cycle_count)
            ctx.next_iteration()

    out = driver.run(wf)
    assert isinstance(out.error, CycleLimitExceededError)
    assert out.error.max_cycles == 10
    assert out.channel.get("order") == list(range(1, 11))


def test_max_cycles_option_bounds_iterations(driver):
    with workflow("cycles_3") as wf:

        @task(inject_context=True, max_cycles=3)
        def loop(ctx, data=None):
            mark(ctx, ctx.cycle_count)
            ctx.next_iteration()

    out = driver.run(wf)
    assert isinstance(out.error, CycleLimitExceededError)
    assert out.error.task_id == "loop"
    assert out.error.cycle_count == 3
    assert out.error.max_cycles == 3
    assert out.channel.get("order") == [1, 2, 3]


def test_execute_default_max_cycles_is_the_context_default():
    with workflow("cycles_ctx") as wf:

        @task(inject_context=True)
        def loop(ctx, data=None):
            ctx.next_iteration()

    with pytest.raises(CycleLimitExceededError) as info:
        wf.execute(default_max_cycles=2)
    assert info.value.max_cycles == 2


def test_max_retries_none_means_no_retries(driver):
    with workflow("retries_default") as wf:

        @task(inject_context=True)
        def flaky(ctx):
            mark(ctx, ctx.attempt)
            raise ValueError("boom")

    out = driver.run(wf)
    assert isinstance(out.error, GraflowRuntimeError)
    assert not isinstance(out.error, RetryLimitExceededError)
    assert out.channel.get("order") == [1]


def test_max_retries_option_gives_extra_attempts(driver):
    with workflow("retries_1") as wf:

        @task(inject_context=True, max_retries=1)
        def flaky(ctx):
            mark(ctx, ctx.attempt)
            raise ValueError(f"boom {ctx.attempt}")

    out = driver.run(wf)
    assert isinstance(out.error, RetryLimitExceededError)
    assert out.error.max_retries == 1
    assert out.error.retry_count == 2
    assert out.channel.get("order") == [1, 2]


def test_execute_default_max_retries_is_the_context_default():
    with workflow("retries_ctx") as wf:

        @task(inject_context=True)
        def flaky(ctx):
            ctx.get_channel().append("attempts", ctx.attempt)
            if ctx.attempt == 1:
                raise ValueError("first attempt fails")
            return "ok"

    result, ctx = wf.execute(default_max_retries=1, ret_context=True)
    assert result == "ok"
    assert ctx.channel.get("attempts") == [1, 2]


def test_retry_policy_overrides_max_retries(driver):
    with workflow("policy_wins") as wf:

        @task(
            inject_context=True,
            max_retries=5,
            retry_policy=RetryPolicy(max_retries=1, initial_interval=0.001),
        )
        def flaky(ctx):
            mark(ctx, ctx.attempt)
            raise ValueError("boom")

    out = driver.run(wf)
    assert isinstance(out.error, RetryLimitExceededError)
    assert out.error.max_retries == 1
    assert out.error.retry_count == 2
    assert out.channel.get("order") == [1, 2]


# --- errors ----------------------------------------------------------------------------


def test_unknown_option_raises_type_error():
    with pytest.raises(TypeError):

        @task(no_such_option=True)
        def f():
            pass


def test_unknown_option_with_positional_id_raises_type_error():
    with pytest.raises(TypeError):

        @task("tid", retries=3)
        def f():
            pass


def test_async_function_raises_type_error():
    with pytest.raises(TypeError):

        @task
        async def f():
            pass


def test_async_function_with_options_raises_type_error():
    with pytest.raises(TypeError):

        @task("aid", inject_context=True)
        async def f(ctx):
            pass


def test_llm_option_inject_llm_client_raises_type_error():
    with pytest.raises(TypeError):

        @task(inject_llm_client=True)
        def f(llm):
            pass


def test_llm_option_inject_llm_agent_raises_type_error():
    with pytest.raises(TypeError):

        @task(inject_llm_agent="agent")
        def f(agent):
            pass


def test_duplicate_id_raises_at_decoration():
    with workflow("dup"):

        @task("x")
        def first():
            return 1

        with pytest.raises(DuplicateTaskError) as info:

            @task("x")
            def second():
                return 2

    assert info.value.task_id == "x"
    assert "x" in str(info.value)


# --- registration ----------------------------------------------------------------------


def test_task_decorated_inside_workflow_is_added_at_once():
    with workflow("reg") as wf:

        @task
        def inside():
            return 1

        assert wf.graph.has_node("inside")
        assert wf.graph.get_node("inside") is inside


def test_task_decorated_outside_is_pending_until_used_in_operator():
    @task
    def outside():
        return 1

    with workflow("reg") as wf:

        @task
        def inside():
            return 2

        assert not wf.graph.has_node("outside")
        inside >> outside
        assert wf.graph.has_node("outside")
        assert ("inside", "outside") in list(wf.graph.edges)


def test_pending_task_used_twice_is_added_once():
    @task
    def shared():
        return 1

    with workflow("reg") as wf:

        @task
        def a():
            return 1

        @task
        def b():
            return 1

        a >> shared
        b >> shared
    assert list(wf.graph.nodes).count("shared") == 1
    assert sorted(wf.graph.predecessors("shared")) == ["a", "b"]


def test_pending_task_is_skipped_when_id_already_exists():
    @task("same")
    def pending():
        return "pending"

    with workflow("reg") as wf:

        @task("same")
        def inner():
            return "inner"

        @task
        def other():
            return 1

        pending >> other  # no DuplicateTaskError: the pending task is skipped
    assert wf.graph.get_node("same") is inner
    assert ("same", "other") in list(wf.graph.edges)


def test_module_level_task_never_used_is_not_in_graph():
    with workflow("reg") as wf:

        @task
        def a():
            return 1

    assert not wf.graph.has_node("module_level_never_used")
    assert list(wf.graph.nodes) == ["a"]
