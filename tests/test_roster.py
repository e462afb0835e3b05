"""Rosters and lesson files, checked at the door: what a teacher's spreadsheet writes is read
as they meant it, and every problem names the file and the line."""

from __future__ import annotations

import pytest
from conftest import UNICODE_NAMES

from exitscan.errors import ExitCode, InputError
from exitscan.roster import load_lesson_file, load_roster


def roster(tmp_path, data: bytes | str, name: str = "roster.csv"):
    p = tmp_path / name
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return p


def test_unicode_names_in_roster_order(tmp_path, write_roster):
    pupils = [(str(10 - i), n) for i, n in enumerate(UNICODE_NAMES)]
    got = load_roster(write_roster(pupils))
    assert [(p.id, p.name) for p in got] == pupils  # order kept, not sorted by id or name


def test_other_columns_are_kept_and_spaces_tidied(tmp_path):
    got = load_roster(roster(tmp_path, ' ID , Name ,Group\n 7 ,  Zoë   O\'Connor ,A\n\n8,"Smith, Jamie-Lee",\n\n'))
    assert [(p.id, p.name, p.extra) for p in got] == [
        ("7", "Zoë O'Connor", {"Group": "A"}),
        ("8", "Smith, Jamie-Lee", {"Group": ""}),
    ]


@pytest.mark.parametrize(
    "data",
    [
        "\ufeffid;name\r\n1;Siobhán Ní Bhriain\r\n2;Smith, Jamie-Lee\r\n".encode("utf-8"),  # Excel, Europe
        "\ufeffid,name\r\n1,Siobhán Ní Bhriain\r\n2,\"Smith, Jamie-Lee\"\r\n".encode("utf-8"),  # Excel CSV UTF-8
        "id\tname\n1\tSiobhán Ní Bhriain\n2\tSmith, Jamie-Lee\n".encode(),  # tab-separated
    ],
    ids=["semicolons+BOM", "commas+BOM", "tabs"],
)
def test_spreadsheet_dialects(tmp_path, data):
    got = load_roster(roster(tmp_path, data))
    assert [(p.id, p.name) for p in got] == [("1", "Siobhán Ní Bhriain"), ("2", "Smith, Jamie-Lee")]


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (b"", ["roster.csv: the roster is empty"]),
        (b"  \n\n", ["roster.csv: the roster is empty"]),
        (b"id,name\n", ["roster.csv: the roster has a header but no pupils"]),
        (b"id,name\n,\n\n", ["no pupils"]),
        (b"pupil,name\n1,Ann\n", ["roster.csv line 1", "no 'id' column", "'pupil', 'name'"]),
        (b"id,first\n1,Ann\n", ["roster.csv line 1", "no 'name' column"]),
        (b"first,last\n1,Ann\n", ["roster.csv line 1", "no 'id' and no 'name' column"]),
        (b"id,name,Name\n1,Ann,Ann\n", ["roster.csv line 1", "'name' appears twice"]),
        (b"id,name\n1,Ann\n2,Smith, Jamie\n", ["roster.csv line 3", "3 values but the header has 2", "double quotes"]),
        (b"id,name,group\n1,Ann,A\n2,Bob\n", ["roster.csv line 3", "2 values but the header has 3"]),
        (b"id,name\n1,Ann\n\n2,Bob\n1,Cat\n", ["roster.csv line 5", "'1' is already used on line 2"]),
        (b"id,name\n1,Ann\n,Bob\n", ["roster.csv line 3", "no id"]),
        (b"id,name\n1,Ann\n2,  \n", ["roster.csv line 3", "'2' has no name"]),
        (b"id,name\n1|2,Ann\n", ["roster.csv line 2", "'|'"]),
        ("id,name\n1,Ann\n2,Zoë\n3,Siobhán\n".encode("latin-1"), ["roster.csv line 3", "not UTF-8", "CSV UTF-8"]),
        ("id,name\n1,Ann\n2,Zoë\n".encode("utf-16"), ["roster.csv line 1", "not UTF-8"]),
        ("id,name\n1,Ann\n".encode("utf-16-le"), ["roster.csv line 1", "not UTF-8"]),  # no BOM: NULs
        # A missing closing quote must not let one pupil's name swallow the rows after it.
        (b'id,name\n1,"Ann\n2,Bob\n3,Cat\n', ["roster.csv line 2", "double quote"]),
        (b'id,name\n1,"Ann\n2,Bob"\n3,Cat\n', ["roster.csv line 2", "runs over several lines"]),
        (b'id,name\n1,"Ann" Lee\n', ["roster.csv line 2", "double quote"]),
    ],
)
def test_bad_rosters_name_the_file_and_line(tmp_path, data, fragments):
    with pytest.raises(InputError) as e:
        load_roster(roster(tmp_path, data))
    assert e.value.exit_code == ExitCode.BAD_INPUT
    for f in fragments:
        assert f in e.value.message, (f, e.value.message)


def test_line_numbers_count_lines_of_the_file_not_rows(tmp_path):
    with pytest.raises(InputError) as e:
        load_roster(roster(tmp_path, b'id,name,note\n1,Ann,"two\nlines"\n2,Bob,\n1,Cat,\n'))
    assert "roster.csv line 5: the id '1' is already used on line 2" in e.value.message


def test_missing_roster(tmp_path):
    with pytest.raises(InputError, match="roster file not found"):
        load_roster(tmp_path / "nope.csv")


def test_lesson_file(tmp_path):
    p = tmp_path / "lesson.toml"
    p.write_text(
        'class = "P3B"\nlesson = "  Writing:\\tadjectives "\ndate = 2026-11-23\n'
        'learning_intention = "To describe a character"\n'
        'success_criteria = ["I can use two adjectives", "  ", "I can use a comma"]\n'
        'next_step_options = "Practise my spellings"\ntemplate = "ticks"\n',
        encoding="utf-8",
    )
    assert load_lesson_file(p) == {
        "class_name": "P3B",
        "lesson": "Writing: adjectives",
        "date": "2026-11-23",
        "intention": "To describe a character",
        "criteria": ("I can use two adjectives", "I can use a comma"),
        "next_step_options": ("Practise my spellings",),
        "template": "ticks",
    }


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (b'lesson = "Maths\n', ["lesson.toml: not a valid lesson file", "line 1"]),
        (b'lesson = "Maths"\nteacher = "Ms Ng"\n', ["lesson.toml: unknown key 'teacher'", "criteria"]),
        (b'date = "23/11/2026"\n', ["lesson.toml", "'23/11/2026' is not a date", "YYYY-MM-DD"]),
        (b"criteria = [1, 2]\n", ["lesson.toml: criteria must be a list of texts"]),
        (b"lesson = 3\n", ["lesson.toml: lesson must be text"]),
        ('lesson = "Zoë"\n'.encode("latin-1"), ["lesson.toml: not UTF-8"]),
    ],
)
def test_bad_lesson_files(tmp_path, text, fragments):
    p = tmp_path / "lesson.toml"
    p.write_bytes(text)
    with pytest.raises(InputError) as e:
        load_lesson_file(p)
    for f in fragments:
        assert f in e.value.message, (f, e.value.message)


def test_missing_lesson_file(tmp_path):
    with pytest.raises(InputError, match="lesson file not found"):
        load_lesson_file(tmp_path / "lesson.toml")
