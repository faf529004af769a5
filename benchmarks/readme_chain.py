"""The README chain against a sandbox with AWS-like timing: how long each command waits, and that it passes.

    .venv/bin/python benchmarks/readme_chain.py [--timing realistic|fast|<factor>] [--name bench]

Runs `cdpoc up && cdpoc plan && cdpoc push-app --wait && cdpoc status && cdpoc down --yes` as separate
processes (the real CLI, as a user would) against an in-process sandbox on a free port, with HTTP_PROXY set
so that `status` reaches the load balancer's DNS name through the sandbox. Prints each command's exit code
and duration; exits 1 at the first command that fails. With `realistic` (the default) it takes about as long
as on AWS: minutes for the NAT gateway, the load balancer, the boots and the health checks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAIN = (("up",), ("plan",), ("push-app", "--wait"), ("status",), ("down", "--yes"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timing", default="realistic")
    parser.add_argument("--name", default="bench")
    args = parser.parse_args()

    from cdpoc.sandbox.server import FAKE_CREDENTIALS, Sandbox, proxy_settings, use_timing

    timing = use_timing(args.timing)
    with Sandbox() as sandbox:
        env = {
            **os.environ,
            **FAKE_CREDENTIALS,
            **proxy_settings(sandbox.endpoint),
            "AWS_ENDPOINT_URL": sandbox.endpoint,
            "AWS_REGION": "us-east-1",
        }
        env.pop("AWS_PROFILE", None)
        print(f"sandbox {sandbox.endpoint}, timing {timing.name} (x{timing.factor:g})", flush=True)
        total = 0.0
        for command in CHAIN:
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "cdpoc", "--name", args.name, *command],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            seconds = time.monotonic() - started
            total += seconds
            print(f"{' '.join(command):<16} exit {done.returncode}  {seconds:7.1f}s", flush=True)
            if done.returncode != 0:
                print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
                return 1
        print(f"chain passed in {total:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
