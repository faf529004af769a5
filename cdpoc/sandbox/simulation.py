"""The sandbox's CI/CD clock and knobs: how long each simulated step takes, and a failure to inject.

Nothing here exists on AWS. The sandbox computes pipeline executions and CodeDeploy deployments lazily
from the time elapsed since they started (no background threads), so every read at one instant agrees:
GetDeployment, BatchGetDeploymentTargets, GetPipelineState, ListActionExecutions. The AWS responses carry
no marker saying they were simulated (a field outside the botocore model would be a lie about AWS's shape);
this module and cdpoc/sandbox/cicd.py are where that is said.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# ---- timing profiles
#
# How long AWS takes for what the sandbox simulates, in seconds (the "realistic" profile); a profile
# multiplies them all by its factor. Where each number comes from:
#   nat_gateway      pending -> available: "a few minutes" (AWS docs); typically 1-2 min in practice
#   nat_gateway_delete  deleting -> deleted (the Elastic IP and interface released): about a minute
#   load_balancer    provisioning -> active: typically 2-3 min for an ALB
#   instance_boot    launch -> the OS and cloud-init running: ~30 s for Amazon Linux 2023 on t3
#   stub_server      cloud-init -> cdpoc's stub answering on port 80 (user data step 1, no downloads)
#   mongodb          cloud-init -> mongod installed, seeded and accepting the app user (user data:
#                    dnf from MongoDB's repository, seed, restart): a few minutes
#   lifecycle_event  one CodeDeploy lifecycle event of the bundle's hooks (they take seconds to a minute;
#                    the whole in-place lifecycle of one instance takes about two minutes)
# Target health uses the target group's own HealthCheckIntervalSeconds, scaled by the same factor.
AWS_SECONDS = {
    "nat_gateway": 90.0,
    "nat_gateway_delete": 60.0,
    "load_balancer": 150.0,
    "instance_boot": 30.0,
    "stub_server": 15.0,
    "mongodb": 180.0,
    "lifecycle_event": 15.0,
}
FAST_FACTOR = 0.004
PROFILES = {"realistic": 1.0, "fast": FAST_FACTOR}


@dataclass(frozen=True)
class Timing:
    """A timing profile: AWS's durations (AWS_SECONDS) times `factor`."""

    name: str
    factor: float

    @classmethod
    def parse(cls, text: str) -> Timing:
        """`fast`, `realistic`, or a factor such as `0.1` (a tenth of AWS's durations)."""
        value = text.strip().lower()
        if value in PROFILES:
            return cls(value, PROFILES[value])
        try:
            factor = float(value)
        except ValueError:
            raise ValueError(f"unknown timing {text!r}: fast, realistic, or a factor such as 0.1") from None
        if not 0 <= factor <= 100 or factor != factor:
            raise ValueError(f"timing factor {text!r} out of range: 0 to 100")
        return cls(value, factor)

    def seconds(self, what: str) -> float:
        return AWS_SECONDS[what] * self.factor

    def scaled(self, aws_seconds: float) -> float:
        return aws_seconds * self.factor


FAST = Timing("fast", FAST_FACTOR)
REALISTIC = Timing("realistic", 1.0)
DEFAULT_STEP_SECONDS = 0.5

# In-place deployment lifecycle, in the order CodeDeploy runs it on one instance. With native traffic
# control (deploymentOption WITH_TRAFFIC_CONTROL) the block events come first and the allow events last.
BLOCK_TRAFFIC_EVENTS = ("BeforeBlockTraffic", "BlockTraffic", "AfterBlockTraffic")
IN_PLACE_EVENTS = (
    "ApplicationStop",
    "DownloadBundle",
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
)
ALLOW_TRAFFIC_EVENTS = ("BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic")
ALL_EVENTS = BLOCK_TRAFFIC_EVENTS + IN_PLACE_EVENTS + ALLOW_TRAFFIC_EVENTS
# Events CodeDeploy (or its agent) performs itself; the others run the appspec's hook scripts.
SERVICE_EVENTS = frozenset({"DownloadBundle", "Install", "BlockTraffic", "AllowTraffic"})

DEFAULT_FAILURE_MESSAGE = "exit status 1"

Advancer = Callable[[str, str, float], None]


def lifecycle_events(with_traffic_control: bool) -> tuple[str, ...]:
    if with_traffic_control:
        return ALL_EVENTS
    return IN_PLACE_EVENTS


@dataclass(frozen=True)
class FailureRequest:
    """Make the next deployment fail at `hook` on its first instance; `message` is what the script printed.

    `requested_at` matters because deployments are created lazily: a pipeline's deploy action that (in
    simulated time) began before the request must not take it, even when the sandbox only notices later.
    """

    hook: str
    message: str = DEFAULT_FAILURE_MESSAGE
    requested_at: float = 0.0


class Simulation:
    """Process-wide settings of the sandbox's CI/CD simulation; reset() restores the defaults."""

    def __init__(self) -> None:
        # moto is not thread-safe and the sandbox server is threaded: every patched operation holds this.
        self.lock = threading.RLock()
        self._advancers: list[Advancer] = []
        self.step_seconds = DEFAULT_STEP_SECONDS
        self.timing = FAST
        self.clock: Callable[[], float] = time.time
        self._failures: list[FailureRequest] = []

    def reset(self) -> None:
        with self.lock:
            self.step_seconds = DEFAULT_STEP_SECONDS
            self.timing = FAST
            self.clock = time.time
            self._failures.clear()

    def use_timing(self, timing: Timing) -> None:
        """Take a timing profile: its durations, and its lifecycle event length as the CI/CD step."""
        with self.lock:
            self.timing = timing
            self.step_seconds = timing.seconds("lifecycle_event")

    def seconds(self, what: str) -> float:
        """How long `what` (a key of AWS_SECONDS) takes under the current profile."""
        return self.timing.seconds(what)

    def forget_failures(self) -> None:
        with self.lock:
            self._failures.clear()

    def now(self) -> float:
        return self.clock()

    def fail_next_deployment(self, hook: str, message: str = DEFAULT_FAILURE_MESSAGE) -> FailureRequest:
        """Queue a failure: the next deployment whose lifecycle has `hook` fails there on its first instance."""
        if hook not in ALL_EVENTS:
            raise ValueError(f"unknown lifecycle event {hook!r}; one of: {', '.join(ALL_EVENTS)}")
        with self.lock:
            request = FailureRequest(hook, message or DEFAULT_FAILURE_MESSAGE, self.now())
            self._failures.append(request)
        return request

    def pending_failures(self) -> list[FailureRequest]:
        with self.lock:
            return list(self._failures)

    def take_failure(self, events: tuple[str, ...], created_at: float) -> FailureRequest | None:
        """The oldest failure queued by `created_at` that this lifecycle can hit; it is consumed."""
        with self.lock:
            for request in self._failures:
                if request.hook in events and request.requested_at <= created_at:
                    self._failures.remove(request)
                    return request
            return None

    def add_advancer(self, advancer: Advancer) -> None:
        """Register a step of advance(); they run in registration order (pipelines before deployments)."""
        if advancer not in self._advancers:
            self._advancers.append(advancer)

    def advance(self, account: str, region: str) -> float:
        """Bring the simulated state of one account and region up to now; returns that instant."""
        with self.lock:
            now = self.now()
            for advancer in self._advancers:
                advancer(account, region, now)
            return now


SIMULATION = Simulation()
