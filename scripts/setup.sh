#!/usr/bin/env bash
# Installs the Debian packages prune needs to build, test, benchmark and run its examples.
# Idempotent: installs only what is missing. As root it runs apt-get; otherwise it prints
# the exact apt-get line to run and exits 2.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libeigen3-dev xtensor-dev catch2 libbenchmark-dev
  nlohmann-json3-dev libcli11-dev
  libopenblas-dev libopenblas0-pthread
  libtorch-dev python3-torch python3-numpy python3-scipy
  wordnet-base
  clang libclang-rt-14-dev
  librsvg2-bin
  nodejs
  mpich libmpich-dev
)
# MPICH (not Open MPI): `mpirun -np 2` works as root and with more ranks than cores without
# any environment or flag, and a binary not started by mpirun never initialises MPI
# (docs/distributed.md says why).
# npm (the tests install npm reference implementations, e.g. @huggingface/gguf and Hugging
# Face's tokenizers, into the build tree): Debian's package, unless a node distribution that
# bundles npm is installed.
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present" >&2
  exit 0
fi

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages; run as root:" >&2
  echo "  apt-get update && $line" >&2
  exit 2
fi

echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends "${missing[@]}"
