"""The bounded output buffer of one attempt: a live head, then a rolling tail.

An attempt may write without limit; Redis keeps at most ``budget`` bytes of it. The first
half of the budget (the head) is handed out for live flushes as it is written; past it,
only the last half is kept (the tail), and at the end the reader gets a marker saying how
many bytes were left out, then the tail. Pieces keep their stream (stdout, stderr, log)
and their order; consecutive pieces of one stream are merged. No I/O and no locking here:
the caller (``graflow.worker.capture``) holds a lock around every call.
"""

from __future__ import annotations

from collections import deque

#: A live flush keeps back a last line without its newline (more may follow) up to this size.
PARTIAL_LINE = 8192


def size(text: str) -> int:
    """Bytes of ``text`` as UTF-8 (what Redis stores)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def _cut(text: str, nbytes: int) -> tuple[str, str]:
    """``text`` split after about ``nbytes`` bytes (never inside a character)."""
    if text.isascii():
        return text[:nbytes], text[nbytes:]
    raw = text.encode("utf-8", "replace")
    first = raw[:nbytes].decode("utf-8", "ignore")
    return first, text[len(first) :]


def _drop_front(text: str, nbytes: int) -> str:
    """``text`` without its first ``nbytes`` bytes, or a few more to end on a character boundary."""
    if text.isascii():
        return text[nbytes:]
    raw = text.encode("utf-8", "replace")
    while nbytes < len(raw) and raw[nbytes] & 0xC0 == 0x80:  # a continuation byte
        nbytes += 1
    return raw[nbytes:].decode("utf-8", "replace")


def marker(dropped: int) -> str:
    return f"[… {dropped} bytes omitted …]\n"


class _Piece:
    """Text of one stream, in parts (joined when taken: a write costs no copy)."""

    __slots__ = ("nbytes", "parts", "stream")

    def __init__(self, stream: str, text: str, nbytes: int) -> None:
        self.stream = stream
        self.parts = [text]
        self.nbytes = nbytes

    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0]


class OutputBuffer:
    """What one attempt wrote, within ``budget`` bytes (see the module docstring)."""

    def __init__(self, budget: int) -> None:
        self.head_limit = budget // 2
        self.tail_limit = budget - self.head_limit
        self.head_used = 0
        self.live: list[_Piece] = []
        self.tail: deque[_Piece] = deque()
        self.tail_bytes = 0
        #: Bytes written and not kept (the marker's number).
        self.dropped = 0
        #: Anything written at all (an attempt that wrote nothing costs no round trip).
        self.wrote = False

    def add(self, stream: str, text: str) -> bool:
        """Keep ``text`` within the budget; True when it went to the head (a live flush is due)."""
        if not text:
            return False
        self.wrote = True
        n = size(text)
        room = self.head_limit - self.head_used
        to_head = False
        if room > 0:
            if n <= room:
                self._append(self.live, stream, text, n)
                self.head_used += n
                return True
            first, text = _cut(text, room)
            used = size(first)
            self._append(self.live, stream, first, used)
            self.head_used += used
            n -= used
            to_head = True
        self._append(self.tail, stream, text, n)
        self.tail_bytes += n
        self._trim()
        return to_head

    @staticmethod
    def _append(pieces: list[_Piece] | deque[_Piece], stream: str, text: str, n: int) -> None:
        if pieces and pieces[-1].stream == stream:
            last = pieces[-1]
            last.parts.append(text)
            last.nbytes += n
        else:
            pieces.append(_Piece(stream, text, n))

    def _trim(self) -> None:
        """Drop the oldest tail bytes beyond its half of the budget."""
        excess = self.tail_bytes - self.tail_limit
        while excess > 0 and self.tail:
            first = self.tail[0]
            if first.nbytes <= excess:
                self.tail.popleft()
                removed = first.nbytes
            else:
                rest = _drop_front(first.text(), excess)
                kept = size(rest)
                removed = first.nbytes - kept
                first.parts, first.nbytes = [rest], kept
            self.tail_bytes -= removed
            self.dropped += removed
            excess -= removed

    def take_live(self) -> list[tuple[str, str]]:
        """The head written since the last call, for a live flush. A last line that has no
        newline yet stays for the next flush (up to ``PARTIAL_LINE``, and while the head has
        room): entries hold whole lines."""
        if not self.live:
            return []
        out = [(p.stream, p.text()) for p in self.live]
        self.live = []
        stream, text = out[-1]
        cut = text.rfind("\n") + 1
        more = self.head_used < self.head_limit  # the head may still get the rest of the line
        if more and cut < len(text) and len(text) - cut < PARTIAL_LINE:
            rest = text[cut:]
            self.live.append(_Piece(stream, rest, size(rest)))
            if cut:
                out[-1] = (stream, text[:cut])
            else:
                out.pop()
        return out

    def take_all(self) -> list[tuple[str, str]]:
        """Everything not handed out yet, at the attempt's end: the rest of the head, then
        (when bytes were left out) the marker, then the tail."""
        out = [(p.stream, p.text()) for p in self.live]
        self.live = []
        if self.dropped:
            out.append(("omitted", marker(self.dropped)))
        out += [(p.stream, p.text()) for p in self.tail if p.nbytes]
        self.tail.clear()
        self.tail_bytes = 0
        return out


__all__ = ["PARTIAL_LINE", "OutputBuffer", "marker", "size"]
