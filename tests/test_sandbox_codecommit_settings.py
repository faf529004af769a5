"""The sandbox's UpdateRepositoryDescription (moto 5.2.5 has none), through boto3: botocore validates the
request and the (empty) response against the codecommit model."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from sandbox_world import FakeClock, client, clock, without_managed_policies

from cdpoc.sandbox.patching import PATCHES

__all__ = ["clock", "without_managed_policies"]

REPO = "books"


@pytest.fixture
def codecommit(clock: FakeClock) -> Any:
    cc = client("codecommit")
    cc.create_repository(repositoryName=REPO, repositoryDescription="first words")
    return cc


def description(cc: Any) -> str:
    return str(cc.get_repository(repositoryName=REPO)["repositoryMetadata"].get("repositoryDescription", ""))


def test_the_description_is_replaced_and_an_absent_one_clears_it(codecommit: Any) -> None:
    codecommit.update_repository_description(repositoryName=REPO, repositoryDescription="second words")
    assert description(codecommit) == "second words"
    codecommit.update_repository_description(repositoryName=REPO)
    assert description(codecommit) == ""


def test_a_missing_repository_and_a_too_long_description_are_refused_with_codecommits_codes(codecommit: Any) -> None:
    with pytest.raises(ClientError) as missing:
        codecommit.update_repository_description(repositoryName="nope", repositoryDescription="x")
    assert missing.value.response["Error"]["Code"] == "RepositoryDoesNotExistException"
    with pytest.raises(ClientError) as too_long:
        codecommit.update_repository_description(repositoryName=REPO, repositoryDescription="x" * 1001)
    assert too_long.value.response["Error"]["Code"] == "InvalidRepositoryDescriptionException"
    assert description(codecommit) == "first words"


def test_moto_itself_has_no_update_repository_description() -> None:
    [patch] = [p for p in PATCHES if p.name == "update_repository_description"]
    assert patch.response_class.__name__ == "CodeCommitResponse"
    assert not patch.replaces and not patch.moto_had_it
