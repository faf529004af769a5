#!/usr/bin/env bash
# ApplicationStart: retire the launch template's stub health server and start the application.
#
# The stub (cdpoc-stub.service) answers the ALB health check on port 80 until the first
# deployment; it must be stopped and disabled before s3upload can bind the port, and stay off
# after a reboot.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if unit_exists "$STUB_SERVICE"; then
    log "disabling and stopping $STUB_SERVICE"
    systemctl disable --now "$STUB_SERVICE"
else
    log "$STUB_SERVICE is not installed: nothing to disable"
fi

unit_exists "$SERVICE" || die "$SERVICE is not installed: AfterInstall did not complete"
log "enabling and (re)starting $SERVICE"
systemctl enable "$SERVICE"
# restart, not start: if the service is somehow still running it must pick up the new revision.
systemctl restart "$SERVICE"
log "done"
