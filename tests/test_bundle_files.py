"""push-app sends only what the bundle means to ship: ignore files honoured, secrets refused unless allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cdpoc.bundle import BundleInvalid, check_bundle, read_bundle, zip_bundle
from cdpoc.bundlefiles import secret_reason

APPSPEC = {"version": 0.0, "os": "linux", "files": [{"source": "app", "destination": "/opt/app"}]}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    (root / "app").mkdir(parents=True)
    (root / "appspec.yml").write_text(yaml.safe_dump(APPSPEC))
    (root / "app" / "main.py").write_text("print('hi')\n")
    return root


def paths(root: Path) -> list[str]:
    return [f.path for f in read_bundle(root)]


def test_cdpocignore_and_gitignore_files_exclude_with_git_rules(bundle: Path) -> None:
    (bundle / ".cdpocignore").write_text("# build output\n/dist/\n*.log\n!keep.log\n")
    (bundle / "app" / ".gitignore").write_text("node_modules/\nlocal.cfg\n")
    for name in ("dist/a.js", "app/dist/b.js", "debug.log", "keep.log", "app/local.cfg", "local.cfg"):
        (bundle / name).parent.mkdir(parents=True, exist_ok=True)
        (bundle / name).write_text("x\n")
    (bundle / "app" / "node_modules" / "pkg").mkdir(parents=True)
    (bundle / "app" / "node_modules" / "pkg" / "index.js").write_text("x\n")

    assert paths(bundle) == [
        "app/.gitignore",
        "app/dist/b.js",  # "/dist/" is anchored at the bundle's root
        "app/main.py",
        "appspec.yml",
        "keep.log",  # re-included by "!keep.log"
        "local.cfg",  # app/.gitignore applies below app/ only
    ]


def test_excluded_files_stay_out_of_the_s3_zip_too(bundle: Path) -> None:
    (bundle / ".cdpocignore").write_text("*.log\n")
    (bundle / "trace.log").write_text("x\n")
    assert b"trace.log" not in zip_bundle(read_bundle(bundle))
    assert b".cdpocignore" not in zip_bundle(read_bundle(bundle))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (".env", b"MONGO_PASSWORD=hunter2\n"),
        ("app/.env.production", b"X=1\n"),
        ("app/server.pem", b"certificate\n"),
        ("deploy/id_ed25519", b"key\n"),
        ("app/.npmrc", b"//registry.npmjs.org/:_authToken=abc\n"),
        ("app/settings.py", b"KEY = '''-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n'''\n"),
        ("app/config.py", b"ACCESS_KEY = 'AKIAZ7Q3RT5XJ2KLMNOP'\n"),
        ("app/aws.ini", b"aws_secret_access_key = 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\n"),
        ("app/ci.yml", b"token: ghp_" + b"a1" * 18 + b"\n"),
    ],
)
def test_a_file_that_looks_like_a_secret_is_refused(bundle: Path, name: str, content: bytes) -> None:
    (bundle / name).parent.mkdir(parents=True, exist_ok=True)
    (bundle / name).write_bytes(content)
    with pytest.raises(BundleInvalid) as refused:
        check_bundle(bundle)
    assert f"{name}: looks like a secret" in refused.value.message
    assert f"--allow-secret {name}" in refused.value.message and ".cdpocignore" in refused.value.message
    assert refused.value.exit_code == 2


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (".env.example", b"MONGO_PASSWORD=\n"),
        ("deploy/id_ed25519.pub", b"ssh-ed25519 AAAA\n"),
        ("app/docs.md", b"aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"),
        ("app/keys.py", b"def private_key(): return load('key.pem')\n"),
        ("app/monkey.py", b"x = 1\n"),
    ],
)
def test_look_alikes_are_not_secrets(name: str, content: bytes) -> None:
    assert secret_reason(name, content) is None


def test_an_allowed_or_excluded_secret_passes_and_an_unknown_allowance_is_refused(bundle: Path) -> None:
    (bundle / "app" / "tls.pem").write_text("public certificate chain\n")
    (bundle / ".env").write_text("X=1\n")
    (bundle / ".cdpocignore").write_text(".env\n")
    assert "app/tls.pem" in [f.path for f in check_bundle(bundle, frozenset({"app/tls.pem"}))]
    assert ".env" not in paths(bundle)
    with pytest.raises(BundleInvalid, match=r"--allow-secret app/missing\.pem: no such file"):
        check_bundle(bundle, frozenset({"app/tls.pem", "app/missing.pem"}))


def test_a_symlinked_directory_is_refused_not_silently_skipped(bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (bundle / "app" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(BundleInvalid, match=r"app/linked: a symbolic link"):
        check_bundle(bundle)
