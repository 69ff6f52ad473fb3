#!/bin/bash
# tests/io/npm_install.sh PREFIX NAME@VERSION...: installs npm packages that tests use as
# independent reference implementations into PREFIX/node_modules (inside the build tree),
# once: a package already there at that exact version is not fetched again. Concurrent
# callers (ctest -j) serialise on PREFIX/.lock. Needs node and npm (scripts/setup.sh).
set -euo pipefail
prefix=$1
shift
mkdir -p "$prefix"
exec 9>"$prefix/.lock"
flock 9
for spec in "$@"; do
  name=${spec%@*}
  version=${spec##*@}
  manifest="$prefix/node_modules/$name/package.json"
  if [ -f "$manifest" ] && node -e "process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)" \
       "$manifest" "$version"; then
    continue
  fi
  npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "$spec" >&2
done
