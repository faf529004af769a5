"""The handler base every resource kind implements, and the helpers its methods share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cdpoc.aws.run import AwsRun
from cdpoc.errors import ConflictError
from cdpoc.model import Change, Observed, Resource
from cdpoc.spec import Ref, Spec


def observed(res_or_key: Resource | str, kind: str, physical_id: str, **attrs: Any) -> Observed:
    key = res_or_key.key if isinstance(res_or_key, Resource) else res_or_key
    return Observed(key=key, kind=kind, id=physical_id, attrs=attrs)


def dep_id(deps: Mapping[str, Observed | None], key: str) -> str | None:
    """The id of dependency `key`; None while it does not exist."""
    found = deps.get(key)
    return found.id if found else None


def dep_attr(deps: Mapping[str, Observed | None], key: str, attr: str) -> str | None:
    """Attribute `attr` of dependency `key` as text; None while it does not exist or the attribute is empty."""
    found = deps.get(key)
    if found is None:
        return None
    return str(found.attrs.get(attr, "")) or None


def vpc_changes(vpc: Ref | str, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
    """A resource in another VPC than the stack's (`vpc`, the spec's reference to it) is a conflict: it
    cannot be moved. Nothing to say while the stack's VPC does not exist yet."""
    vpc_id = (vpc if isinstance(vpc, Ref) else Ref(vpc)).value(deps)
    if vpc_id and found.attrs["vpc"] != vpc_id:
        return [Change(f"it is in {found.attrs['vpc']}, not the stack's VPC {vpc_id}", in_place=False)]
    return []


class Handler:
    """Find / create / update / delete one kind of resource. Subclasses fill in the AWS calls.

    `scan` lists every resource of the kind tagged with the stack (keyed by component), once per run;
    `find` picks the wanted one from it. Kinds that cannot be listed by tag override `find`.
    """

    kind = ""
    label = ""
    # Tagging-API resource types ("service:type") this handler's scan already covers, for the leftover scan.
    arn_types: tuple[str, ...] = ()
    # The spec type of the resources it manages (cdpoc.spec); the registry checks every declared one.
    spec_type: type[Spec] | None = None

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        return {}

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        return run.memo(f"scan:{self.kind}", lambda: self.scan(run)).get(res.key)

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        return []

    def missing(self, run: AwsRun, res: Resource, found: Mapping[str, Observed | None]) -> list[Change]:
        """What creating `res` would mean, when it does not exist: notes for the plan, or a Change with
        in_place=False when creating it anew would do harm (the plan calls that a conflict)."""
        return []

    def keep(self, run: AwsRun, found: Observed) -> None:
        """Mark the resource as data `down --keep-data` keeps (only kinds that hold data implement it)."""
        raise NotImplementedError(self.kind)

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        raise NotImplementedError(self.kind)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        """Apply `changes`, the plan's step for this resource (what changes() said), and nothing else."""
        raise NotImplementedError(self.kind)

    def delete(self, run: AwsRun, found: Observed) -> None:
        raise NotImplementedError(self.kind)

    def converge(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed]) -> Observed:
        """Bring `found` (just created, or read back) to the spec: its changes, applied as a plan's update."""
        return self.update(run, res, found, deps, self.changes(run, res, found, deps))

    def adopt(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        what: str,
        hint: str = "Run `cdpoc down` and `cdpoc up` to rebuild it.",
    ) -> Observed:
        """The end of create → AlreadyExists → read → prove ours → adopt, shared by every kind: `found` is the
        resource read back after AWS said it exists (a create that raced, a retry after a lost answer, a
        re-run), and the caller has proved from its own tags that it is this stack's. A difference AWS
        cannot change in place refuses it (ConflictError); the rest is applied like a plan's update."""
        changes = self.changes(run, res, found, deps)
        fixed = [c.text for c in changes if not c.in_place]
        if fixed:
            raise ConflictError(f"{what} {res.name} exists with other fixed settings: {'; '.join(fixed)}", hint)
        return self.update(run, res, found, deps, changes)

    def describe(self, found: Observed) -> str:
        """How the resource is shown to the user, e.g. 'vpc-0abc (10.0.0.0/16)'."""
        return found.id
