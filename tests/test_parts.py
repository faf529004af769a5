"""The stack's parts by role (cdpoc.stack.parts): each role is declared once, with the kind the readers expect."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdpoc.config import load_settings
from cdpoc.graph import Graph, GraphError
from cdpoc.model import Observed, Resource
from cdpoc.render import stack_outputs
from cdpoc.stack import build, parts

ZONES = ("us-east-1a", "us-east-1b")


def full_stack(tmp_path: Path) -> Graph:
    config = tmp_path / "cdpoc.yaml"
    config.write_text("name: t1\nregion: us-east-1\n")
    settings, _, _ = load_settings(config, {}, ambient_region=lambda: None)
    return build(settings, ZONES, "123456789012")


def test_every_part_is_declared_once_with_its_kind(tmp_path: Path) -> None:
    graph = full_stack(tmp_path)
    assert len({part.key for part in parts.PARTS}) == len(parts.PARTS)
    for part in parts.PARTS:
        declared = part.of(graph)
        assert declared is not None and declared.kind == part.kind, part
    assert parts.PIPELINE.of(graph).name == "t1-pipeline"  # type: ignore[union-attr]
    assert parts.LOG_GROUP.of(graph).name == "/cdpoc/t1"  # type: ignore[union-attr]


def test_a_part_of_another_kind_is_a_bug_not_a_missing_part() -> None:
    graph = Graph.of([Resource(parts.FLEET.key, "instance", "t1-app")])
    with pytest.raises(GraphError, match=r"asg\.app is declared of kind instance"):
        parts.FLEET.of(graph)
    assert parts.TARGET_GROUP.of(graph) is None


def test_the_outputs_of_up_follow_the_parts_not_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    results = {
        "alb.blue": Observed("alb.blue", "load_balancer", "arn:blue", {"dns_name": "blue.example"}),
        "alb": Observed("alb", "load_balancer", "arn:alb", {"dns_name": "alb.example"}),
    }
    assert stack_outputs(results) == [("Application (ALB)", "http://alb.example/")]
    monkeypatch.setattr("cdpoc.render.LOAD_BALANCER", parts.Part("the blue load balancer", "alb.blue", "load_balancer"))
    assert stack_outputs(results) == [("Application (ALB)", "http://blue.example/")]
