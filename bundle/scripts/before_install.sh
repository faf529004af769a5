#!/usr/bin/env bash
# BeforeInstall: leave an empty /opt/s3upload for CodeDeploy to copy the revision into.
#
# The old virtualenv and any file a previous revision left behind go too, so the new revision
# runs on exactly what it ships and what AfterInstall builds.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# ApplicationStop came from the previous revision (or did not run at all): make sure nothing is
# still running from the directory we are about to delete.
stop_app

# A guard against a mistyped variable ever turning this into `rm -rf /`.
[[ "$APP_DIR" == */opt/s3upload ]] || die "refusing to clean unexpected directory '$APP_DIR'"

if [[ -e "$APP_DIR" ]]; then
    log "removing $APP_DIR"
    rm -rf -- "$APP_DIR"
else
    log "$APP_DIR does not exist: nothing to clean"
fi
log "done"
