# Sourced by scripts/run.sh and scripts/test.sh: when ccache is installed, every configure of
# theirs compiles through it (CMake reads CMAKE_CXX_COMPILER_LAUNCHER from the environment
# for a new build tree), with paths relative to the checkout so that worktrees and clones
# share hits. A no-op without ccache.
if command -v ccache >/dev/null 2>&1; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(pwd)}" CCACHE_NOHASHDIR=true
fi
