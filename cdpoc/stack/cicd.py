"""CI/CD: the pipeline's source (CodeCommit repository, or one zip in the artifact bucket), the CodeDeploy
application and deployment group, the pipeline, and the EventBridge rule that starts it on a push.

The source prefers CodeCommit; where CodeCommit refuses to create a repository (accounts closed to
it) the source handler falls back to the S3 source, and the pipeline is built on whatever the source
turned out to be. The pipeline is created last because CreatePipeline starts a run at once.
"""

from __future__ import annotations

from cdpoc.model import Resource
from cdpoc.stack import parts
from cdpoc.stack.names import StackNames

SOURCE = "source"
APPLICATION = parts.DEPLOYMENT_APPLICATION.key
DEPLOYMENT_GROUP = parts.DEPLOYMENT_GROUP.key
PIPELINE = parts.PIPELINE.key
RULE = "rule.pipeline"

# CodeDeploy triggers: tell the alerts topic how each deployment ended.
DEPLOYMENT_TRIGGER_EVENTS = ("DeploymentFailure", "DeploymentSuccess")
# On a failed deployment, put the last good revision back on the instances.
AUTO_ROLLBACK_EVENTS = ("DEPLOYMENT_FAILURE",)


def source(names: StackNames) -> Resource:
    pipeline = names.settings.pipeline
    return Resource(
        SOURCE,
        "pipeline_source",
        names.repository,
        {
            "preferred": pipeline.source,
            "repository": names.repository,
            "branch": pipeline.branch,
            "description": f"cdpoc stack {names.name}: the application bundle the pipeline deploys",
            "bucket": "bucket.artifacts",
            "bucket_name": names.bucket("artifacts"),
            "s3_key": pipeline.s3_source_key,
            # Where an earlier fallback to the S3 source is recorded: the pipeline's source action.
            "pipeline_name": names.pipeline,
        },
        ("bucket.artifacts",),
    )


def application(names: StackNames) -> Resource:
    return Resource(
        APPLICATION, parts.DEPLOYMENT_APPLICATION.kind, names.codedeploy_application, {"compute_platform": "Server"}
    )


def deployment_group(names: StackNames) -> Resource:
    return Resource(
        DEPLOYMENT_GROUP,
        parts.DEPLOYMENT_GROUP.kind,
        names.deployment_group,
        {
            "application": APPLICATION,
            "application_name": names.codedeploy_application,
            "role": "role.codedeploy",
            "autoscaling_group": parts.FLEET.key,
            "target_group": parts.TARGET_GROUP.key,
            "topic": "topic.alerts",
            "deployment_config": names.settings.pipeline.deployment_config,
            "trigger_name": f"{names.name}-deployments",
            "trigger_events": DEPLOYMENT_TRIGGER_EVENTS,
            "rollback_events": AUTO_ROLLBACK_EVENTS,
        },
        (APPLICATION, "role.codedeploy", parts.FLEET.key, parts.TARGET_GROUP.key, "topic.alerts"),
    )


def pipeline(names: StackNames) -> Resource:
    return Resource(
        PIPELINE,
        parts.PIPELINE.kind,
        names.pipeline,
        {
            "role": "role.pipeline",
            "artifact_bucket": "bucket.artifacts",
            "source": SOURCE,
            "application": APPLICATION,
            "deployment_group": DEPLOYMENT_GROUP,
        },
        # Everything the first run touches, so that creating it (which starts a run) comes last.
        (SOURCE, APPLICATION, DEPLOYMENT_GROUP, "role.pipeline", "bucket.artifacts"),
    )


def rule(names: StackNames) -> Resource:
    return Resource(
        RULE,
        "event_rule",
        f"{names.name}-source-changes",
        {
            "pipeline": PIPELINE,
            "pipeline_name": names.pipeline,
            "source": SOURCE,
            "role": "role.events",
            "description": f"cdpoc stack {names.name}: start {names.pipeline} on a push to the source branch",
        },
        (PIPELINE, SOURCE, "role.events"),
    )


def declare(names: StackNames) -> list[Resource]:
    return [source(names), application(names), deployment_group(names), pipeline(names), rule(names)]
