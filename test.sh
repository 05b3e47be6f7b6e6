#!/usr/bin/env bash
# The whole test suite, as README.md gives it and .ci/run calls it. Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")"
bash deploy/install-test-deps.sh
log="$(mktemp)"
status=0
dotnet test MoeCluster.sln -c Release --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log" || status=$?
# One closing line over every test project ("N passed, N failed"), as CI reads it.
passed=$(awk '/^ +Passed: [0-9]+$/ {s+=$2} END {print s+0}' "$log")
failed=$(awk '/^ +Failed: [0-9]+$/ {s+=$2} END {print s+0}' "$log")
# CI keeps only the tail of the output, so the failures are repeated here, each with its message.
if [ "$failed" -gt 0 ]; then
  echo "failed tests:"
  awk '/^ +Failed [A-Za-z_.]+/ {show=12} show>0 {print; show--}' "$log" | cut -c1-400
fi
rm -f "$log"
echo "tests: $passed passed, $failed failed"
exit "$status"
