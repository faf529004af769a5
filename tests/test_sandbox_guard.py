"""The running sandbox serves the developer's tools and refuses what a web page in their browser can send."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from cdpoc.sandbox.cicd import SIMULATION, ask_sandbox
from cdpoc.sandbox.server import Sandbox

EVIL = "https://attacker.example"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")
        with Sandbox() as running:
            yield running
    SIMULATION.reset()


def send(
    sandbox: Sandbox, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    address = urlsplit(sandbox.endpoint)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    try:
        connection.request(method, path, body=body or None, headers={"Host": address.netloc, **headers})
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        connection.close()


def ec2(sandbox: Sandbox) -> Any:
    return boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=sandbox.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def vpc_count(sandbox: Sandbox) -> int:
    return len(ec2(sandbox).describe_vpcs()["Vpcs"])


# What boto3 sends (moto routes on the signature's service and then answers every Origin with CORS headers).
EC2_SIGNATURE = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, "
    "SignedHeaders=host, Signature=0"
}
CREATE_VPC = b"Action=CreateVpc&Version=2016-11-15&CidrBlock=10.9.0.0%2F16"
FORM = {"Content-Type": "application/x-www-form-urlencoded", **EC2_SIGNATURE}


def test_boto3_and_the_control_client_are_served(sandbox: Sandbox) -> None:
    before = vpc_count(sandbox)
    ec2(sandbox).create_vpc(CidrBlock="10.8.0.0/16")
    assert vpc_count(sandbox) == before + 1
    assert "stepSeconds" in ask_sandbox(sandbox.endpoint, "simulation")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": EVIL}, id="cross-origin page"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="img or form from another site"),
        pytest.param({"Sec-Fetch-Site": "same-site", "Origin": "null"}, id="sandboxed iframe"),
        pytest.param({"Host": "rebound.attacker.example:5000"}, id="DNS rebinding"),
    ],
)
def test_a_web_page_cannot_call_the_aws_api(sandbox: Sandbox, headers: dict[str, str]) -> None:
    before = vpc_count(sandbox)
    status, reply_headers, body = send(sandbox, "POST", "/", {**FORM, **headers}, CREATE_VPC)
    assert status == 403
    assert "cdpoc sandbox" in json.loads(body)["error"]
    assert not any(name.startswith("access-control-") for name in reply_headers)
    assert vpc_count(sandbox) == before


def test_a_cors_preflight_is_never_granted(sandbox: Sandbox) -> None:
    status, headers, _ = send(
        sandbox, "OPTIONS", "/_cdpoc/step-seconds", {"Origin": EVIL, "Access-Control-Request-Method": "POST"}
    )
    assert status == 403
    assert "access-control-allow-origin" not in headers


def test_answers_carry_no_cors_headers_even_for_a_loopback_origin(sandbox: Sandbox) -> None:
    headers = {"Origin": sandbox.endpoint, **EC2_SIGNATURE}
    status, headers, _ = send(sandbox, "GET", "/?Action=DescribeVpcs&Version=2016-11-15", headers)
    assert status == 200
    assert not any(name.startswith("access-control-") for name in headers)


def test_the_control_path_takes_json_only(sandbox: Sandbox) -> None:
    step = SIMULATION.step_seconds
    status, _, body = send(sandbox, "POST", "/_cdpoc/step-seconds", {"Content-Type": "text/plain"}, b'{"seconds": 9}')
    assert status == 403 and "application/json" in json.loads(body)["error"]
    assert SIMULATION.step_seconds == step
    status, _, _ = send(
        sandbox, "POST", "/_cdpoc/step-seconds", {"Content-Type": "application/json"}, b'{"seconds": 9}'
    )
    assert status == 200 and SIMULATION.step_seconds == 9
    SIMULATION.step_seconds = step


def test_proxied_aws_host_names_still_pass(sandbox: Sandbox) -> None:
    """A client using the sandbox as its HTTP proxy (cdpoc status, browser tests) reaches the simulated stack
    whatever page it comes from: that is the internet the stack faces, not the developer's machine."""
    status, _, body = send(
        sandbox, "GET", "/health", {"Host": "nothing-here.us-east-1.elb.amazonaws.com", "Origin": EVIL}
    )
    assert status != 403 or b"cdpoc sandbox:" not in body
