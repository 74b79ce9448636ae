#!/usr/bin/env bash
# Installs what flowgrad needs from Debian 12's packages (and nothing else), then
# configures the meson build directory. Safe to run again: it installs only what is missing.
#   bash scripts/setup.sh [BUILD_DIR]     (default: build)
#   bash scripts/setup.sh --packages-only (installs, configures nothing: for tests/fuzz/run.sh)
# FLOWGRAD_MESON_OPTIONS: more options for a new build directory's `meson setup`
# (.ci/run's sanitizer build: -Db_sanitize=address,undefined ...).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}

packages=(g++ meson ninja-build pkg-config cmake
          libxtensor-dev libxsimd-dev libxtensor-blas-dev libopenblas-dev doctest-dev
          zlib1g-dev libpng-dev nlohmann-json3-dev libcli11-dev
          dataset-fashion-mnist)
# Extra packages the caller wants too (CI adds python3-torch for the PyTorch cross-check).
read -r -a extra <<< "${FLOWGRAD_EXTRA_PACKAGES:-}"
packages+=("${extra[@]}")

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
if [[ ! -f $build_dir/build.ninja ]]; then
  meson setup "$build_dir" --buildtype=release "${meson_options[@]}" >/dev/null
fi
echo "setup: ready (build directory: $build_dir)"
