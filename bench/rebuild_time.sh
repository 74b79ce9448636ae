#!/usr/bin/env bash
# How long a student waits after adding an op family: with BUILD_DIR up to date, adds
# docs/COURSEWORK.md's exercise-1 solution to the library (autograd/softsign.hpp/.cpp,
# listed in autograd/meson.build) and its test to the autograd suite (its own file, listed
# in tests/meson.build), times `ninja`, runs the new test, then removes it all again.
#   bash bench/rebuild_time.sh [BUILD_DIR]     (default build)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
for f in autograd/meson.build tests/meson.build; do
  git diff --quiet -- "$f" || { echo "rebuild_time: $f has local changes; commit or stash them first"; exit 1; }
done
[[ ! -e autograd/softsign.hpp ]] || { echo "rebuild_time: autograd/softsign.hpp exists already"; exit 1; }

restore() {
  rm -f autograd/softsign.hpp autograd/softsign.cpp tests/autograd/test_softsign.cpp
  git checkout -q -- autograd/meson.build tests/meson.build
}
trap restore EXIT

echo "rebuild_time: bringing $build_dir up to date first (not timed)"
ninja -C "$build_dir" >/dev/null

# The exercise's files, exactly as the doc gives them.
python3 - <<'EOF'
import re
doc = open("docs/COURSEWORK.md").read()
blocks = re.findall(r"<!-- doc-test: (.*?) -->\n```cpp\n(.*?)```", doc, re.S)
files = {"autograd/softsign.hpp": None, "autograd/softsign.cpp": None, "tests/autograd/test_softsign.cpp": None}
for note, code in blocks:
    if note.startswith("file autograd/softsign."):
        files[note.split()[1]] = code
    elif note.startswith("doctest") and '#include "autograd/softsign.hpp"' in code and files["tests/autograd/test_softsign.cpp"] is None:
        files["tests/autograd/test_softsign.cpp"] = code
for path, code in files.items():
    assert code, f"docs/COURSEWORK.md has no block for {path}"
    open(path, "w").write(code)
EOF
sed -i "s|  'shape.cpp',|  'shape.cpp',\n  'softsign.cpp',|; s|  'shape.hpp',|  'shape.hpp',\n  'softsign.hpp',|" autograd/meson.build
sed -i "s|    'autograd/test_scalars.cpp',|    'autograd/test_scalars.cpp',\n    'autograd/test_softsign.cpp',|" tests/meson.build

start=$(date +%s.%N)
ninja -C "$build_dir" >"$build_dir/rebuild_time.log" 2>&1 || { tail -30 "$build_dir/rebuild_time.log"; exit 1; }
end=$(date +%s.%N)
steps=$(grep -c '^\[' "$build_dir/rebuild_time.log" || true)
"$build_dir/tests/test_autograd" -tc='softsign*' | tail -1
printf 'rebuild after adding an op family: %.1f s wall (%s ninja steps) on %s cores\n' \
  "$(awk "BEGIN { print $end - $start }")" "$steps" "$(nproc)"
restore
trap - EXIT
echo "rebuild_time: removed it again; rebuilding $build_dir (not timed)"
ninja -C "$build_dir" >/dev/null
