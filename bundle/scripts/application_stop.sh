#!/usr/bin/env bash
# ApplicationStop: stop the running application before the new revision is installed.
#
# CodeDeploy runs this hook from the *previous* successful revision, so on the very first
# deployment it does not run at all, and after a failed deployment the service may be missing:
# both cases must succeed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

stop_app
log "done"
