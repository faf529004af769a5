#!/usr/bin/env bash
# ValidateService: wait until the application reports healthy on localhost, or fail the
# deployment (which, with auto-rollback, puts the previous revision back).
#
# /health answers 200 only when MongoDB answers a ping, which is also what the ALB checks.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

readonly TIMEOUT="${CDPOC_VALIDATE_TIMEOUT:-120}"
readonly INTERVAL="${CDPOC_VALIDATE_INTERVAL:-2}"
readonly URL="http://127.0.0.1:${APP_PORT:-80}/health"

# What an operator needs to see in the deployment log when the service did not come up.
show_diagnostics() {
    systemctl status --no-pager --lines=0 "$SERVICE" || true
    journalctl --unit "$SERVICE" --no-pager --lines=40 || true
}

log "waiting up to ${TIMEOUT}s for $URL"
deadline=$((SECONDS + TIMEOUT))
attempts=0
while true; do
    attempts=$((attempts + 1))
    if body="$(curl -fsS --max-time 3 "$URL" 2>&1)"; then
        log "healthy after $attempts attempt(s): $body"
        exit 0
    fi
    if ((SECONDS >= deadline)); then
        log "ERROR: not healthy after ${TIMEOUT}s ($attempts attempts); last answer: $body"
        show_diagnostics
        exit 1
    fi
    sleep "$INTERVAL"
done
