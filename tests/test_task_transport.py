"""How task code travels: by reference when importable, by value otherwise, and the
envelope's origin record that lets a worker refuse bytecode of another Python."""

from __future__ import annotations

import importlib
import json
import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle
import pytest

from graflow import codec, task
from graflow.codec import Purpose
from graflow.core.graph_store import code_by_value, pickle_graph
from graflow.core.task import TaskWrapper
from graflow.core.workflow import workflow
from graflow.exceptions import PayloadError, PayloadSignatureError

ROOT = Path(__file__).resolve().parent.parent
KEY = "k" * 16 + "-transport"
HERE = sys.version_info[:2]
OTHER_MINOR = HERE[1] + 1  # "another Python": only the minor differs

FLOW = '''
from graflow import task

@task
def a():
    return {{"n": {n}}}

@task(max_retries=2)
def b(a):
    return a["n"] + 3
'''

SIDE_EFFECTS: list[str] = []


def _record(what: str) -> None:
    SIDE_EFFECTS.append(what)


class _Boom:
    """Unpickling this records a side effect: proves what was (not) unpickled."""

    def __reduce__(self) -> Any:
        return (_record, ("unpickled",))


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFLOW_SECRET_KEY", raising=False)
    SIDE_EFFECTS.clear()


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int = 20) -> ModuleType:
    """A fresh, importable task module (unique name) written to ``tmp_path``."""
    name = f"gf_transport_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(FLOW.format(n=n))
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(name)


def _closure_task() -> TaskWrapper:
    factor = 3

    @task
    def scaled(x: int) -> int:
        return x * factor

    return scaled


def _with_minor(blob: bytes, minor: int) -> bytes:
    """``blob`` as if written by Python 3.<minor> (the origin record's minor byte)."""
    out = bytearray(blob)
    assert out[4] == codec.VERSION_ORIGIN
    out[7 + 1 + 1] = minor  # header (7), record length (1), major (1), then minor
    return bytes(out)


# ------------------------------------------------------------------ by reference


def test_importable_task_pickles_by_reference_and_runs_the_workers_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "producer").mkdir()
    mod = _module(tmp_path / "producer", monkeypatch)
    payload, by_value = codec.pickle_payload(mod.a)
    assert by_value is False
    assert mod.__name__.encode() in payload and b"CodeType" not in payload  # a name, no bytecode
    # A worker whose module of that name says n=100 runs *its* code, not the producer's.
    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    (worker_dir / f"{mod.__name__}.py").write_text(FLOW.format(n=100))
    script = (
        "import json, pickle, sys\n"
        "t = pickle.loads(sys.stdin.buffer.read())\n"
        "print(json.dumps([t.task_id, t.func()]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(worker_dir)])}
    out = subprocess.run([sys.executable, "-c", script], input=payload, env=env, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert json.loads(out.stdout) == ["a", {"n": 100}]


def test_instances_and_iteration_clones_keep_their_own_state_by_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = _module(tmp_path, monkeypatch)
    instance = mod.b(task_id="b_api", source="api")  # an instance made from the template
    clone = instance.derive("b_api_cycle_1_0123abcd", positional=(5,))
    clone.added_later = {"kept": True}  # an attribute this code does not know travels too
    for original in (instance, clone):
        payload, by_value = codec.pickle_payload(original)
        assert by_value is False and b"CodeType" not in payload
        back = pickle.loads(payload)
        assert back.func is mod.b.func and back.__wrapped__ is mod.b.func
        assert (back.task_id, back.bound_kwargs, back._positional) == (
            original.task_id, original.bound_kwargs, original._positional,
        )  # fmt: skip
        assert back.max_retries == 2 and back.result_key == f"{original.task_id}.__result__"
    assert pickle.loads(codec.pickle_payload(clone)[0]).added_later == {"kept": True}


def test_a_workflow_of_importable_tasks_has_no_code_by_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _module(tmp_path, monkeypatch)
    with workflow("ab") as wf:
        mod.a >> mod.b
    payload, graph_hash = pickle_graph(wf.graph)
    assert code_by_value(graph_hash) is False and b"CodeType" not in payload
    with workflow("mixed") as wf2:
        mod.a >> _closure_task()
    _, mixed_hash = pickle_graph(wf2.graph)
    assert code_by_value(mixed_hash) is True


# ---------------------------------------------------------------------- by value


def test_closures_lambdas_and_registered_modules_still_travel_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload, by_value = codec.pickle_payload(_closure_task())
    assert by_value is True
    assert pickle.loads(payload).func(2) == 6
    lam = TaskWrapper("lam", lambda: 7, register_to_context=False)
    payload, by_value = codec.pickle_payload(lam)
    assert by_value is True and pickle.loads(payload).func() == 7
    mod = _module(tmp_path, monkeypatch)
    cloudpickle.register_pickle_by_value(mod)
    try:
        payload, by_value = codec.pickle_payload(mod.a)
    finally:
        cloudpickle.unregister_pickle_by_value(mod)
    assert by_value is True and pickle.loads(payload).func() == {"n": 20}


def test_tasks_in_main_travel_by_value() -> None:
    script = (
        "import pickle\n"
        "from graflow import codec, task\n"
        "@task\n"
        "def m():\n"
        "    return 41\n"
        "payload, by_value = codec.pickle_payload(m)\n"
        "print(by_value, pickle.loads(payload).func())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "41"]


# ------------------------------------------------------------- the origin record


def test_envelopes_record_their_origin() -> None:
    blob = codec.dumps(_closure_task(), Purpose.TASK)
    found = codec.origin(blob)
    assert found is not None
    assert found.python == HERE and found.protocol == pickle.HIGHEST_PROTOCOL and found.by_value is True
    assert found.graflow  # graflow's version, for the error messages
    plain = codec.dumps({"x": 1}, Purpose.VALUE)
    assert plain[4] == codec.VERSION and codec.origin(plain) is None  # no code: the v1 layout
    assert codec.origin(codec.dumps(lambda: 1, Purpose.VALUE)).by_value is True  # type: ignore[union-attr]


def test_code_by_value_from_another_python_is_refused_before_unpickling() -> None:
    blob = codec.dumps([_closure_task(), _Boom()], Purpose.TASK)
    with pytest.raises(PayloadError) as info:
        codec.loads(_with_minor(blob, OTHER_MINOR), Purpose.TASK, source="task blob")
    message = str(info.value)
    assert f"Python {HERE[0]}.{OTHER_MINOR}" in message and f"Python {HERE[0]}.{HERE[1]}" in message
    assert "same Python minor version" in message and "travel by reference" in message
    assert SIDE_EFFECTS == []  # nothing was unpickled
    task_back, _ = codec.loads(blob, Purpose.TASK)
    assert task_back.func(2) == 6 and SIDE_EFFECTS == ["unpickled"]


def test_by_reference_payloads_from_another_python_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _module(tmp_path, monkeypatch)
    blob = codec.dumps(mod.b, Purpose.TASK)
    assert codec.origin(blob).by_value is False  # type: ignore[union-attr]
    back = codec.loads(_with_minor(blob, OTHER_MINOR), Purpose.TASK)
    assert back.func is mod.b.func


def test_the_origin_record_is_signed() -> None:
    blob = codec.dumps(_closure_task(), Purpose.TASK, secret_key=KEY)
    assert codec.loads(blob, Purpose.TASK, secret_key=KEY).func(1) == 3
    with pytest.raises(PayloadSignatureError):
        # Claiming this Python's minor for code of another would need the key.
        codec.loads(_with_minor(blob, OTHER_MINOR), Purpose.TASK, secret_key=KEY)


def test_unknown_code_counts_as_by_value_and_old_envelopes_still_load() -> None:
    raw = cloudpickle.dumps({"g": 1}, protocol=pickle.HIGHEST_PROTOCOL)
    sealed = codec.seal(raw, Purpose.GRAPH)  # bytes pickled elsewhere: unknown
    assert codec.origin(sealed).by_value is None  # type: ignore[union-attr]
    assert codec.loads(sealed, Purpose.GRAPH) == {"g": 1}
    with pytest.raises(PayloadError, match="may carry code pickled by value"):
        codec.loads(_with_minor(sealed, OTHER_MINOR), Purpose.GRAPH)
    old = codec.MAGIC + bytes((0x01, 0x00, int(Purpose.TASK))) + cloudpickle.dumps(_closure_task())
    assert codec.loads(old, Purpose.TASK).func(2) == 6  # version 1: no record, read as before


def test_a_pickle_protocol_this_python_cannot_read_is_refused() -> None:
    blob = bytearray(codec.dumps(_closure_task(), Purpose.TASK))
    blob[7 + 1 + 2] = pickle.HIGHEST_PROTOCOL + 1  # the record's protocol byte
    with pytest.raises(PayloadError, match=f"protocol {pickle.HIGHEST_PROTOCOL + 1}"):
        codec.loads(bytes(blob), Purpose.TASK)
