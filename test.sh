#!/usr/bin/env bash
# The whole test suite, as README.md gives it and .ci/run calls it. Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")"
bash deploy/install-test-deps.sh
dotnet test MoeCluster.sln -c Release --logger "console;verbosity=normal" "$@"
