"""Convergence sweep over every mutating call, not just the first of each kind (tests/test_convergence.py).

For each point N of a first `up` (or of a `down` of a stack that is up):
  kill-up    the run stops hard after its Nth mutating call; then `up`, a clean plan, `down`, nothing left
  kill-down  `down` stops hard after its Nth mutating call; then `up`, a clean plan, `down`, nothing left
  lost       the answer to the Nth mutating call of `up` is lost and botocore retries it; then a clean plan,
             `down`, nothing left

    .venv/bin/python benchmarks/convergence.py kill-up [--every 1] [--start 1] [--workers 2]

Prints one line per point (converged or the first thing that went wrong) and a summary. Runs against
moto in-process, each point a stack of its own; about 5-10 s a point.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))


def trial(kind: str, point: int) -> tuple[int, str, str]:
    """(point, the call it hit, "" when converged else what went wrong)."""
    import conftest  # noqa: F401  (fake credentials, moto settings, the sandbox additions)
    from cdpoc_testing import numbered_context
    from faults import KillAfter, Killed, LostAnswer
    from moto import mock_aws
    from test_convergence import again, assert_exactly_one_of_each, assert_nothing_left, converges_after_a_kill, down

    from cdpoc import lifecycle

    with mock_aws(), tempfile.TemporaryDirectory() as directory:
        first = numbered_context(Path(directory), f"{kind.replace('-', '')}{point}x")
        hit = ""
        try:
            if kind == "lost":
                fault = LostAnswer(first.clients, nth=point)
                lifecycle.up(first)
                if not fault.lost:
                    return point, "", "beyond the last call"
                hit = fault.lost_call
            else:
                if kind == "kill-down":
                    lifecycle.up(first)
                    first = again(first)
                kill = KillAfter(first.clients, calls=point)
                with contextlib.suppress(Killed, Exception):
                    (down if kind == "kill-down" else lifecycle.up)(first)  # type: ignore[operator]
                if not kill.killed:
                    return point, "", "beyond the last call"
                hit = kill.done[-1]
                converges_after_a_kill(first)
                return point, hit, ""
            assert_exactly_one_of_each(again(first))
            down(again(first))
            assert_nothing_left(again(first))
        except BaseException as exc:  # report, never stop the sweep
            lines = traceback.format_exception_only(type(exc), exc)
            return point, hit, " ".join(line.strip() for line in lines)[:300]
    return point, hit, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("kill-up", "kill-down", "lost"))
    parser.add_argument("--start", type=int, default=1)
    parser.add_argument("--stop", type=int, default=400, help="last point to try (the sweep ends at the last call)")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.monotonic()
    tried = converged = 0
    failures: list[str] = []
    points = range(args.start, args.stop + 1, args.every)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for point, hit, problem in pool.map(trial, [args.kind] * len(points), points):
            if problem == "beyond the last call":
                break
            tried += 1
            converged += not problem
            line = f"{args.kind} point {point:3} after {hit or '?':45} {problem or 'converged'}"
            print(line, flush=True)
            if problem:
                failures.append(line)
    print(f"\n{args.kind}: {converged} of {tried} points converged in {time.monotonic() - started:.0f}s")
    for line in failures:
        print("  FAILED", line)
    return 0 if converged == tried else 1


if __name__ == "__main__":
    sys.exit(main())
