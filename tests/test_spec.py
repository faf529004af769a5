"""Typed specs: edges come from their Refs, field changes know what AWS cannot change in place, and the
registry refuses a kind handled twice, a kind nobody handles and a spec its handler does not read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from cdpoc.aws.handler import Handler
from cdpoc.aws.registry import HANDLERS, by_kind, check
from cdpoc.graph import Graph, GraphError
from cdpoc.model import Observed
from cdpoc.spec import Ref, Spec, declare, field_changes, refs


@dataclass(frozen=True)
class Nested:
    target: Ref


@dataclass(frozen=True)
class Widget(Spec):
    kind: ClassVar[str] = "widget"
    force_new: ClassVar[frozenset[str]] = frozenset({"zone"})
    zone: str
    home: Ref
    members: tuple[Ref, ...] = ()
    routes: dict[str, Ref] | None = None
    nested: Nested | None = None


@dataclass(frozen=True)
class Gadget(Spec):
    kind: ClassVar[str] = "gadget"


class WidgetHandler(Handler):
    kind = "widget"
    spec_type = Widget


def test_edges_are_the_refs_of_the_spec_in_order_then_the_ordering_only_ones() -> None:
    spec = Widget(
        "a",
        Ref("vpc"),
        (Ref("subnet.a"), Ref("subnet.b"), Ref("vpc")),
        {"0.0.0.0/0": Ref("nat.a")},
        Nested(Ref("bucket.web", "website_url")),
    )
    res = declare("w", "w-name", spec, after=("igw", "vpc"))
    assert res.kind == "widget" and res.spec is spec
    assert res.depends_on == ("vpc", "subnet.a", "subnet.b", "nat.a", "bucket.web", "igw")
    assert [r.key for r in refs(spec.nested)] == ["bucket.web"]


def test_a_forgotten_declaration_of_a_referenced_resource_fails_when_the_graph_is_built() -> None:
    with pytest.raises(GraphError, match="depends on undeclared vpc"):
        Graph.of([declare("w", "w", Widget("a", Ref("vpc")))])


def test_a_ref_resolves_to_the_id_or_an_attribute_and_says_when_it_is_not_there_yet() -> None:
    deps = {"bucket.web": Observed("bucket.web", "bucket", "b-1", {"website_url": "http://site"}), "nat.a": None}
    assert Ref("bucket.web").value(deps) == "b-1"
    assert Ref("bucket.web", "website_url").value(deps) == "http://site"
    assert Ref("nat.a").value(deps) is None and Ref("nat.a").shown(deps) == "(nat.a to be created)"
    with pytest.raises(KeyError, match=r"nat\.a"):
        Ref("nat.a").need(deps)


def test_field_changes_show_both_values_and_force_new_fields_are_not_in_place() -> None:
    changes = field_changes(Widget, {"zone": "a", "size": 1}, {"zone": "b", "size": 2, "same": None})
    assert [(c.field, c.old, c.new, c.in_place) for c in changes] == [("zone", "a", "b", False), ("size", 1, 2, True)]
    assert [c.text for c in changes] == ["zone: a → b", "size: 1 → 2"]


def test_the_registry_refuses_a_kind_handled_twice() -> None:
    with pytest.raises(GraphError, match="kind 'widget' is handled twice"):
        by_kind([WidgetHandler(), WidgetHandler()])


def test_a_kind_without_a_handler_or_a_spec_its_handler_does_not_read_fails_when_the_graph_is_built() -> None:
    graph = Graph.of([declare("vpc", "v", Gadget()), declare("w", "w", Widget("a", Ref("vpc")))])
    with pytest.raises(GraphError, match="vpc is of kind 'gadget', which no handler manages"):
        check(graph, {"widget": WidgetHandler()})

    class Confused(Handler):
        kind = "gadget"
        spec_type = Widget

    with pytest.raises(GraphError, match="vpc: the gadget handler reads a Widget, not Gadget"):
        check(graph, {"widget": WidgetHandler(), "gadget": Confused()})


def test_every_kind_cdpoc_declares_has_its_handler_and_spec() -> None:
    from pathlib import Path

    from cdpoc.config import load_settings
    from cdpoc.stack import build

    settings, _, _ = load_settings(None, {"name": "demo", "region": "us-east-1"}, cwd=Path("/nonexistent"))
    graph = build(settings, ("us-east-1a", "us-east-1b"), "123456789012")
    check(graph, HANDLERS)
    assert all(isinstance(res.spec, Spec) for res in graph.resources.values())
    declared = {res.kind for res in graph.resources.values()}
    # every kind the stack declares is read through its spec type; only found kinds (kept snapshots) have none
    assert {kind for kind, handler in HANDLERS.items() if handler.spec_type is None} == {"snapshot"}
    assert declared == set(HANDLERS) - {"snapshot"}


@pytest.mark.parametrize("nat_gateways", [1, 2])
def test_the_graph_keeps_every_edge_it_had_when_its_edges_were_written_by_hand(nat_gateways: int) -> None:
    """tests/data/graph-edges.json holds the default stack's edges as declared by hand (before specs):
    deriving them from Refs, plus the ordering-only ones, must neither lose nor add one."""
    import json
    from pathlib import Path

    from cdpoc.config import load_settings
    from cdpoc.stack import build

    settings, _, _ = load_settings(None, {"name": "demo", "region": "us-east-1"}, cwd=Path("/nonexistent"))
    settings = settings.model_copy(
        update={"network": settings.network.model_copy(update={"nat_gateways": nat_gateways})}
    )
    graph = build(settings, ("us-east-1a", "us-east-1b"), "123456789012")
    recorded = json.loads((Path(__file__).parent / "data" / "graph-edges.json").read_text())
    assert {key: sorted(res.depends_on) for key, res in graph.resources.items()} == recorded[
        f"nat_gateways={nat_gateways}"
    ]
