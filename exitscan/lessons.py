"""A local record of the lessons this computer printed passes for.

A pass's QR code carries its identity in short form (a 20-byte lesson title, a name cut to
fit). When the passes were printed on this computer, `exitscan generate` also recorded the
lesson in full here, keyed by the lesson key, so `exitscan process` can show the whole
title, the pupils' full names and the tick-box options' text. Scans read on another
computer still work from the code alone. Nothing here leaves the machine.

Location: ``$EXITSCAN_DATA`` if set, else ``$XDG_DATA_HOME/exitscan`` (``~/.local/share``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class LessonRecord:
    key: str
    template: str
    class_name: str
    lesson: str
    date: str
    intention: str
    criteria: tuple[str, ...]
    next_step_options: tuple[str, ...]
    pupils: dict[str, str]  # id -> full name


def data_dir() -> Path:
    if os.environ.get("EXITSCAN_DATA"):
        return Path(os.environ["EXITSCAN_DATA"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "exitscan"


def _path(key: str) -> Path:
    safe = "".join(c for c in key if c.isalnum())[:16] or "unknown"
    return data_dir() / "lessons" / f"{safe}.json"


def save(record: LessonRecord) -> Path | None:
    """Record a lesson; returns the file, or None if it could not be written (not fatal)."""
    p = _path(record.key)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".part")
        tmp.write_text(json.dumps(asdict(record), ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, p)
        return p
    except OSError:
        return None


def find(key: str) -> LessonRecord | None:
    """The recorded lesson with this key, or None (unknown here, or unreadable)."""
    p = _path(key)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        return LessonRecord(
            key=d["key"],
            template=d["template"],
            class_name=d["class_name"],
            lesson=d["lesson"],
            date=d["date"],
            intention=d.get("intention", ""),
            criteria=tuple(d.get("criteria", ())),
            next_step_options=tuple(d.get("next_step_options", ())),
            pupils={str(k): str(v) for k, v in d.get("pupils", {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
