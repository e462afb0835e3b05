"""Command line of the scan simulator: ``python -m exitscan.simulate --out DIR ...``.

Writes a folder of simulated scans and its ``truth.json``, or (``--demo``) the committed demo
set. Prints one summary line; errors go to stderr with exit code 2 (usage) or 3 (bad input).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from exitscan.errors import ExitscanError
from exitscan.simulate.batch import FORMAT_CHOICES, make_batch, make_demo
from exitscan.simulate.pupil import CASES
from exitscan.simulate.scan import PROFILES
from exitscan.template import available_templates


def _case_mix(text: str) -> dict[str, float]:
    """``clear=0.8,none=0.1,multiple=0.05,corrected=0.05`` -> a dict (missing cases: 0)."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in CASES:
            raise argparse.ArgumentTypeError(f"unknown case {name!r}; the cases are {', '.join(CASES)}")
        try:
            mix[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: give case=weight, e.g. none=0.1") from None
    if sum(mix.values()) <= 0:
        raise argparse.ArgumentTypeError("the case weights add up to nothing")
    return mix


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m exitscan.simulate",
        description="Make simulated scans of filled-in exit passes, with ground truth (truth.json).",
    )
    p.add_argument("--out", type=Path, required=True, help="folder to write the scans and truth.json into")
    p.add_argument("--passes", type=int, default=40, help="how many passes to scan (rounded up to whole sheets)")
    p.add_argument("--profile", default="copier", choices=[*PROFILES, "mixed"], help="scanning device")
    p.add_argument("--template", default="classic", choices=[*available_templates(), "mixed"])
    p.add_argument("--per-page", type=int, default=4, choices=[1, 2, 4])
    p.add_argument("--paper", default="a4", choices=["a4", "letter"])
    p.add_argument("--format", dest="formats", default="pdf", choices=[*FORMAT_CHOICES, "mixed"])
    p.add_argument("--duplex", action="store_true", help="a blank back scanned after every sheet")
    p.add_argument("--orientation", type=int, choices=[0, 90, 180, 270], help="how every stack goes in (default: varies)")
    p.add_argument("--roster", type=Path, help="class list CSV (id,name); default: a made-up class of 28")
    p.add_argument("--case-mix", type=_case_mix, help="e.g. clear=0.8,none=0.1,multiple=0.05,corrected=0.05")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="worker processes (output is the same for any number)")
    p.add_argument("--demo", action="store_true", help="write the demo set (sample_scans/) instead; uses --seed 2026 unless given")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    start = time.perf_counter()
    try:
        if args.demo:
            seed = args.seed if "--seed" in (argv if argv is not None else sys.argv) else 2026
            data = make_demo(args.out, seed=seed, jobs=args.jobs)
        else:
            data = make_batch(
                args.out,
                args.passes,
                template=args.template,
                per_page=args.per_page,
                paper=args.paper,
                profile=args.profile,
                formats=args.formats,
                duplex=args.duplex,
                seed=args.seed,
                case_mix=args.case_mix,
                roster=args.roster,
                jobs=args.jobs,
                orientation=args.orientation,
            )
    except ExitscanError as e:  # a bad roster, or a lesson the generator refuses
        print(f"exitscan.simulate: {e.message}", file=sys.stderr)
        return int(e.exit_code)
    except (ValueError, OSError) as e:
        print(f"exitscan.simulate: {e}", file=sys.stderr)
        return 3
    s = data["summary"]
    took = time.perf_counter() - start
    print(
        f"{args.out}: {s['pages']} pages ({s['blank_pages']} blank) in {s['files']} files, "
        f"{s['passes']} passes; truth in {args.out / 'truth.json'} ({took:.1f} s, {s['pages'] / took:.1f} pages/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
