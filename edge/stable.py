"""Stable readings: per-digit votes over the last N frames, and plausibility checks for counters.

    >>> from edge.stable import StableConfig, Stabilizer
    >>> s = Stabilizer(StableConfig(frames=3))
    >>> digit = lambda d, x: {"digit": d, "confidence": 0.9, "box": [x, 10, 20, 30]}
    >>> records = [{"digits": [digit(4, 0), digit(2, 30)]}, {"digits": [digit(4, 0), digit(7, 30)]},
    ...            {"digits": [digit(4, 0), digit(2, 30)]}]   # as `mnist-edge camera` prints them
    >>> for record in records:
    ...     record.update(s.update(record))       # + "stable", "changed" (and "suspect" when flagged)
    >>> [(r["stable"], r["changed"]) for r in records]   # 4-7-... misread once: still "42"
    [(None, False), (None, False), ('42', True)]

A single frame can misread a digit (a 9 as a 5, an 8 as a 4) or lose one under the confidence floor.
So a reading becomes *stable* when, of the last N frames, more than half show the same digit layout
(same number of digits, each box roughly where it was) and every digit position has the same digit
in more than half of the N. Frames that agree throughout make it stable after N // 2 + 1 of them;
a digit misread in one frame of three still reads right with N = 3; with N = 1 every non-empty
reading is stable at once. A frame with no digits never
becomes stable: "stable" keeps the last stable reading (null before the first).

Plausibility (off by default), for meters and counters: `monotonic` (the count only goes up) and
`max_step` (it never moves by more than K at once). A new stable candidate that fails them is not
adopted: "stable" keeps the previous value and the record says why in "suspect". Nothing is dropped
silently. The state lives in memory only; a restart starts afresh.

Pure logic: no I/O, no imports beyond the standard library.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from edge.errors import UserError


@dataclass
class StableConfig:
    frames: int = 3  # --stable N: frames in the voting window (1: every non-empty reading is stable)
    monotonic: bool = False  # --monotonic: a counter that only goes up; a smaller candidate is suspect
    max_step: int | None = None  # --max-step K: a candidate more than K away from the stable one is suspect
    box_tolerance: float = 0.5  # boxes "in place": centres within this fraction of the digit's height

    def check(self) -> None:
        if self.frames < 1:
            raise UserError(f"--stable {self.frames}: expected 1 or more frames")
        if self.max_step is not None and self.max_step < 0:
            raise UserError(f"--max-step {self.max_step}: expected 0 or more")


def _centre(box) -> tuple[float, float]:
    x, y, w, h = box
    return x + w / 2, y + h / 2


def same_layout(a: list[dict], b: list[dict], tolerance: float) -> bool:
    """Same number of digits, each box's centre within `tolerance` x its height of the other's."""
    if len(a) != len(b):
        return False
    for da, db in zip(a, b, strict=True):
        (xa, ya), (xb, yb) = _centre(da["box"]), _centre(db["box"])
        limit = tolerance * max(da["box"][3], db["box"][3], 1)
        if abs(xa - xb) > limit or abs(ya - yb) > limit:
            return False
    return True


def vote(window: list[list[dict]], n: int, tolerance: float) -> list[dict] | None:
    """The digits voted by more than n/2 of a window of frames (each a list of digit dicts), or None.

    `n` is the window's full size, so a window still filling up needs the same number of votes.
    Each returned digit: the winning digit, its mean confidence over the frames that voted for it,
    and its box in the latest of those frames.
    """
    for ref in reversed(window):  # the latest layout first
        if not ref:
            continue
        agreeing = [f for f in window if same_layout(ref, f, tolerance)]
        if 2 * len(agreeing) <= n:
            continue
        out = []
        for i in range(len(ref)):
            counts = Counter(f[i]["digit"] for f in agreeing)
            digit, votes = counts.most_common(1)[0]
            if 2 * votes <= n:
                break
            voters = [f[i] for f in agreeing if f[i]["digit"] == digit]
            out.append({"digit": digit,
                        "confidence": round(sum(d["confidence"] for d in voters) / len(voters), 4),
                        "box": list(voters[-1]["box"])})
        else:
            return out
    return None


def implausible(candidate: str, stable: str | None, cfg: StableConfig) -> str | None:
    """Why `candidate` cannot follow `stable` under the plausibility settings, or None if it can."""
    if stable is None or not (cfg.monotonic or cfg.max_step is not None):
        return None
    new, old = int(candidate), int(stable)
    if cfg.monotonic and new < old:
        return f"{candidate} is less than the stable {stable} (--monotonic)"
    if cfg.max_step is not None and abs(new - old) > cfg.max_step:
        return f"{candidate} is {abs(new - old)} away from the stable {stable} (--max-step {cfg.max_step})"
    return None


class Stabilizer:
    """Feed it every frame's record; it keeps the window and the stable reading."""

    def __init__(self, cfg: StableConfig | None = None):
        self.cfg = cfg or StableConfig()
        self.cfg.check()
        self._window: deque[list[dict]] = deque(maxlen=self.cfg.frames)
        self.reading: str | None = None  # the stable reading (None before the first)
        self.digits: list[dict] = []  # its digits: digit, mean confidence, box

    @property
    def confidence(self) -> float | None:
        """The stable reading's weakest digit's confidence."""
        return min(d["confidence"] for d in self.digits) if self.digits else None

    def update(self, record: dict) -> dict:
        """One frame's record -> {"stable", "changed"} and "suspect" when a candidate was rejected."""
        self._window.append([{"digit": int(d["digit"]), "confidence": float(d["confidence"]),
                              "box": list(d["box"])} for d in record.get("digits", [])])
        out: dict = {}
        voted = vote(list(self._window), self.cfg.frames, self.cfg.box_tolerance)
        changed = False
        if voted:
            candidate = "".join(str(d["digit"]) for d in voted)
            if candidate != self.reading:
                why = implausible(candidate, self.reading, self.cfg)
                if why:
                    out["suspect"] = why
                else:
                    self.reading, changed = candidate, True
            if candidate == self.reading:
                self.digits = voted  # fresher confidences and boxes for the same reading
        out = {"stable": self.reading, "changed": changed, **out}
        return out
