"""A no-op `plan` after `up`, with AWS-like latency on every call: its duration and its number of calls.

    .venv/bin/python benchmarks/noop_plan.py [--latency-ms 60] [--runs 3] [--name noopbench]

Builds a stack in an in-process sandbox (fast timing), then runs the read-only plan `--runs` times with
`--latency-ms` added before every request botocore sends (a round trip to an AWS region is tens of ms; the
local sandbox answers in about one). Prints each run's seconds and calls, then tears the stack down.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--name", default="noopbench")
    args = parser.parse_args()

    from cdpoc.aws.clients import ClientFactory
    from cdpoc.context import Context
    from cdpoc.lifecycle import down, up
    from cdpoc.options import Options
    from cdpoc.planner import make_plan
    from cdpoc.sandbox.server import FAKE_CREDENTIALS, Sandbox
    from cdpoc.ui import Ui

    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    with Sandbox() as sandbox:
        options = Options(name=args.name, endpoint_url=sandbox.endpoint)
        quiet = Ui()
        quiet.configure(quiet=True)
        up(Context.build(options, quiet))
        durations, calls = [], []
        delay = args.latency_ms / 1000

        def slow(**_: Any) -> None:
            time.sleep(delay)

        for _ in range(args.runs):
            ctx = Context.build(options, quiet)
            factory: ClientFactory = ctx.clients
            factory.session.events.register("before-send", slow)
            graph = ctx.graph()
            before = len(factory.calls)
            started = time.monotonic()
            plan = make_plan(ctx.run, graph, ctx.handlers)
            durations.append(time.monotonic() - started)
            calls.append(len(factory.calls) - before)
            assert not plan.has_work, "the stack should need nothing after up"
            print(f"no-op plan: {durations[-1]:.2f} s, {calls[-1]} calls")
        print(f"median {statistics.median(durations):.2f} s over {args.runs} runs, {calls[0]} calls each")
        down(Context.build(options, quiet), yes=True, confirm=lambda _: True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
