#!/usr/bin/env bash
# Shared settings and helpers for the CodeDeploy lifecycle hooks of the s3upload bundle.
# Every hook script sources this file; it is not a hook itself.
#
# What the hooks rely on (created by `cdpoc up`; keep both sides in step):
#   - Amazon Linux 2023 with curl, the AWS CLI v2 and dnf; the hooks run as root.
#   - IMDSv2 with instance metadata tags enabled in the launch template, and the instance tag
#       cdpoc:stack = <stack name>
#     read from /latest/meta-data/tags/instance/cdpoc:stack. The region comes from
#     /latest/meta-data/placement/region.
#   - SSM parameters (the instance role may ssm:GetParameter them; the SecureString uses the aws/ssm key,
#     whose key policy lets SSM decrypt for the account, so no kms:Decrypt grant is needed):
#       /<stack>/mongodb/host          String        private IP or DNS name of MongoDB
#       /<stack>/mongodb/app-password  SecureString  password of MongoDB user s3upload, database s3upload
#     The hooks only write the password parameter's *name* to /etc/s3upload.env; the application
#     reads the value itself at start, so the password is never in a file.
#   - The launch template's stub health server is the systemd unit cdpoc-stub.service. It holds
#     port 80 until ApplicationStart disables it.
#   - Instance role: S3 read/write/delete on the upload buckets' prefixes named in MongoDB's
#     fileTypes documents; logs for the CloudWatch agent, which ships /var/log/s3upload/app.log.
#
# What the hooks produce:
#   /opt/s3upload/{app,systemd}   the revision (copied by CodeDeploy, see appspec.yml)
#   /opt/s3upload/venv            Python 3.11 virtualenv with app/requirements.txt
#   /etc/s3upload.env             root:root 0600: AWS_REGION CDPOC_STACK MONGODB_HOST MONGODB_DB
#                                 MONGODB_USER MONGODB_PASSWORD_PARAM APP_REVISION APP_PORT LOG_FILE
#   /etc/systemd/system/s3upload.service  runs as user s3upload on port 80
#
# Knobs for tests (all unset on an instance):
#   CDPOC_ROOT               prefix for every path the hooks read or write (default: /)
#   CDPOC_PYTHON             interpreter for the virtualenv (default: python3.11, installed with dnf)
#   CDPOC_IMDS_ENDPOINT      instance metadata endpoint (default: http://169.254.169.254)
#   CDPOC_VALIDATE_TIMEOUT   seconds ValidateService waits for /health (default: 120)
#   CDPOC_VALIDATE_INTERVAL  seconds between /health polls (default: 2)
# External commands (systemctl, journalctl, curl, aws, dnf, useradd, chown) are found on PATH, so a
# test replaces them by putting stubs first on PATH.

# The hook scripts set -euo pipefail before sourcing this file; repeated here so the helpers
# behave the same if something sources it on its own. (The SC2034 directive covers the whole
# file: the constants below are used by the scripts that source it, not here.)
# shellcheck disable=SC2034
set -euo pipefail

readonly APP_USER="s3upload"
readonly SERVICE="s3upload.service"
readonly STUB_SERVICE="cdpoc-stub.service"
readonly ROOT="${CDPOC_ROOT:-}"
readonly APP_DIR="${ROOT}/opt/s3upload"
readonly VENV_DIR="${APP_DIR}/venv"
readonly ENV_FILE="${ROOT}/etc/s3upload.env"
readonly UNIT_DIR="${ROOT}/etc/systemd/system"
readonly IMDS="${CDPOC_IMDS_ENDPOINT:-http://169.254.169.254}"
# The revision as CodeDeploy unpacked it (scripts/..): where a REVISION file would be.
BUNDLE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly BUNDLE_DIR
HOOK="$(basename "$0" .sh)"
readonly HOOK

# One line per step, with a UTC time stamp; CodeDeploy keeps stdout in the deployment's
# scripts.log, and `cdpoc status` shows its tail for a failed hook.
log() {
    printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$HOOK" "$*"
}

# To stderr: also readable when the failing step had its stdout redirected to a file.
die() {
    log "ERROR: $*" >&2
    exit 1
}

# True when systemd knows the unit (a unit file exists anywhere systemd looks).
unit_exists() {
    systemctl cat "$1" >/dev/null 2>&1
}

# Stop the application if it is installed; succeed quietly if it is not (first deployment).
stop_app() {
    if unit_exists "$SERVICE"; then
        log "stopping $SERVICE"
        systemctl stop "$SERVICE"
    else
        log "$SERVICE is not installed: nothing to stop"
    fi
}
