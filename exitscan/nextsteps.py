"""Known next steps: offer the one an OCR draft is closest to, with how close it is.

Pupils often write one of a handful of next steps: the options printed as tick boxes, the ones
the teacher lists for the lesson, the ones the class wrote before. When a draft is close to
one of them, `best_match` offers it as ``next_step_match`` beside the draft, with its
distance; it never replaces the draft (a pupil who wrote something new must not be snapped to
a stock sentence silently).

Distances are Levenshtein edits between normalised texts (case, punctuation and spacing
ignored), divided by the known step's length: 0 = the same words, 0.3 = about one character
in three differs. `cer` is the character error rate used by the benchmarks.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

#: Offer a known step only when the draft is at most this far from it (normalised distance).
MAX_MATCH_DISTANCE = 0.35
#: ...and clearly nearer to it than to the next best known step.
MIN_MARGIN = 0.08

_NON_WORD = re.compile(r"[^\w\s]+", re.UNICODE)


def levenshtein(a: str, b: str) -> int:
    """Edits (insert, delete, substitute one character) that turn ``a`` into ``b``."""
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(draft: str, truth: str) -> float:
    """Character error rate of ``draft`` against ``truth``: edits / len(truth) (1.0 for "" vs text)."""
    if not truth:
        return 0.0 if not draft else 1.0
    return levenshtein(draft, truth) / len(truth)


def normalise(text: str) -> str:
    """Text as compared for matching: NFC, case-folded, no punctuation, single spaces."""
    t = unicodedata.normalize("NFC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", t).split())


@dataclass(frozen=True)
class Match:
    text: str  # the known next step, as the teacher wrote it
    distance: float  # normalised edit distance of the draft to it (0 = same words)


def best_match(draft: str, known: Iterable[str], max_distance: float = MAX_MATCH_DISTANCE) -> Match | None:
    """The known next step ``draft`` is closest to, if close enough and clearly the closest."""
    d = normalise(draft)
    if not d:
        return None
    scored: list[tuple[float, str]] = []
    seen: set[str] = set()
    for k in known:
        nk = normalise(k)
        if not nk or nk in seen:
            continue
        seen.add(nk)
        # A cheap bound first: the length difference alone is already too many edits.
        if abs(len(nk) - len(d)) / len(nk) > max_distance:
            continue
        scored.append((levenshtein(d, nk) / len(nk), k))
    if not scored:
        return None
    scored.sort()
    dist, text = scored[0]
    if dist > max_distance:
        return None
    # Two known steps about as close (a draft between them) offer neither; an exact or
    # near-exact draft is offered even beside a step one character away.
    if len(scored) > 1 and scored[1][0] - dist < min(MIN_MARGIN, dist):
        return None
    return Match(" ".join(text.split()), round(dist, 3))


__all__ = ["MAX_MATCH_DISTANCE", "Match", "best_match", "cer", "levenshtein", "normalise"]
