"""The alerts topic (with its email subscription) and the log group against moto; then the whole area set.

The last test runs IAM, storage (without param.mongodb.host, whose instance is the compute area's) and
notify together: up, a clean re-plan, down, and a leftover scan that comes back empty.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from cdpoc.apply import apply_plan
from cdpoc.aws.account import account_id, resolve_zones, tagged_arns
from cdpoc.context import Context
from cdpoc.graph import Graph
from cdpoc.model import Action, Observed
from cdpoc.planner import make_plan
from cdpoc.stack import iam, notify, storage
from cdpoc.stack.names import StackNames
from cdpoc.sweeper import find_everything, leftovers, sweep

EMAIL = "ops@example.com"


def names_of(ctx: Context) -> StackNames:
    zones = resolve_zones(ctx.run, ctx.settings.availability_zones)
    ctx.run.zones = zones
    return StackNames(ctx.settings, zones, account_id(ctx.run))


def notify_graph(ctx: Context) -> Graph:
    return Graph.of(notify.declare(names_of(ctx)))


def up(ctx: Context, graph: Graph) -> dict[str, Observed]:
    return apply_plan(ctx.run, make_plan(ctx.run, graph, ctx.handlers), ctx.handlers)


def record(ctx: Context, service: str, operation: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    ctx.run.client(service).meta.events.register(
        f"provide-client-params.{service}.{operation}", lambda params, **_: calls.append(dict(params))
    )
    return calls


def sns() -> Any:
    return boto3.client("sns", region_name="us-east-1")


def logs() -> Any:
    return boto3.client("logs", region_name="us-east-1")


def topic_arn(ctx: Context) -> str:
    return f"arn:aws:sns:us-east-1:{account_id(ctx.run)}:t1-alerts"


def email_subscriptions(arn: str) -> list[str]:
    return [s["Endpoint"] for s in sns().list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]]


@pytest.fixture
def ctx(aws: None, make_context: Callable[..., Context]) -> Context:
    return make_context(operator={"email": EMAIL}, logs={"retention_days": 30})


def test_up_creates_the_topic_with_its_subscription_and_the_log_group(ctx: Context) -> None:
    topics = record(ctx, "sns", "CreateTopic")
    groups = record(ctx, "logs", "CreateLogGroup")
    results = up(ctx, notify_graph(ctx))
    arn = topic_arn(ctx)

    assert results["topic.alerts"].id == arn
    assert email_subscriptions(arn) == [EMAIL]
    [call] = topics
    assert {t["Key"]: t["Value"] for t in call["Tags"]}["cdpoc:component"] == "topic.alerts"

    [group] = logs().describe_log_groups(logGroupNamePrefix="/cdpoc/t1")["logGroups"]
    assert (group["logGroupName"], group["retentionInDays"]) == ("/cdpoc/t1", 30)
    [call] = groups
    assert call["tags"]["cdpoc:stack"] == "t1" and call["tags"]["cdpoc:component"] == "loggroup"
    assert results["loggroup"].id == "/cdpoc/t1"


def test_no_subscription_without_an_operator_email(aws: None, make_context: Callable[..., Context]) -> None:
    ctx = make_context()
    subscribes = record(ctx, "sns", "Subscribe")

    up(ctx, notify_graph(ctx))

    assert subscribes == []
    assert email_subscriptions(topic_arn(ctx)) == []


def test_second_up_makes_no_mutating_call_and_plan_is_clean(ctx: Context) -> None:
    graph = notify_graph(ctx)
    up(ctx, graph)
    before = len(ctx.clients.mutating_calls())

    plan = make_plan(ctx.run, graph, ctx.handlers)

    assert [(s.resource.key, s.changes) for s in plan.steps if s.action is not Action.NONE] == []
    apply_plan(ctx.run, plan, ctx.handlers)
    assert ctx.clients.mutating_calls()[before:] == []


def test_a_pending_confirmation_counts_as_subscribed(ctx: Context) -> None:
    graph = notify_graph(ctx)
    up(ctx, graph)
    arn = topic_arn(ctx)

    def pending(**_: Any) -> tuple[Any, dict[str, Any]]:
        subscription = {"SubscriptionArn": "PendingConfirmation", "Protocol": "email", "Endpoint": EMAIL}
        return SimpleNamespace(status_code=200, headers={}), {
            "Subscriptions": [{**subscription, "Owner": "123456789012", "TopicArn": arn}],
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    ctx.run.client("sns").meta.events.register("before-call.sns.ListSubscriptionsByTopic", pending)

    plan = make_plan(ctx.run, graph, ctx.handlers)

    step = {s.resource.key: s for s in plan.steps}["topic.alerts"]
    assert step.action is Action.NONE
    assert step.found is not None
    assert "(pending confirmation)" in ctx.handlers["sns_topic"].describe(step.found)


def test_a_changed_email_moves_the_subscription(aws: None, make_context: Callable[..., Context]) -> None:
    first = make_context(operator={"email": EMAIL})
    up(first, notify_graph(first))
    ctx = make_context(operator={"email": "oncall@example.com"})
    graph = notify_graph(ctx)

    plan = make_plan(ctx.run, graph, ctx.handlers)
    [step] = plan.by_action(Action.UPDATE)
    assert [c.text for c in step.changes] == [
        "email_subscriptions[oncall@example.com]: (none) → subscribed",
        f"email_subscriptions[{EMAIL}]: subscribed → (none)",
    ]
    apply_plan(ctx.run, plan, ctx.handlers)

    assert email_subscriptions(topic_arn(ctx)) == ["oncall@example.com"]
    assert make_plan(ctx.run, graph, ctx.handlers).has_work is False


def test_changed_retention_is_updated(aws: None, make_context: Callable[..., Context]) -> None:
    first = make_context(logs={"retention_days": 30})
    up(first, notify_graph(first))
    ctx = make_context(logs={"retention_days": 90})

    plan = make_plan(ctx.run, notify_graph(ctx), ctx.handlers)
    [step] = plan.by_action(Action.UPDATE)
    assert [(c.field, c.old, c.new, c.text) for c in step.changes] == [
        ("retention_days", 30, 90, "retention_days: 30 → 90")
    ]
    apply_plan(ctx.run, plan, ctx.handlers)

    [group] = logs().describe_log_groups(logGroupNamePrefix="/cdpoc/t1")["logGroups"]
    assert group["retentionInDays"] == 90


def test_a_same_named_topic_or_group_of_someone_else_is_a_conflict(ctx: Context) -> None:
    sns().create_topic(Name="t1-alerts", Tags=[{"Key": "cdpoc:stack", "Value": "other"}])
    logs().create_log_group(logGroupName="/cdpoc/t1")

    plan = make_plan(ctx.run, notify_graph(ctx), ctx.handlers)

    assert {s.resource.key: s.action for s in plan.steps} == {
        "topic.alerts": Action.CONFLICT,
        "loggroup": Action.CONFLICT,
    }
    texts = {s.resource.key: s.changes[0].text for s in plan.steps}
    assert "belongs to stack other" in texts["topic.alerts"]
    assert "no cdpoc:stack tag" in texts["loggroup"]


def test_down_deletes_topic_and_group_and_a_second_delete_is_fine(ctx: Context) -> None:
    graph = notify_graph(ctx)
    up(ctx, graph)

    deleted = sweep(ctx.run, graph, ctx.handlers, find_everything(ctx.run, graph, ctx.handlers))

    assert set(deleted) == {"topic.alerts", "loggroup"}
    assert sns().list_topics()["Topics"] == []
    assert logs().describe_log_groups(logGroupNamePrefix="/cdpoc/t1")["logGroups"] == []
    ctx.handlers["sns_topic"].delete(ctx.run, Observed("topic.alerts", "sns_topic", topic_arn(ctx)))
    ctx.handlers["log_group"].delete(ctx.run, Observed("loggroup", "log_group", "/cdpoc/t1"))


def test_the_areas_together_go_up_and_down_leaving_nothing(ctx: Context) -> None:
    names = names_of(ctx)
    resources = [
        *iam.declare(names),
        *(r for r in storage.declare(names) if r.key != "param.mongodb.host"),
        *notify.declare(names),
    ]
    graph = Graph.of(resources)
    up(ctx, graph)
    assert make_plan(ctx.run, graph, ctx.handlers).has_work is False
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=names.bucket("artifacts"), Key="rev.zip", Body=b"zip")

    deleted = sweep(ctx.run, graph, ctx.handlers, find_everything(ctx.run, graph, ctx.handlers))

    assert set(deleted) == set(graph.resources)
    assert leftovers(ctx.run, graph, ctx.handlers, lambda: tagged_arns(ctx.run)) == []
