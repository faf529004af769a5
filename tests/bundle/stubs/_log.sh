#!/usr/bin/env bash
# Shared by the command stubs: append "<command> <args>" to $STUB_LOG, one call per line.
stub_log() {
    printf '%s\n' "$*" >>"${STUB_LOG:?STUB_LOG must be set}"
}
