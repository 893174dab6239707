"""The bounded per-attempt output buffer (graflow.worker.capture_buffer), without Redis."""

from __future__ import annotations

from graflow.worker.capture_buffer import PARTIAL_LINE, OutputBuffer, marker, size


def _text(pieces: list[tuple[str, str]]) -> str:
    return "".join(text for _, text in pieces)


def test_within_the_budget_everything_is_live_in_order_by_stream() -> None:
    buf = OutputBuffer(1000)
    assert not buf.wrote
    for stream, text in [("stdout", "a\n"), ("stdout", "b\n"), ("stderr", "e\n"), ("log", "W x: y\n"), ("stdout", "c\n")]:
        assert buf.add(stream, text)
    assert buf.wrote
    assert buf.take_live() == [("stdout", "a\nb\n"), ("stderr", "e\n"), ("log", "W x: y\n"), ("stdout", "c\n")]
    assert buf.take_live() == [] and buf.take_all() == [] and buf.dropped == 0


def test_a_line_without_its_newline_waits_for_the_next_flush() -> None:
    buf = OutputBuffer(1000)
    buf.add("stdout", "one\ntw")
    assert buf.take_live() == [("stdout", "one\n")]
    buf.add("stdout", "o\n")
    assert buf.take_live() == [("stdout", "two\n")]
    buf.add("stdout", "partial")
    assert buf.take_live() == []
    assert buf.take_all() == [("stdout", "partial")]  # the end sends it as it is


def test_a_long_line_without_newline_is_not_held_back() -> None:
    buf = OutputBuffer(4 * PARTIAL_LINE)
    buf.add("stdout", "x" * PARTIAL_LINE)
    assert buf.take_live() == [("stdout", "x" * PARTIAL_LINE)]


def test_past_the_budget_head_marker_and_rolling_tail() -> None:
    buf = OutputBuffer(20)
    written = "".join(f"{i:02d}\n" for i in range(30))  # 90 bytes
    for i in range(30):
        buf.add("stdout" if i % 2 else "stderr", f"{i:02d}\n")
    live = buf.take_live()
    assert _text(live) == written[:10] == "00\n01\n02\n0"
    rest = buf.take_all()
    assert buf.dropped == 70
    assert rest == [("omitted", "[… 70 bytes omitted …]\n"), ("stderr", "\n"), ("stdout", "27\n"),
                    ("stderr", "28\n"), ("stdout", "29\n")]  # fmt: skip
    assert _text(rest[1:]) == written[-10:]


def test_a_single_huge_write_is_split_into_head_and_tail() -> None:
    buf = OutputBuffer(10)
    assert buf.add("stdout", "abcdefghijklmnopqrstuvwxyz")
    assert buf.take_live() == [("stdout", "abcde")]
    assert buf.take_all() == [("omitted", marker(16)), ("stdout", "vwxyz")]


def test_multibyte_text_is_counted_in_bytes_and_never_cut_inside_a_character() -> None:
    buf = OutputBuffer(8)
    buf.add("stdout", "ééééé")  # 10 bytes
    buf.add("stdout", "ü" * 10)  # 20 bytes
    head = _text(buf.take_live())
    rest = buf.take_all()
    tail = _text(rest[1:])
    assert head == "éé" and size(tail) <= 4 and tail == "üü"
    assert size(head) + buf.dropped + size(tail) == 30
    assert rest[0] == ("omitted", marker(buf.dropped))


def test_the_tail_is_trimmed_on_character_boundaries() -> None:
    buf = OutputBuffer(4)  # head 2 bytes, tail 2 bytes
    buf.add("stdout", "ab")
    buf.add("stdout", "é")  # tail: "é" (2 bytes)
    buf.add("stdout", "x")  # 1 byte over: the cut falls inside "é", which goes whole
    assert _text(buf.take_live()) == "ab"
    assert buf.take_all() == [("omitted", marker(2)), ("stdout", "x")]
    assert buf.dropped == 2


def test_empty_writes_do_not_count() -> None:
    buf = OutputBuffer(10)
    assert not buf.add("stdout", "")
    assert not buf.wrote and buf.take_all() == []
