"""Render functions and the console owner, with recording consoles (no AWS)."""

from __future__ import annotations

from rich.console import Console

from cdpoc.aws.clients import ClientFactory, is_mutating
from cdpoc.errors import ConfigError
from cdpoc.executor import Event, State
from cdpoc.model import Action, Change, Observed, Plan, Resource, Step
from cdpoc.render import ProgressRow, plan_lines, plan_summary, plan_table, progress_line, progress_table
from cdpoc.ui import Ui


def sample_plan() -> Plan:
    vpc = Resource("vpc", "vpc", "s-vpc")
    return Plan(
        (
            Step(vpc, Action.NONE, Observed("vpc", "vpc", "vpc-1")),
            Step(Resource("subnet.a", "subnet", "s-a"), Action.CREATE),
            Step(
                Resource("rt", "route_table", "s-rt"),
                Action.UPDATE,
                Observed("rt", "route_table", "rtb-1"),
                (Change("route 0.0.0.0/0 -> nat-1 (now missing)"),),
            ),
            Step(
                Resource("subnet.b", "subnet", "s-b"),
                Action.CONFLICT,
                Observed("subnet.b", "subnet", "subnet-2"),
                (Change("CIDR is x, config wants y", in_place=False),),
            ),
        )
    )


def render(renderable: object, width: int = 160) -> str:
    console = Console(record=True, width=width, force_terminal=False)
    console.print(renderable)
    return console.export_text()


def test_plan_table_shows_each_action_and_its_reason() -> None:
    text = render(plan_table(sample_plan(), lambda found: found.id))
    assert "exists" in text and "vpc-1" in text
    assert "create" in text and "s-a" in text
    assert "update" in text and "route 0.0.0.0/0 -> nat-1 (now missing)" in text
    assert "differs" in text and "CIDR is x, config wants y" in text


def test_plan_lines_and_summary() -> None:
    lines = plan_lines(sample_plan(), lambda found: found.id)
    assert lines[0].split() == ["exists", "vpc", "s-vpc", "vpc-1"]
    assert lines[1].split() == ["create", "subnet.a", "s-a"]
    assert (
        plan_summary(sample_plan())
        == "Plan: 1 to create, 1 to update, 1 unchanged, 1 differ and cannot be changed in place."
    )
    assert plan_summary(Plan((sample_plan().steps[0],))) == "No changes: all 1 resources exist as configured."


def test_progress_rows_show_state_and_elapsed_time() -> None:
    rows = [
        ProgressRow("vpc", "VPC", State.DONE, "created vpc-1", started=0.0, elapsed=1.25),
        ProgressRow("nat.a", "NAT gateway", State.RUNNING, "", started=10.0),
        ProgressRow("rt", "route table", State.WAITING),
    ]
    text = render(progress_table(rows, now=13.5, title="up: s"))
    assert "up: s" in text
    assert "1.2s" in text and "created vpc-1" in text  # finished: its own elapsed time
    assert "3.5s" in text and "running" in text  # in flight: time so far
    assert progress_line(rows[0], now=99.0) == "done      vpc                       1.2s  created vpc-1"


def test_aws_strings_are_not_taken_as_markup() -> None:
    row = ProgressRow("x", "thing", State.FAILED, "AccessDenied: [bold]not allowed[/bold]", elapsed=0.1)
    assert "[bold]not allowed[/bold]" in render(progress_table([row], 0.0, "t"))
    console = Console(record=True, width=120)
    Ui(console=console).say("name [red]x[/red]")
    assert "name [red]x[/red]" in console.export_text()


def test_plain_progress_prints_one_line_per_change_off_a_terminal() -> None:
    console = Console(record=True, width=120, force_terminal=False)
    ui = Ui(console=console)
    with ui.progress("up: s", {"vpc": "VPC"}) as progress:
        progress(Event("vpc", State.WAITING))
        progress(Event("vpc", State.RUNNING))
        progress(Event("vpc", State.DONE, "created vpc-1", 0.5))
    lines = console.export_text().splitlines()
    assert lines[0] == "up: s"
    assert [line.split()[0] for line in lines[1:]] == ["running", "done"]  # waiting is not printed


def test_live_progress_on_a_terminal_draws_a_table() -> None:
    console = Console(record=True, width=120, force_terminal=True)
    ui = Ui(console=console)
    assert ui.interactive
    with ui.progress("up: s", {"vpc": "VPC"}) as progress:
        progress(Event("vpc", State.RUNNING))
        progress(Event("vpc", State.DONE, "created vpc-1", 0.5))
    text = console.export_text()
    assert "resource" in text and "created vpc-1" in text and "VPC" in text


def test_errors_go_to_stderr_with_their_hint() -> None:
    err = Console(record=True, width=120)
    Ui(console=Console(record=True), err=err).error(ConfigError("bad thing", "do this"))
    assert err.export_text().splitlines() == ["error: bad thing", "hint: do this"]


def test_every_client_uses_standard_retries_and_counts_calls() -> None:
    factory = ClientFactory("us-east-1", endpoint_url="http://127.0.0.1:9")
    client = factory.client("ec2")
    retries = client.meta.config.retries
    assert retries["mode"] == "standard"
    assert retries.get("total_max_attempts", retries.get("max_attempts")) >= 10
    assert ClientFactory("us-east-1").client("s3").meta.config.retries == retries  # the constant is not consumed
    assert factory.client("ec2") is client  # built once per service
    assert is_mutating("CreateVpc") and is_mutating("ModifyVpcAttribute")
    assert not is_mutating("DescribeVpcs") and not is_mutating("GetParameter") and not is_mutating("ListRoles")


def test_stack_outputs_name_every_endpoint_and_the_ssh_command() -> None:
    from cdpoc.render import stack_outputs

    results = {
        "alb": Observed("alb", "load_balancer", "arn", {"dns_name": "s-alb-1.elb.amazonaws.com"}),
        "bucket.web": Observed(
            "bucket.web", "bucket", "b", {"website_url": "http://b.s3-website-us-east-1.amazonaws.com"}
        ),
        "instance.bastion": Observed("instance.bastion", "instance", "i-1", {"public_ip": "203.0.113.9"}),
        "instance.mongodb": Observed("instance.mongodb", "instance", "i-2", {"private_ip": "10.0.20.5"}),
    }
    assert dict(stack_outputs(results, "ops")) == {
        "Application (ALB)": "http://s-alb-1.elb.amazonaws.com/",
        "Website": "http://b.s3-website-us-east-1.amazonaws.com",
        "Bastion": "203.0.113.9",
        "MongoDB (private)": "10.0.20.5:27017",
        "SSH to MongoDB": "ssh -i ~/.ssh/ops.pem -J ec2-user@203.0.113.9 ec2-user@10.0.20.5",
    }
    assert stack_outputs({}) == []


def test_the_live_progress_fits_a_short_terminal_and_keeps_failures_and_running_steps_in_view() -> None:
    rows = [
        ProgressRow(f"failed.{i}", "thing", State.FAILED, "AccessDenied: " + "x" * 200, elapsed=1.0) for i in range(3)
    ]
    rows += [ProgressRow(f"done.{i}", "thing", State.DONE, f"created thing-{i}", elapsed=1.0) for i in range(40)]
    rows += [ProgressRow(f"running.{i}", "thing", State.RUNNING, "", started=5.0) for i in range(2)]
    rows += [ProgressRow(f"waiting.{i}", "thing", State.WAITING) for i in range(5)]
    console = Console(record=True, width=80, height=24, force_terminal=False)
    console.print(progress_table(rows, now=10.0, title="up: s", height=24, seconds=83.4))
    lines = console.export_text().splitlines()
    assert len(lines) <= 24
    text = "\n".join(lines)
    assert "up: s · 3 failed, 40 done, 2 running, 5 waiting · 83s" in text
    assert all(f"failed.{i}" in text for i in range(3)) and all(f"running.{i}" in text for i in range(2))
    assert "done.39" in text and "done.0 " not in text  # the latest finished fill the room left
    hidden = 50 - sum(1 for line in lines if line.startswith("│") and "thing" in line)
    assert f"… and {hidden} more finished or waiting" in text
    # where everything fits, nothing is left out
    everything = render(progress_table(rows[:10], now=10.0, title="up: s", height=40, seconds=1.0))
    assert "more finished" not in everything and "done.6" in everything
