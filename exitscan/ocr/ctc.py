"""Decoding a CTC recogniser's output into text, with a soft preference for real words.

A CTC recognition model (RapidOCR's PP-OCR) gives, for each timestep across a line, a
probability for each symbol of its alphabet and for "blank". The usual decoding is greedy: the
likeliest symbol at each timestep, repeats merged, blanks dropped. On blurred or jittered
handwriting that often leaves one letter wrong in an otherwise legible word ("practise" read
"proctise") while the right letter had most of the rest of the probability.

`WordBeamDecoder` is a CTC prefix beam search (Hannun et al., 2014, "First-pass large vocabulary
continuous speech recognition using bi-directional recurrent DNNs") with a word prior in place
of a language model: a word that is not in the `Lexicon` costs `WordBeamSettings.oov_cost`
(natural log), charged once, as soon as the word being spelled leaves the lexicon's prefixes
(so the beam keeps the spellings that still can become a word) or when it ends. The prior is
weighed against the recogniser's own evidence, never forced: a pupil's misspelling that the
model reads clearly (its alternatives each far less likely than ``exp(-oov_cost)``) stays as
written; digits, punctuation and anything not a letter pass through untouched and break words.

Words are matched lower-case and without accents; the text keeps the model's own characters.
The score of a decoded line is what greedy decoding reports for its own path (the mean of each
emitted character's probability), taken along the best path of the decoded text: a letter the
word prior chose against the model's first choice brings its lower probability with it, so a
corrected word never looks surer than the model was.
"""

from __future__ import annotations

import bisect
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Debian's British English word list (package ``wbritish``, SCOWL; ~100,000 words with UK
#: spellings: "practise", "colour"). `Lexicon.system` reads it when installed.
SYSTEM_WORDS = Path("/usr/share/dict/british-english")

_APOSTROPHES = frozenset("'’‘`´")
_OPENERS = frozenset('"“„([')
_NUMBER_SEPARATORS = frozenset(".,:/")
#: What may follow a number in the same token: 2nd, 5th, 10s, 8x.
_SUFFIXES = ("st", "nd", "rd", "th", "s", "x")
#: A token's openers and closing punctuation (set aside before its words are looked up).
_CORE = re.compile(r"^[\"“„(\['‘]+|[.,!?;:\"”)\]'’]+$")
_PLAIN = re.compile(r"[A-Za-z][A-Za-z']*")
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*(?:st|nd|rd|th|s|x)?")


def char_class(ch: str) -> str:
    """How a character counts in a token: "L" letter, "A" apostrophe, "D" digit, "H" hyphen,
    "S" a break between tokens (space, or a character outside Latin script, which cleaning
    drops), "C" anything else (punctuation, symbols)."""
    if ch.isspace():
        return "S"
    if ch in _APOSTROPHES:
        return "A"
    if word_key(ch):
        return "L"
    n = unicodedata.normalize("NFKC", ch)
    if len(n) == 1 and n.isdigit() and n.isascii():
        return "D"
    if n in ("-", "‐", "–", "—"):
        return "H"
    if ch.isascii() or unicodedata.category(ch)[0] in "PS" and ord(ch) < 0x3000:
        return "C"
    return "S"


def word_key(ch: str) -> str:
    """A character as it counts in a word: a lower-case a-z letter (accents off, full-width
    forms folded), ``"'"`` for an apostrophe, or ``""`` when it is not part of a word."""
    if ch in _APOSTROPHES:
        return "'"
    base = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", ch))
    base = "".join(c for c in base if not unicodedata.combining(c)).lower()
    return base if len(base) == 1 and "a" <= base <= "z" else ""


class Lexicon:
    """A set of words (lower-case a-z and apostrophes) that also answers "is this the start of
    a word?" (a binary search in the sorted list: no trie of ~10^6 Python objects to build)."""

    def __init__(self, words: Iterable[str]):
        keys = set()
        for w in words:
            w = w.strip()
            # Plain a-z words (nearly all) directly; others character by character (~10x slower).
            k = w.lower() if _PLAIN.fullmatch(w) else "".join(word_key(c) for c in w)
            # Words whose every character is a letter or an apostrophe inside ("pupil's").
            if k and len(k) == len(w) and not k.startswith("'"):
                keys.add(k)
        self._sorted = sorted(keys)
        self._words = frozenset(keys)
        self._prefix: dict[str, bool] = {}

    @classmethod
    def from_file(cls, path: Path) -> Lexicon:
        """One word a line (UTF-8), as ``/usr/share/dict`` lists are."""
        return cls(path.read_text(encoding="utf-8", errors="replace").splitlines())

    @classmethod
    def system(cls, path: Path = SYSTEM_WORDS) -> Lexicon | None:
        """Debian's British English list (`SYSTEM_WORDS`), or None when it is not installed
        (``apt-get install wbritish``): decoding is then greedy, as without a word prior."""
        try:
            lex = cls.from_file(path)
        except OSError:
            return None
        return lex if len(lex) else None

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, key: str) -> bool:
        return key in self._words

    def knows(self, text: str) -> bool:
        """Whether every token of ``text`` (split at spaces) is fine by the decoder's rule
        (`WordBeamDecoder`): lexicon words (hyphens between), numbers, or symbols alone."""
        for token in text.split():
            core = _CORE.sub("", token)
            if not any(c.isalnum() for c in core) or _NUMBER.fullmatch(core.lower()):
                continue
            parts = core.split("-")
            if not all(p and "".join(word_key(c) for c in p).rstrip("'") in self for p in parts):
                return False
        return bool(text.strip())

    def is_prefix(self, key: str) -> bool:
        """Whether some word starts with ``key`` (a word is its own prefix)."""
        got = self._prefix.get(key)
        if got is None:
            i = bisect.bisect_left(self._sorted, key)
            got = i < len(self._sorted) and self._sorted[i].startswith(key)
            if len(self._prefix) < 200_000:
                self._prefix[key] = got
        return got


# --------------------------------------------------------------------------- decoding


def greedy(probs: np.ndarray, chars: Sequence[str]) -> tuple[str, float]:
    """Best-path decoding, as RapidOCR does it: ``probs`` (T, C) float, column 0 blank,
    ``chars[i]`` the symbol of column i. Returns the text and the mean probability of its
    characters (each at the first timestep of its run; 0.0 for an empty line)."""
    if probs.shape[0] == 0:
        return "", 0.0
    idx = probs.argmax(axis=1)
    keep = np.ones(len(idx), bool)
    keep[1:] = idx[1:] != idx[:-1]
    keep &= idx != 0
    sel = np.flatnonzero(keep)
    if sel.size == 0:
        return "", 0.0
    return "".join(chars[i] for i in idx[sel]), float(probs[sel, idx[sel]].mean())


@dataclass(frozen=True)
class WordBeamSettings:
    #: Cost (natural log) of a word not in the lexicon: its letters must be exp(oov_cost) times
    #: likelier, all told, than the likeliest spelling of a word to stay as written.
    oov_cost: float = 4.0
    #: Prefixes kept after each timestep.
    beam: int = 10
    #: Symbols below this probability at a timestep are not tried there.
    min_prob: float = 0.01


@dataclass(slots=True)
class _Beam:
    text: str
    last: int  # the column of the last symbol emitted (-1: none)
    lp_b: float  # log probability of the paths that spell `text` and end in blank
    lp_nb: float  # ... that end in `last`
    mode: str  # the state of the token being written (`WordBeamDecoder._step`)
    part: str  # the word (or number suffix) being spelled, in `word_key` characters
    prior: float  # the word prior so far (log, <= 0)
    conf_sum: float  # emitted characters' probabilities, all but the last (best path)
    conf_last: float  # the last emitted character's probability (-1: none)
    n: int  # characters emitted
    best: float  # log probability of the best single contribution (whose conf it keeps)

    def total(self) -> float:
        return _logadd(self.lp_b, self.lp_nb) + self.prior


_NEG = -math.inf


def _logadd(a: float, b: float) -> float:
    if a == _NEG:
        return b
    if b == _NEG:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


class WordBeamDecoder:
    """CTC prefix beam search with a word prior (see the module's docstring).

    ``chars``: the model's alphabet by column (column 0 is blank; its entry is ignored).
    ``lexicon``: None or empty means greedy decoding (`greedy`), exactly as without it.
    """

    def __init__(self, chars: Sequence[str], lexicon: Lexicon | None, settings: WordBeamSettings | None = None):
        self.chars = list(chars)
        self.lexicon = lexicon if lexicon is not None and len(lexicon) else None
        self.settings = settings or WordBeamSettings()
        self._keys = [""] + [word_key(c) for c in self.chars[1:]]
        self._class = ["S"] + [char_class(c) for c in self.chars[1:]]
        # The symbols tried besides each timestep's likeliest: letters and ASCII (searching all
        # of a multilingual model's ~18,000 columns at every timestep costs more than the model).
        self._tried = np.array([i for i, c in enumerate(self.chars) if i and (self._keys[i] or (len(c) == 1 and c.isascii()))], np.intp)

    def __call__(self, probs: np.ndarray) -> tuple[str, float]:
        """Decode ``probs`` ((T, C) float, rows summing to 1) into (text, score)."""
        plain = greedy(probs, self.chars)
        if self.lexicon is None or not plain[0].strip() or self.lexicon.knows(plain[0]):
            # Nothing for the prior to weigh: every token of the likeliest reading is fine.
            return plain
        return self._search(np.asarray(probs, np.float32))

    # -- word prior ----------------------------------------------------------------------
    # A token (what lies between spaces) is fine when it is, once opening quotes or brackets and
    # closing punctuation are set aside, words of the lexicon joined by hyphens, a number (with
    # separators and an ordinal suffix: 3.5, 7/10, 2nd), or symbols alone. Anything else
    # ("tabels", "f-8r", "2o", "-y") is charged `oov_cost` once, as soon as it can no longer
    # become fine: letters swapped for digits or dashes are no way round the prior.

    def _word_ok(self, part: str) -> bool:
        return part.rstrip("'") in self.lexicon

    def _step(self, mode: str, part: str, col: int) -> tuple[str, str, bool]:
        """The token state (mode, part) after emitting column ``col``, and whether the token
        is to be charged now. Modes: "" nothing yet (or openers), "w" in a word (``part``: its
        letters so far), "h" after a hyphen in words, "n" a number, "ns" after a separator in
        a number, "s" a number's suffix (``part``), "p" closing punctuation or symbols, "x"
        charged already."""
        cls, k = self._class[col], self._keys[col]
        if cls == "S":
            return "", "", self._ends_bad(mode, part)
        if mode == "x":
            return "x", "", False
        if mode in ("", "h"):
            if cls == "L":
                return ("w", k, False) if self.lexicon.is_prefix(k) else ("x", "", True)
            if cls == "D" and mode == "":
                return "n", "", False
            if mode == "" and (cls == "A" or self.chars[col] in _OPENERS):
                return "", "", False
            return ("x", "", True) if cls == "D" else ("p", "", False)
        if mode == "w":
            if cls in ("L", "A"):
                if self.lexicon.is_prefix(part + k):
                    return "w", part + k, False
                if cls == "A" and self._word_ok(part):
                    return "p", "", False
                return "x", "", True
            if cls == "D" or not self._word_ok(part):
                return "x", "", True
            return ("h", "", False) if cls == "H" else ("p", "", False)
        if mode in ("n", "ns"):
            if cls == "D":
                return "n", "", False
            if cls == "L" and mode == "n":
                return ("s", k, False) if any(x.startswith(k) for x in _SUFFIXES) else ("x", "", True)
            if cls == "L":
                return "x", "", True
            if mode == "n" and (cls == "H" or self.chars[col] in _NUMBER_SEPARATORS):
                return "ns", "", False
            return "p", "", False
        if mode == "s":
            if cls == "L":
                return ("s", part + k, False) if any(x.startswith(part + k) for x in _SUFFIXES) else ("x", "", True)
            if cls == "D" or part not in _SUFFIXES:
                return "x", "", True
            return "p", "", False
        # "p": closing punctuation; letters or digits after it make a garbled token.
        return ("x", "", True) if cls in ("L", "D") else ("p", "", False)

    def _ends_bad(self, mode: str, part: str) -> bool:
        """Whether a token in state (mode, part) is to be charged when it ends."""
        return (mode == "w" and not self._word_ok(part)) or (mode == "s" and part not in _SUFFIXES)

    def _extend(self, b: _Beam, col: int) -> tuple[str, str, float]:
        """(mode, part, prior) after ``b`` emits column ``col``."""
        mode, part, charge = self._step(b.mode, b.part, col)
        return mode, part, b.prior - self.settings.oov_cost if charge else b.prior

    def _final(self, b: _Beam) -> float:
        """The prior of ``b`` once the line (and so its last token) ends."""
        return b.prior - self.settings.oov_cost if self._ends_bad(b.mode, b.part) else b.prior

    # -- search --------------------------------------------------------------------------

    def _search(self, probs: np.ndarray) -> tuple[str, float]:
        s = self.settings
        T = probs.shape[0]
        # Only timesteps where something but blank is likely enough to try: a row's other
        # symbols add up to 1 - blank, so rows with blank >= 1 - min_prob have none.
        busy = np.flatnonzero(probs[:, 0] < 1.0 - s.min_prob)
        if busy.size == 0:
            return "", 0.0
        sub = probs[busy]
        top = sub.argmax(axis=1)
        cols_at: dict[int, list[int]] = {}
        for r, c in zip(busy.tolist(), top.tolist(), strict=True):
            if c:
                cols_at[r] = [c]
        cand_r, cand_c = np.nonzero(sub[:, self._tried] >= s.min_prob)
        for r, c in zip(busy[cand_r].tolist(), self._tried[cand_c].tolist(), strict=True):
            got = cols_at.setdefault(r, [])
            if c not in got:
                got.append(c)
        if all(len(v) == 1 for v in cols_at.values()) and float(sub.max(axis=1).min()) >= 1.0 - s.min_prob:
            return greedy(probs, self.chars)  # one reading only: nothing for the prior to weigh
        log_blank = np.log(np.maximum(probs[:, 0], 1e-30)).tolist()
        log = math.log
        beams: list[_Beam] = [_Beam("", -1, 0.0, _NEG, "", "", 0.0, 0.0, -1.0, 0, 0.0)]
        for t in range(T):
            row = probs[t]
            lp_blank = log_blank[t]
            cols = cols_at.get(t)
            if cols is None:
                # Blank (or a repeat of the last symbol): no prefix changes, none merge.
                for b in beams:
                    lp_nb = b.lp_nb + log(max(float(row[b.last]), 1e-30)) if b.last > 0 and b.lp_nb > _NEG else _NEG
                    b.lp_b = _logadd(b.lp_b, b.lp_nb) + lp_blank
                    b.lp_nb = lp_nb
                continue
            nxt: dict[str, _Beam] = {}
            for b in beams:
                lp_all = _logadd(b.lp_b, b.lp_nb)
                # Blank: the same text, now ending in blank.
                self._add(nxt, b, b.text, b.last, lp_all + lp_blank, True, None, 0.0)
                # The last symbol again without a blank between: the same text.
                if b.last > 0 and b.lp_nb > _NEG:
                    self._add(nxt, b, b.text, b.last, b.lp_nb + log(max(float(row[b.last]), 1e-30)), False, None, 0.0)
                for c in cols:
                    src = b.lp_b if c == b.last else lp_all  # a repeat needs a blank between
                    if src == _NEG:
                        continue
                    p = float(row[c])
                    self._add(nxt, b, b.text + self.chars[c], c, src + log(p), False, c, p)
            beams = list(nxt.values())
            if len(beams) > s.beam:
                beams.sort(key=_Beam.total, reverse=True)
                del beams[s.beam:]
        # The last word ends with the line.
        best = max(beams, key=lambda b: _logadd(b.lp_b, b.lp_nb) + self._final(b))
        if best.n == 0:
            return "", 0.0
        return best.text, (best.conf_sum + best.conf_last) / best.n

    def _add(self, nxt: dict[str, _Beam], b: _Beam, text: str, last: int, lp: float, blank: bool,
             emitted: int | None, p: float) -> None:
        """Add one path's probability ``lp`` to the prefix ``text`` in ``nxt``.

        ``emitted``: the column of a newly emitted symbol (None: ``text`` is ``b.text``; ``p``
        then is the repeated last symbol's probability, or 0.0 for a blank).
        """
        got = nxt.get(text)
        if got is None:
            if emitted is None:
                got = _Beam(text, last, _NEG, _NEG, b.mode, b.part, b.prior, b.conf_sum, b.conf_last, b.n, _NEG)
            else:
                mode, part, prior = self._extend(b, emitted)
                got = _Beam(text, last, _NEG, _NEG, mode, part, prior,
                            b.conf_sum + max(0.0, b.conf_last), p, b.n + 1, _NEG)
            nxt[text] = got
        if blank:
            got.lp_b = _logadd(got.lp_b, lp)
        else:
            got.lp_nb = _logadd(got.lp_nb, lp)
        if lp > got.best:
            # The best path to this prefix so far: its characters' probabilities are the score.
            got.best = lp
            if emitted is None:
                got.conf_sum = b.conf_sum
                got.conf_last = b.conf_last
                got.n = b.n
            else:
                got.conf_sum = b.conf_sum + max(0.0, b.conf_last)
                got.conf_last = p
                got.n = b.n + 1
