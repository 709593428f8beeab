#!/usr/bin/env bash
# Turns build.sh's progress (on stdin) into lines for a person on a first run:
# each binary with the time it took, and a heartbeat at least every
# PROGRESS_HEARTBEAT_SECONDS (30) through the long silences of a cold build.
# Go's module download lines are counted, not echoed; anything else (an
# error) passes through as it is. Kept out of build.sh, whose text keys the
# cache of built binaries.
set -uo pipefail
every=${PROGRESS_HEARTBEAT_SECONDS:-30}
start=$SECONDS current="" since=$SECONDS downloads=0 last=$SECONDS

fmt() { if (($1 >= 60)); then printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); else printf '%ds' "$1"; fi; }
say() { printf '[%6s] %s\n' "$(fmt $((SECONDS - start)))" "$1"; last=$SECONDS; }
heartbeat() {
  local extra=""
  ((downloads > 0)) && extra=" (modules downloaded: $downloads)"
  say "still building ${current:-(starting)}: $(fmt $((SECONDS - since))) so far$extra"
}
finish() {
  [ -n "$current" ] && say "built $current in $(fmt $((SECONDS - since)))"
  current=""
}

while :; do
  line=""
  # Counted lines (downloads) print nothing: the heartbeat is owed since the last line printed.
  wait=$((every - (SECONDS - last)))
  ((wait < 1)) && wait=1
  if IFS= read -r -t "$wait" line; then
    case $line in
      "  go build "*) finish; current=${line#  go build }; since=$SECONDS; say "building $current" ;;
      "go: downloading "*) downloads=$((downloads + 1)) ;;
      "Built in "*) finish; say "$line" ;;
      *) printf '%s\n' "$line"; last=$SECONDS ;;
    esac
    ((SECONDS - last >= every)) && heartbeat
  elif (($? > 128)); then
    heartbeat
  else
    [ -n "$line" ] && printf '%s\n' "$line"
    break
  fi
done
