#!/usr/bin/env bash
# AfterInstall: build the runtime around the files CodeDeploy just copied to /opt/s3upload.
#
#   1. the service user s3upload
#   2. Python 3.11 and a virtualenv with the pinned app/requirements.txt
#   3. /etc/s3upload.env from instance metadata (IMDSv2) and SSM: where MongoDB is and which SSM
#      parameter holds its password (never the password itself)
#   4. the systemd unit
# Every step converges: running the hook twice leaves the same result.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The service user must be able to read everything installed here, whatever umask the agent has.
umask 022

readonly PYTHON="${CDPOC_PYTHON:-python3.11}"
readonly REQUIREMENTS="${APP_DIR}/app/requirements.txt"
readonly UNIT_SOURCE="${APP_DIR}/systemd/${SERVICE}"

ensure_user() {
    if getent passwd "$APP_USER" >/dev/null; then
        log "user $APP_USER exists"
    else
        log "creating system user $APP_USER"
        useradd --system --user-group --home-dir /opt/s3upload --no-create-home \
            --shell /sbin/nologin "$APP_USER"
    fi
}

# AL2023's system python3 is 3.9; the pinned FastAPI and pymongo need 3.11 or later.
ensure_python() {
    if command -v "$PYTHON" >/dev/null; then
        log "using $("$PYTHON" --version 2>&1) at $(command -v "$PYTHON")"
    else
        log "installing python3.11 with dnf"
        dnf install -y python3.11 python3.11-pip
    fi
}

build_venv() {
    [[ -f "$REQUIREMENTS" ]] || die "$REQUIREMENTS is missing: did CodeDeploy copy app/?"
    log "creating virtualenv $VENV_DIR"
    "$PYTHON" -m venv --clear "$VENV_DIR"
    log "installing pinned dependencies from $REQUIREMENTS"
    # Wheels only: the instance has no compiler, and a source build would fail late and obscurely.
    "$VENV_DIR/bin/pip" install --no-cache-dir --disable-pip-version-check --no-input \
        --only-binary=:all: -r "$REQUIREMENTS"
}

imds_token() {
    curl -fsS --max-time 5 --retry 3 -X PUT "$IMDS/latest/api/token" \
        -H "X-aws-ec2-metadata-token-ttl-seconds: 300"
}

imds_get() {
    local token="$1" path="$2"
    curl -fsS --max-time 5 --retry 3 -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/$path"
}

ssm_string() {
    local region="$1" name="$2"
    aws ssm get-parameter --region "$region" --name "$name" --query Parameter.Value --output text
}

# The revision shown by GET /: the bundle's REVISION file (written by push-app) and the
# CodeDeploy deployment id, whichever exist.
revision() {
    local rev=""
    if [[ -f "$BUNDLE_DIR/REVISION" ]]; then
        rev="$(head -n 1 "$BUNDLE_DIR/REVISION")"
    fi
    if [[ -n "${DEPLOYMENT_ID:-}" ]]; then
        rev="${rev:+$rev }${DEPLOYMENT_ID}"
    fi
    # Only characters that cannot break the quoting of a systemd environment file.
    rev="$(printf '%s' "${rev:-unknown}" | tr -cd 'A-Za-z0-9._:/@+ -')"
    printf '%s' "${rev:-unknown}"
}

# KEY="value" for systemd's EnvironmentFile; refuse values that would need escaping, since they
# come from tags and parameters we do not control character by character.
env_line() {
    local key="$1" value="$2"
    [[ -n "$value" ]] || die "no value for $key"
    [[ "$value" != *[\"\\\$\`$'\n']* ]] || die "value for $key contains a character not allowed in $ENV_FILE"
    printf '%s="%s"\n' "$key" "$value"
}

write_env_file() {
    local token region stack host
    token="$(imds_token)" || die "no IMDSv2 token from $IMDS"
    region="$(imds_get "$token" placement/region)" || die "no region in instance metadata"
    stack="$(imds_get "$token" tags/instance/cdpoc:stack)" ||
        die "no cdpoc:stack tag in instance metadata (the launch template must enable instance metadata tags)"
    host="$(ssm_string "$region" "/$stack/mongodb/host")" ||
        die "cannot read SSM parameter /$stack/mongodb/host in $region"
    log "stack $stack in $region, MongoDB at $host"

    # Written beside the target (mktemp makes it 0600) and renamed, so the service never sees
    # half a file; a failure on the way leaves no stray copy behind.
    tmp_env="$(mktemp "${ENV_FILE}.XXXXXX")"
    trap 'rm -f -- "$tmp_env"' EXIT
    {
        echo "# Written by the s3upload AfterInstall hook; rewritten on every deployment."
        env_line AWS_REGION "$region"
        env_line CDPOC_STACK "$stack"
        env_line MONGODB_HOST "$host"
        env_line MONGODB_DB s3upload
        env_line MONGODB_USER s3upload
        env_line MONGODB_PASSWORD_PARAM "/$stack/mongodb/app-password"
        env_line APP_REVISION "$(revision)"
        env_line APP_PORT 80
        env_line LOG_FILE /var/log/s3upload/app.log
    } >"$tmp_env"
    chmod 0600 "$tmp_env"
    chown root:root "$tmp_env"
    mv -f -- "$tmp_env" "$ENV_FILE"
    log "wrote $ENV_FILE"
}

install_unit() {
    [[ -f "$UNIT_SOURCE" ]] || die "$UNIT_SOURCE is missing: did CodeDeploy copy systemd/?"
    mkdir -p "$UNIT_DIR"
    install -m 0644 "$UNIT_SOURCE" "$UNIT_DIR/$SERVICE"
    log "installed $UNIT_DIR/$SERVICE"
    systemctl daemon-reload
}

ensure_user
ensure_python
build_venv
mkdir -p "$(dirname "$ENV_FILE")"
write_env_file
install_unit
log "done"
