"""The word-aware CTC decoder (exitscan.ocr.ctc) and RapidOCR reading with it.

The decoder is tested on probability matrices written by hand (a model's output for a few
characters), so what it must do is plain: a known word beats a one-letter-off greedy path, a
clear non-word stays as written, numbers and punctuation pass through, no lexicon means greedy.
Then the real engine (rapidocr, the ``ocr`` extra) reads printed crops with Debian's British
English list (``wbritish``, which ``bash test.sh`` installs) against the same engine without it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from exitscan.nextsteps import cer
from exitscan.ocr import LOW_CONFIDENCE
from exitscan.ocr.ctc import SYSTEM_WORDS, Lexicon, WordBeamDecoder, WordBeamSettings, greedy
from exitscan.ocr.rapid import RapidOcrEngine

sys.path.insert(0, str(Path(__file__).parent))
from test_ocr_rapid import _printed  # the same printed crops as the engine's tests

#: A small alphabet, as a CTC model's columns: 0 is blank.
CHARS = ["blank", *"abcdefghijklmnopqrstuvwxyz", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", *"0123456789", *".,'-", " "]
COL = {c: i for i, c in enumerate(CHARS)}


def matrix(*steps: str | dict[str, float]) -> np.ndarray:
    """A (T, C) probability matrix: each step a character read with probability 0.98, or a
    {character: probability} dict; the rest of each row is blank, and a blank row follows each
    step (so doubled letters stay two)."""
    rows = []
    for s in steps:
        got = {s: 0.98} if isinstance(s, str) else s
        row = np.zeros(len(CHARS), np.float32)
        for ch, p in got.items():
            row[COL[ch]] = p
        row[0] = 1.0 - row.sum()
        blank = np.zeros(len(CHARS), np.float32)
        blank[0] = 1.0
        rows += [row, blank]
    return np.stack(rows)


def spelled(text: str, **unsure: dict[str, float]) -> list[str | dict[str, float]]:
    """The steps spelling ``text``; ``unsure`` replaces the step at an index (``i3=...``)."""
    steps: list[str | dict[str, float]] = list(text)
    for k, v in unsure.items():
        steps[int(k[1:])] = v
    return steps


WORDS = Lexicon(["I", "need", "to", "practise", "my", "times", "tables", "table", "a", "list"])


def decode(probs: np.ndarray, lexicon: Lexicon | None = WORDS, **settings) -> tuple[str, float]:
    return WordBeamDecoder(CHARS, lexicon, WordBeamSettings(**settings))(probs)


def test_a_known_word_beats_a_one_letter_off_greedy_path():
    # "tables" whose 'a' the model half-read as 'o': greedy says "tobles".
    probs = matrix(*spelled("my tables", i4={"o": 0.6, "a": 0.38}))
    assert greedy(probs, CHARS)[0] == "my tobles"
    text, score = decode(probs)
    assert text == "my tables"
    # The letter chosen against the model's first choice brings its lower probability along.
    assert score < greedy(probs, CHARS)[1]
    # Words run together where the model half-saw a space: split where that spells words.
    probs = matrix("I", {" ": 0.4}, *"need")
    assert greedy(probs, CHARS)[0] == "Ineed"
    assert decode(probs)[0] == "I need"


def test_a_clear_non_word_stays_as_written():
    # A pupil's misspelling read clearly: the nearest word is far less likely, it stays.
    probs = matrix(*spelled("practis my tabels", i14={"e": 0.97, "l": 0.01}))
    assert decode(probs)[0] == "practis my tabels"
    # The prior is a weight, not a rule: with no cost for unknown words it changes nothing...
    half = matrix(*spelled("tobles", i1={"o": 0.6, "a": 0.38}))
    assert decode(half, oov_cost=0.0)[0] == "tobles"
    # ... and a word the model is sure of is never dropped for lack of a lexicon entry.
    assert decode(matrix(*"Minecraft"))[0] == "Minecraft"


def test_numbers_and_punctuation_pass_through():
    probs = matrix(*"my 8 times table.")
    assert decode(probs)[0] == "my 8 times table."
    assert decode(matrix(*"7.5, 10th, 3-4"))[0] == "7.5, 10th, 3-4"
    # A letter in a number is unknown too: "2o" -> "20" when the model half-saw the zero.
    assert decode(matrix("2", {"o": 0.55, "0": 0.43}))[0] == "20"
    # Swapping a letter for a digit or a dash is no way round the prior: "t4bles" is unknown.
    probs = matrix(*spelled("tables", i1={"4": 0.5, "a": 0.45}))
    assert greedy(probs, CHARS)[0] == "t4bles" and decode(probs)[0] == "tables"


def test_no_lexicon_is_greedy():
    rng = np.random.default_rng(3)
    for _ in range(20):
        logits = rng.normal(size=(30, len(CHARS))) * 3
        logits[:, 0] += 2
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        want = greedy(probs, CHARS)
        assert decode(probs, None) == want
        assert decode(probs, Lexicon([])) == want
    assert decode(np.zeros((0, len(CHARS)), np.float32)) == ("", 0.0)
    blank = np.zeros((6, len(CHARS)), np.float32)
    blank[:, 0] = 1.0
    assert decode(blank) == ("", 0.0)


def test_the_lexicon_folds_case_and_accents_and_knows_tokens(tmp_path):
    f = tmp_path / "words"
    f.write_text("Café\npupil's\ncolour\nx-ray\nnaïve\n", encoding="utf-8")
    lex = Lexicon.from_file(f)
    assert "cafe" in lex and "pupil's" in lex and "colour" in lex and "naive" in lex
    assert "x-ray" not in lex and len(lex) == 4  # hyphenated entries: their parts are words
    assert lex.is_prefix("col") and lex.is_prefix("colour") and not lex.is_prefix("colr")
    assert lex.knows("Colour, the CAFE's...") is False  # "cafe's" is no entry
    assert lex.knows('"Colour" 3.5 pupil\'s 2nd - café.') is True
    assert Lexicon.system(tmp_path / "missing") is None


@pytest.mark.skipif(not SYSTEM_WORDS.is_file(), reason="apt-get install wbritish (bash test.sh does)")
def test_the_system_list_spells_british():
    lex = Lexicon.system()
    assert lex is not None and len(lex) > 50_000
    for w in ("practise", "colour", "favourite", "paragraph", "subtraction", "i", "a"):
        assert w in lex, w


# --------------------------------------------------------------------------- the engine


@pytest.fixture(scope="module")
def engines():
    plain, words = RapidOcrEngine(lexicon=None), RapidOcrEngine()
    yield plain, words
    plain.close()
    words.close()


def test_the_engine_decodes_with_the_word_list(engines):
    plain, words = engines
    assert plain.decoding == "greedy" and words.decoding.startswith("word beam")
    # Printed, squeezed and blurred: greedy reads "verbs" one letter off; the word list fixes it.
    crop = cv2.GaussianBlur(cv2.resize(_printed("Use more interesting verbs."), None, fx=0.45, fy=1.0, interpolation=cv2.INTER_AREA), (0, 0), 2.0)
    a, b = plain.read(crop, 1), words.read(crop, 1)
    assert "verbs" not in a.text and "interesting verbs" in b.text
    assert cer(b.text, "Use more interesting verbs.") < cer(a.text, "Use more interesting verbs.")
    # A clear misspelling is read as the pupil wrote it, and is no trusted draft of known words.
    mis = words.read(_printed("I need to practis my tabels."), 1)
    assert mis.text == "I need to practis my tabels."
    assert not words.lexicon.knows(mis.text)
    # A clear sentence of known words reads as before, trusted.
    got = words.read(_printed("Use commas in a list."), 1)
    assert got.text == "Use commas in a list." and got.trusted


def test_other_languages_and_a_missing_list_keep_greedy(tmp_path):
    assert RapidOcrEngine(lang="eng+fra").decoding == "greedy"
    e = RapidOcrEngine(lexicon=Lexicon.system(tmp_path / "none"))
    assert e.decoding == "greedy" and e.lexicon is None
    got = e.read(_printed("Use commas in a list."), 1)
    assert got.text == "Use commas in a list." and got.confidence >= LOW_CONFIDENCE
