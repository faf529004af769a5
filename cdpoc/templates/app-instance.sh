#!/bin/bash
# User data of the application instances (the launch template of the Auto Scaling group).
#
# cdpoc renders this file with string.Template (a placeholder is two at signs and a name in
# braces) from the stack's declaration: it holds names only, never a secret. In order:
#   1. a stub HTTP server on port 80 (systemd unit cdpoc-stub.service) answering / and /health, so
#      the target group's health check passes until the first deployment; the application
#      bundle's ApplicationStart hook disables it
#   2. the CloudWatch agent, shipping cloud-init, CodeDeploy agent, deployment and application logs
#      to the stack's log group as streams <instance id>/<source>
#   3. the CodeDeploy agent (Amazon Linux 2023 needs agent 1.6 or later, which runs on Ruby 3.2)
# Network steps are retried: the NAT route, DNS and package mirrors can lag behind the boot.
set -euo pipefail

readonly STACK='@@{stack}'
readonly LOG_GROUP='@@{log_group}'
readonly IMDS=http://169.254.169.254
readonly STUB_SERVICE=cdpoc-stub.service
readonly STUB_DIR=/usr/local/lib/cdpoc
readonly APP_SERVICE=s3upload.service
readonly CW_AGENT_DIR=/opt/aws/amazon-cloudwatch-agent

# Log lines go to stderr, so that functions whose output is captured stay clean; cloud-init
# keeps both streams in /var/log/cloud-init-output.log.
log() {
    printf '%s cdpoc-user-data: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

# retry ATTEMPTS COMMAND [ARG...]: run COMMAND until it succeeds, backing off from 5 s to 60 s.
retry() {
    local attempts=$1 delay=5 attempt=1
    shift
    until "$@"; do
        if ((attempt >= attempts)); then
            log "giving up after ${attempt} attempts: $*"
            return 1
        fi
        log "attempt ${attempt} of ${attempts} failed, retrying in ${delay}s: $*"
        sleep "$delay"
        attempt=$((attempt + 1))
        delay=$((delay * 2 > 60 ? 60 : delay * 2))
    done
}

# IMDSv2 only (the launch template requires tokens): a session token first, then the metadata.
imds_token() {
    curl -fsS --max-time 5 -X PUT "$IMDS/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 900'
}

imds() {
    curl -fsS --max-time 5 -H "X-aws-ec2-metadata-token: $1" "$IMDS/latest/meta-data/$2"
}

install_stub_server() {
    # After the first deployment the application owns port 80; never start the stub beside it.
    if systemctl cat "$APP_SERVICE" >/dev/null 2>&1; then
        log "$APP_SERVICE is installed: no stub server needed"
        return 0
    fi
    mkdir -p "$STUB_DIR"
    cat >"$STUB_DIR/stub_server.py" <<'PYTHON'
"""Answers the load balancer's health check until the first CodeDeploy deployment replaces it."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROUTES = {"/", "/health"}


class StubHandler(BaseHTTPRequestHandler):
    def _answer(self, with_body):
        if self.path.split("?", 1)[0] in ROUTES:
            status, doc = 200, {"status": "ok", "app": "cdpoc-stub", "detail": "no deployment yet"}
        else:
            status, doc = 404, {"status": "not found"}
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):
        self._answer(True)

    def do_HEAD(self):
        self._answer(False)

    def log_message(self, format, *args):
        """Health checks every few seconds would flood the journal."""


ThreadingHTTPServer(("", int(os.environ.get("STUB_PORT", "80"))), StubHandler).serve_forever()
PYTHON
    cat >"/etc/systemd/system/$STUB_SERVICE" <<UNIT
[Unit]
Description=cdpoc stub health server (until the first deployment of the application)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/python3 $STUB_DIR/stub_server.py
Restart=always
RestartSec=2
DynamicUser=yes
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable --now "$STUB_SERVICE"
    log "$STUB_SERVICE is answering on port 80"
}

install_cloudwatch_agent() {
    retry 10 dnf install -y amazon-cloudwatch-agent
    # {instance_id} is the agent's own placeholder, filled in on the instance.
    cat >"$CW_AGENT_DIR/etc/cdpoc.json" <<JSON
{
  "agent": {"run_as_user": "root"},
  "logs": {
    "logs_collected": {
      "files": {
        "collect_list": [
          {"file_path": "/var/log/cloud-init-output.log", "log_group_name": "$LOG_GROUP", "log_stream_name": "{instance_id}/cloud-init"},
          {"file_path": "/opt/codedeploy-agent/deployment-root/deployment-logs/codedeploy-agent-deployments.log", "log_group_name": "$LOG_GROUP", "log_stream_name": "{instance_id}/deploy"},
          {"file_path": "/var/log/aws/codedeploy-agent/codedeploy-agent.log", "log_group_name": "$LOG_GROUP", "log_stream_name": "{instance_id}/agent"},
          {"file_path": "/var/log/s3upload/app.log", "log_group_name": "$LOG_GROUP", "log_stream_name": "{instance_id}/app"}
        ]
      }
    }
  }
}
JSON
    "$CW_AGENT_DIR/bin/amazon-cloudwatch-agent-ctl" -a fetch-config -m ec2 -s -c "file:$CW_AGENT_DIR/etc/cdpoc.json"
    log "CloudWatch agent ships logs to $LOG_GROUP"
}

install_codedeploy_agent() {
    local region=$1 installer
    retry 10 dnf install -y ruby wget
    installer="$(mktemp)"
    retry 10 wget -q -O "$installer" "https://aws-codedeploy-${region}.s3.${region}.amazonaws.com/latest/install"
    chmod +x "$installer"
    retry 5 "$installer" auto
    rm -f -- "$installer"
    systemctl enable --now codedeploy-agent
    log "CodeDeploy agent is running"
}

main() {
    local token region
    log "configuring an application instance of stack $STACK"
    install_stub_server
    token="$(retry 10 imds_token)"
    region="$(retry 10 imds "$token" placement/region)"
    install_cloudwatch_agent
    install_codedeploy_agent "$region"
    log "done"
}

main "$@"
