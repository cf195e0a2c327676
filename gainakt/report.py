"""Sweep report: ``python -m gainakt.report <multirun folder> [--out DIR]``.

Writes report.md, report.csv and one plot per swept parameter (see :mod:`gainakt.tools.sweep_report`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gainakt.errors import GainAKTError
from gainakt.run.lifecycle import EXIT_CODES
from gainakt.tools.sweep_report import render_markdown, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gainakt.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="multirun folder (outputs/multirun/<date>/<time>_<id>)")
    parser.add_argument("--out", default=None, help="where to write the report (default: the multirun folder)")
    args = parser.parse_args(argv)
    try:
        report = write_report(args.sweep_dir, args.out)
    except GainAKTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CODES["failed"]
    out = Path(args.out or args.sweep_dir)
    print(render_markdown(report, Path(args.sweep_dir), []).split("\n## Failed")[0].rstrip())
    bad = [job for job in report.jobs if not job.ok]
    if bad:
        print(f"\n{len(bad)} job(s) failed or missing: " + ", ".join(f"{j.name} ({j.problem})" for j in bad))
    print(f"\nWrote {out / 'report.md'}, {out / 'report.csv'} and {len(report.params)} plot(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
