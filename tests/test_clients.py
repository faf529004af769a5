"""The client factory: service models are parsed once per process, whatever the number of runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdpoc.aws.clients import ClientFactory


def loader_of(factory: ClientFactory) -> object:
    return factory.session._session.get_component("data_loader")


def test_every_run_reads_the_service_models_through_one_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = ClientFactory("us-east-1"), ClientFactory("eu-west-1")
    assert loader_of(first) is loader_of(second)
    first.client("ec2")
    files = loader_of(second).file_loader  # type: ignore[attr-defined]
    loads: list[str] = []
    original = files.load_file
    monkeypatch.setattr(files, "load_file", lambda path: loads.append(path) or original(path))
    second.client("ec2")
    assert loads == []  # EC2's model was parsed for the first run only


def test_another_data_path_gets_its_own_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    usual = ClientFactory("us-east-1")
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    custom = ClientFactory("us-east-1")
    assert loader_of(custom) is not loader_of(usual)
    assert str(tmp_path) in loader_of(custom).search_paths  # type: ignore[attr-defined]
