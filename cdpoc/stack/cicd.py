"""CI/CD: the pipeline's source (CodeCommit repository, or one zip in the artifact bucket), the CodeDeploy
application and deployment group, the pipeline, and the EventBridge rule that starts it on a push.

The source prefers CodeCommit; where CodeCommit refuses to create a repository (accounts closed to
it) the source handler falls back to the S3 source, and the pipeline is built on whatever the source
turned out to be. The pipeline is created last because CreatePipeline starts a run at once.
"""

from __future__ import annotations

from cdpoc.model import Resource
from cdpoc.spec import Ref
from cdpoc.spec import declare as declare_resource
from cdpoc.stack import parts
from cdpoc.stack.names import StackNames
from cdpoc.stack.specs.cicd import (
    ApplicationSpec,
    AutoRollback,
    BranchPushPattern,
    DeploymentGroupSpec,
    DeploymentStyle,
    EventRuleSpec,
    PipelineAction,
    PipelineSpec,
    PipelineStage,
    RuleTarget,
    SourceSpec,
    Trigger,
)

SOURCE = "source"
APPLICATION = parts.DEPLOYMENT_APPLICATION.key
DEPLOYMENT_GROUP = parts.DEPLOYMENT_GROUP.key
PIPELINE = parts.PIPELINE.key
RULE = "rule.pipeline"
ARTIFACT_BUCKET = "bucket.artifacts"

COMPUTE_PLATFORM = "Server"  # EC2 instances (not Lambda or ECS)
# In place on the fleet, with CodeDeploy taking each instance out of the target group while it deploys.
IN_PLACE_WITH_TRAFFIC_CONTROL = DeploymentStyle("IN_PLACE", "WITH_TRAFFIC_CONTROL")
# V2 pipelines are billed per action-minute (with a monthly free allowance) instead of $1 a month each.
PIPELINE_TYPE = "V2"
# A newer run supersedes one still waiting: only the latest push is deployed.
EXECUTION_MODE = "SUPERSEDED"
SOURCE_ARTIFACT = "SourceOutput"
RULE_TARGET_ID = "pipeline"

# CodeDeploy triggers: tell the alerts topic how each deployment ended.
DEPLOYMENT_TRIGGER_EVENTS = ("DeploymentFailure", "DeploymentSuccess")
# On a failed deployment, put the last good revision back on the instances.
AUTO_ROLLBACK_EVENTS = ("DEPLOYMENT_FAILURE",)


def source(names: StackNames) -> Resource:
    pipeline = names.settings.pipeline
    return declare_resource(
        SOURCE,
        names.repository,
        SourceSpec(
            preferred=pipeline.source,
            repository=names.repository,
            branch=pipeline.branch,
            description=f"cdpoc stack {names.name}: the application bundle the pipeline deploys",
            bucket=Ref(ARTIFACT_BUCKET),
            s3_key=pipeline.s3_source_key,
            pipeline_name=names.pipeline,
        ),
    )


def application(names: StackNames) -> Resource:
    return declare_resource(
        APPLICATION,
        names.codedeploy_application,
        ApplicationSpec(name=names.codedeploy_application, compute_platform=COMPUTE_PLATFORM),
    )


def deployment_group(names: StackNames) -> Resource:
    return declare_resource(
        DEPLOYMENT_GROUP,
        names.deployment_group,
        DeploymentGroupSpec(
            application=Ref(APPLICATION),
            application_name=names.codedeploy_application,
            compute_platform=COMPUTE_PLATFORM,
            service_role=Ref("role.codedeploy", "arn"),
            deployment_config=names.settings.pipeline.deployment_config,
            deployment_style=IN_PLACE_WITH_TRAFFIC_CONTROL,
            autoscaling_groups=(Ref(parts.FLEET.key),),
            target_groups=(Ref(parts.TARGET_GROUP.key, "name"),),
            auto_rollback=AutoRollback(enabled=True, events=AUTO_ROLLBACK_EVENTS),
            triggers=(Trigger(f"{names.name}-deployments", Ref("topic.alerts"), DEPLOYMENT_TRIGGER_EVENTS),),
        ),
    )


def pipeline(names: StackNames) -> Resource:
    # Its references are everything the first run touches, so creating it (which starts a run) comes last.
    return declare_resource(
        PIPELINE,
        names.pipeline,
        PipelineSpec(
            role=Ref("role.pipeline", "arn"),
            artifact_bucket=Ref(ARTIFACT_BUCKET),
            pipeline_type=PIPELINE_TYPE,
            execution_mode=EXECUTION_MODE,
            stages=(
                PipelineStage(
                    "Source",
                    (PipelineAction("Source", "Source", source=Ref(SOURCE), output_artifacts=(SOURCE_ARTIFACT,)),),
                ),
                PipelineStage(
                    "Deploy",
                    (
                        PipelineAction(
                            "Deploy",
                            "Deploy",
                            provider="CodeDeploy",
                            configuration={
                                "ApplicationName": Ref(APPLICATION),
                                "DeploymentGroupName": Ref(DEPLOYMENT_GROUP),
                            },
                            input_artifacts=(SOURCE_ARTIFACT,),
                        ),
                    ),
                ),
            ),
        ),
    )


def rule(names: StackNames) -> Resource:
    return declare_resource(
        RULE,
        names.source_rule,
        EventRuleSpec(
            source=Ref(SOURCE),
            pattern=BranchPushPattern(repository=Ref(SOURCE, "arn"), branch=names.settings.pipeline.branch),
            targets=(RuleTarget(RULE_TARGET_ID, Ref(PIPELINE, "arn"), Ref("role.events", "arn")),),
            description=f"cdpoc stack {names.name}: start {names.pipeline} on a push to the source branch",
            pipeline_name=names.pipeline,
        ),
    )


def declare(names: StackNames) -> list[Resource]:
    return [source(names), application(names), deployment_group(names), pipeline(names), rule(names)]
