"""Class rosters (CSV) and lesson files (TOML): checked at the door, before any PDF is drawn.

A roster is UTF-8 CSV with a header row holding ``id`` and ``name`` (other columns are kept).
Spreadsheet programs write it in many ways, so a UTF-8 byte-order mark and ``;`` or tab
delimiters are accepted. Every problem names the file and the line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from exitscan.errors import InputError


@dataclass(frozen=True)
class Pupil:
    id: str
    name: str
    extra: dict[str, str] = field(default_factory=dict)


def load_roster(path: Path) -> list[Pupil]:
    """Read a roster CSV. Raises `InputError` naming the file and line of any problem."""
    shown = path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: roster file not found") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the roster ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
        bad_at = raw.find(b"\x00")  # UTF-16 without a byte-order mark "decodes", NULs and all
    except UnicodeDecodeError as e:
        text, bad_at = "", e.start
    if bad_at >= 0:
        line = raw[:bad_at].count(b"\n") + 1
        raise InputError(
            f"{shown} line {line}: not UTF-8 text. Save the roster as 'CSV UTF-8' "
            "(in Excel: File > Save As > CSV UTF-8) and try again."
        ) from None
    if not text.strip():
        raise InputError(f"{shown}: the roster is empty; it needs a header row 'id,name' and a row per pupil")
    first = text.splitlines()[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    # strict: an unbalanced double quote is an error, not a name that swallows the next rows.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[list[str]] = []
    starts: list[int] = []  # the line each row starts on (a quoted value may span lines)
    last = 0
    try:
        for row in reader:
            rows.append(row)
            starts.append(last + 1)
            last = reader.line_num
    except csv.Error as e:
        raise InputError(
            f"{shown} line {last + 1}: cannot read this row ({e}); is a double quote missing or extra?"
        ) from None
    header = [h.strip() for h in rows[0]]
    lowered = [h.lower() for h in header]
    missing = [c for c in ("id", "name") if c not in lowered]
    if missing:
        raise InputError(
            f"{shown} line 1: the header has no {' and no '.join(repr(m) for m in missing)} column "
            f"(found: {', '.join(repr(h) for h in header)}); the first row must name the columns, "
            "e.g. 'id,name'"
        )
    dupes = {h for h in lowered if lowered.count(h) > 1 and h}
    if dupes:
        raise InputError(f"{shown} line 1: column {min(dupes)!r} appears twice in the header")
    i_id, i_name = lowered.index("id"), lowered.index("name")
    pupils: list[Pupil] = []
    seen: dict[str, int] = {}
    for n, row in zip(starts[1:], rows[1:]):
        if not any(c.strip() for c in row):
            continue  # blank lines (often at the end) are harmless
        if len(row) != len(header):
            more = "more" if len(row) > len(header) else "fewer"
            raise InputError(
                f"{shown} line {n}: {len(row)} values but the header has {len(header)} columns "
                f"({more} than expected; a name with a comma must be in double quotes)"
            )
        if any(c in row[i_id] + row[i_name] for c in "\r\n"):
            raise InputError(
                f"{shown} line {n}: the pupil's id or name runs over several lines; "
                "is a closing double quote missing?"
            )
        pid, name = row[i_id].strip(), " ".join(row[i_name].split())
        if not pid:
            raise InputError(f"{shown} line {n}: the pupil has no id")
        if not name:
            raise InputError(f"{shown} line {n}: pupil {pid!r} has no name")
        if "|" in pid:
            raise InputError(f"{shown} line {n}: the id {pid!r} contains '|', which ids may not")
        if pid in seen:
            raise InputError(
                f"{shown} line {n}: the id {pid!r} is already used on line {seen[pid]}; "
                "every pupil needs their own id"
            )
        seen[pid] = n
        extra = {h: row[j] for j, h in enumerate(header) if j not in (i_id, i_name)}
        pupils.append(Pupil(pid, name, extra))
    if not pupils:
        raise InputError(f"{shown}: the roster has a header but no pupils")
    return pupils


@dataclass(frozen=True)
class Lesson:
    """What a teacher types about a lesson; reusable as a lesson file."""

    class_name: str = ""
    lesson: str = "Today's lesson"
    date: str = ""  # YYYY-MM-DD
    intention: str = ""
    criteria: tuple[str, ...] = ()
    next_step_options: tuple[str, ...] = ()
    template: str = ""


LESSON_KEYS = {
    "class": "class_name",
    "lesson": "lesson",
    "date": "date",
    "intention": "intention",
    "learning_intention": "intention",
    "criteria": "criteria",
    "success_criteria": "criteria",
    "next_step_options": "next_step_options",
    "template": "template",
}


def check_date(value: str, where: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise InputError(f"{where}: {value!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-11-23") from None


def load_lesson_file(path: Path) -> dict[str, object]:
    """Read a lesson TOML into `Lesson` field values (only the keys it sets)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: lesson file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path.name}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path.name}: not a valid lesson file ({e})") from None
    out: dict[str, object] = {}
    for k, v in data.items():
        if k not in LESSON_KEYS:
            raise InputError(
                f"{path.name}: unknown key {k!r}; a lesson file may set "
                + ", ".join(sorted(set(LESSON_KEYS) - {"learning_intention", "success_criteria"}))
            )
        name = LESSON_KEYS[k]
        if name in ("criteria", "next_step_options"):
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise InputError(f"{path.name}: {k} must be a list of texts")
            out[name] = tuple(" ".join(x.split()) for x in v if x.strip())
        elif name == "date":
            out[name] = check_date(str(v), path.name)
        else:
            if not isinstance(v, str):
                raise InputError(f"{path.name}: {k} must be text")
            out[name] = " ".join(v.split())
    return out
