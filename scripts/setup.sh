#!/usr/bin/env bash
# Installs what flowgrad needs from Debian 12's packages (and nothing else), then
# configures the meson build directory. Safe to run again: it installs only what is missing.
#   bash scripts/setup.sh [--mpi] [BUILD_DIR]     (default: build)
#   bash scripts/setup.sh [--mpi] --packages-only (installs, configures nothing: for tests/fuzz/run.sh)
# --mpi (or FLOWGRAD_MPI_SETUP=1): also OpenMPI, for data-parallel training under mpirun;
# the build then requires it (-Dmpi=enabled). Without it, MPI is built only if already installed.
# FLOWGRAD_MESON_OPTIONS: more options for a new build directory's `meson setup`
# (.ci/run's sanitizer build: -Db_sanitize=address,undefined ...).
set -euo pipefail
cd "$(dirname "$0")/.."
mpi=${FLOWGRAD_MPI_SETUP:-}
build_dir=build
for arg in "$@"; do
  case $arg in
    --mpi) mpi=1 ;;
    -*) [[ $arg == --packages-only ]] && build_dir=$arg || { echo "setup.sh: unknown option '$arg'" >&2; exit 2; } ;;
    *) build_dir=$arg ;;
  esac
done

packages=(g++ meson ninja-build pkg-config cmake
          libxtensor-dev libxsimd-dev libxtensor-blas-dev libopenblas-dev doctest-dev
          zlib1g-dev libpng-dev nlohmann-json3-dev libcli11-dev
          dataset-fashion-mnist)
# Extra packages the caller wants too (CI adds python3-torch for the PyTorch cross-check).
read -r -a extra <<< "${FLOWGRAD_EXTRA_PACKAGES:-}"
packages+=("${extra[@]}")
[[ -n $mpi ]] && packages+=(libopenmpi-dev openmpi-bin)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

[[ $build_dir == --packages-only ]] && exit 0
read -r -a meson_options <<< "${FLOWGRAD_MESON_OPTIONS:-}"
[[ -n $mpi ]] && meson_options+=(-Dmpi=enabled)
if [[ ! -f $build_dir/build.ninja ]]; then
  meson setup "$build_dir" --buildtype=release "${meson_options[@]}" >/dev/null
elif [[ -n $mpi ]]; then
  meson configure "$build_dir" -Dmpi=enabled >/dev/null
fi
echo "setup: ready (build directory: $build_dir)"
