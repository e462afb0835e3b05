"""The pass's QR payload: what is encoded comes back, within the byte budget, or a clear refusal."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from exitscan import payload
from exitscan.payload import MAX_PAYLOAD_BYTES, PassCode, PayloadError, decode, encode

#: Any Unicode text (hypothesis leaves out lone surrogates, which no file can hold anyway),
#: with the payload's own separator and escape character made common.
texts = st.text(alphabet=st.one_of(st.sampled_from("|%%7C25 \n\r"), st.characters(blacklist_categories=("Cs",))), max_size=60)
# Ids and classes are never shortened: at most 4 + 6 characters (<= 40 bytes escaped) always
# leave room for the rest; longer ones may be refused (test_ids_and_classes_that_leave_no_room...).
ids = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="|"), max_size=4)
classes = st.text(alphabet=st.one_of(st.sampled_from("|%\n"), st.characters(blacklist_categories=("Cs",))), max_size=6)
dates = st.one_of(st.just(""), st.dates().map(lambda d: d.isoformat()))


def code(**kw) -> PassCode:
    base = {
        "template": "C", "serial": 0, "lesson_key": "a3f9c2", "student_id": "1042", "student_name": "Siobhán Ní Bhriain",
        "class_name": "P3B", "date": "2026-11-23", "n_criteria": 0, "lesson": "Writing: adjectives",
    }
    base.update(kw)
    return PassCode(**base)


@settings(max_examples=300, deadline=None)
@given(name=texts, lesson=texts, cls=classes, pid=ids, date=dates, serial=st.integers(0, 10**5),
       template=st.sampled_from("CRT"), n_criteria=st.integers(0, 4))
@example(name="a|b%7C%25|%", lesson="%|%", cls="|%", pid="%7C", date="", serial=0, template="C", n_criteria=0)
@example(name="Łukasz Dąbrowski " * 5, lesson="Writing: adjectives", cls="P3B", pid="1042", date="2026-11-23",
         serial=17, template="R", n_criteria=4)
def test_round_trip(name, lesson, cls, pid, date, serial, template, n_criteria):
    c = code(template=template, serial=serial, student_id=pid, student_name=name, class_name=cls, date=date,
             n_criteria=n_criteria, lesson=lesson)
    text = encode(c)
    assert len(text.encode("utf-8")) <= MAX_PAYLOAD_BYTES
    assert "\n" not in text and "\r" not in text
    back = decode(text)
    # Everything that identifies the pass comes back exactly ...
    assert (back.template, back.serial, back.lesson_key, back.student_id, back.class_name, back.date,
            back.n_criteria) == (template, serial, "a3f9c2", pid, cls, date, n_criteria)
    assert back.is_spare == (pid == "")
    # ... and the texts come back whole, or as a prefix when they had to be shortened.
    # A shortened text keeps its start and says it was cut (an ellipsis).
    for full, got in ((name, back.student_name), (lesson, back.lesson)):
        assert got == full or (got.endswith("\u2026") and full.startswith(got[:-1]))


def test_short_texts_are_kept_whole():
    back = decode(encode(code()))
    assert back == code()


def test_a_long_name_is_shortened_but_keeps_its_start_and_the_lesson_stays_the_same():
    long = code(student_name="Maximiliana Wolfeschlegelsteinhausenbergerdorff-Ní Bhriain O'Connor")
    short = code(student_name="Jo")
    a, b = decode(encode(long)), decode(encode(short))
    assert len(a.student_name) >= 10 and a.student_name.endswith("\u2026")
    assert long.student_name.startswith(a.student_name[:-1])
    assert a.lesson == b.lesson  # the same title on every pass of a lesson, whatever the name


def test_ids_and_classes_that_leave_no_room_are_refused():
    with pytest.raises(ValueError, match="too long"):
        encode(code(student_id="3f2504e0-4f89-11d3-9a0c-0305e82c3301", class_name="Класс Ивановой Марии"))
    with pytest.raises(ValueError):
        encode(code(student_id="a|b"))


def test_shortening_a_very_long_text_is_quick():
    import time

    t0 = time.perf_counter()
    encode(code(student_name="x" * 200_000, lesson="y" * 200_000))
    assert time.perf_counter() - t0 < 0.5


def test_lesson_key_is_stable_and_depends_on_every_part():
    k = payload.lesson_key("classic", "P3B", "2026-11-23", "Writing")
    assert k == payload.lesson_key("classic", "P3B", "2026-11-23", "Writing")
    assert len(k) == 6 and int(k, 16) >= 0
    assert k != payload.lesson_key("classic", "P3A", "2026-11-23", "Writing")
    assert payload.lesson_key("a", "bc") != payload.lesson_key("ab", "c")


GOOD = "EXS1|C|17|a3f9c2|1042|Siobhán|P3B|20261123|3|Writing"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not an exitscan pass code"),
        ("https://example.org/", "not an exitscan pass code"),
        ("exs1|C|1|a|b|c|d|20261123|0|x", "not an exitscan pass code"),
        (GOOD.replace("EXS1", "EXS2"), "unknown version (EXS2)"),
        (GOOD + "|extra", "11 fields instead of 10"),
        (GOOD.rsplit("|", 1)[0], "9 fields instead of 10"),
        (GOOD.replace("|17|", "|x7|"), "bad number"),
        (GOOD.replace("|3|", "|three|"), "bad number"),
        (GOOD.replace("20261123", "2026-11-23"), "bad date"),
        (GOOD.replace("20261123", "2026112"), "bad date"),
    ],
)
def test_bad_payloads_raise_payload_error(text, message):
    with pytest.raises(PayloadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode(text)


def test_good_payload_decodes():
    c = decode(GOOD)
    assert (c.serial, c.student_id, c.student_name, c.date, c.n_criteria, c.lesson) == (
        17, "1042", "Siobhán", "2026-11-23", 3, "Writing")
    assert c.identity == ("a3f9c2", "1042")
    assert decode(GOOD.replace("|1042|Siobhán|", "|||")).identity == ("a3f9c2", "spare#17")
