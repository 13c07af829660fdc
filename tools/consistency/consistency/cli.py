"""The command line: `python -m consistency`, also run by `make check-consistency`.

Reads the three database URLs from the services' own variables
(TRACKING_DATABASE_URL, REPORTING_DATABASE_URL, INVOICING_DATABASE_URL) or
from --tracking-url / --reporting-url / --invoicing-url. Only reads: every
database is opened in a read-only REPEATABLE READ transaction.

Exit status: 0 consistent, 1 differences found, 2 usage or connection error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TextIO

from .check import Result, check_and_settle
from .compare import DESCRIPTIONS
from .sources import DATABASES, SourceError

EXIT_CONSISTENT, EXIT_DIFFERENCES, EXIT_ERROR = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m consistency",
        description="Compare tracking's entries with reporting's read model and invoicing's line items.",
    )
    for name in DATABASES:
        p.add_argument(
            f"--{name}-url",
            metavar="URL",
            help=f"{name}'s database (default: ${name.upper()}_DATABASE_URL)",
        )
    p.add_argument(
        "--settle-seconds",
        type=float,
        default=0.0,
        metavar="S",
        help="re-check differences a write in flight can explain (events not yet applied, "
        "generations or releases pending) for up to S seconds before reporting them (default 0)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--max-shown", type=int, default=20, metavar="N", help="differences listed per kind in the summary"
    )
    return p


def database_urls(args: argparse.Namespace) -> dict[str, str]:
    urls = {}
    missing = []
    for name in DATABASES:
        url = getattr(args, f"{name}_url") or os.environ.get(f"{name.upper()}_DATABASE_URL", "")
        if url:
            urls[name] = url
        else:
            missing.append(f"{name.upper()}_DATABASE_URL (or --{name}-url)")
    if missing:
        raise SourceError("missing database URL: " + ", ".join(missing))
    return urls


def print_summary(result: Result, max_shown: int, out: TextIO) -> None:
    counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in result.counts.items())
    print(f"compared: {counts}", file=out)
    backlog = result.backlog
    print(
        f"tracking outbox: {backlog.events} events not yet published"
        + (f" (oldest {backlog.oldest_age_seconds:.1f} s)" if backlog.events else ""),
        file=out,
    )
    if result.consistent:
        print(f"consistent: no differences (settled for {result.settled_seconds:.1f} s)", file=out)
        return
    print(f"{len(result.differences)} differences:", file=out)
    for kind, diffs in result.by_kind().items():
        print(f"  {kind.value} ({len(diffs)}): {DESCRIPTIONS[kind]}", file=out)
        for d in diffs[:max_shown]:
            ids = [f"entry {d.entry_id}"] if d.entry_id else []
            ids += [f"invoice {d.invoice_id}"] if d.invoice_id else []
            shown = list(d.entry_ids[:5]) if d.entry_ids else []
            more = f" +{len(d.entry_ids) - 5} more" if len(d.entry_ids) > 5 else ""
            entries = f" entries {', '.join(map(str, shown))}{more}" if shown else ""
            unpublished = " [event not yet published]" if d.entry_id in result.unpublished else ""
            print(f"    {' '.join(ids)}: {d.detail}{entries}{unpublished}", file=out)
        if len(diffs) > max_shown:
            print(f"    ... {len(diffs) - max_shown} more (--json lists all)", file=out)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.settle_seconds < 0:
        print("--settle-seconds: must be at least 0", file=sys.stderr)
        return EXIT_ERROR
    try:
        result = check_and_settle(database_urls(args), args.settle_seconds)
    except SourceError as exc:
        print(f"consistency check failed: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        json.dump(result.as_json(), sys.stdout, indent=2)
        print()
    else:
        print_summary(result, args.max_shown, sys.stdout)
    return EXIT_CONSISTENT if result.consistent else EXIT_DIFFERENCES
