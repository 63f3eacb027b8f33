#!/usr/bin/env bash
# Runs the writer tests (tests/test_callback.py, tests/test_summary_op.py)
# against one TensorFlow/Keras pair in a fresh virtual environment, to check
# the range setup.py declares. Not part of the pytest suite: it downloads
# several hundred MB. Run it from anywhere; it works on this checkout.
#
#   tools/check_tf_range.sh TF_VERSION [KERAS_SPEC] [--force-protobuf]
#   tools/check_tf_range.sh          # both ends of setup.py's TF_RANGE
#
#   without arguments: the newest patch release of the range's lowest minor
#                   version and the newest release in the range, one after
#                   the other, each with the keras pip picks; then a summary
#   TF_VERSION      a tensorflow-cpu release, e.g. 2.16.2 (oldest) or 2.21.0
#   KERAS_SPEC      a pip specifier for keras, e.g. "==3.3.3"; default: what
#                   pip picks for that TensorFlow
#   --force-protobuf
#                   when pip cannot install this package next to that
#                   TensorFlow (a dependency conflict), install TensorFlow
#                   first (it brings its TensorBoard) and then, without
#                   dependency checks, the protobuf this package needs, to
#                   see whether the code itself would work there.
#
# VENV (env) picks the venv folder (default /tmp/tbdn-tf-TF_VERSION); REF
# (env) the commit to test (default HEAD).
# Exit status: 0 tests passed, 1 tests failed, 2 pip could not install the
# declared requirements (and --force-protobuf was not given); else pytest's.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)

# The oldest and newest tensorflow-cpu releases in setup.py's TF_RANGE.
range_ends() {
    local range versions
    range=$(grep -o '^TF_RANGE = "[^"]*"' "$root/setup.py" | cut -d'"' -f2)
    versions=$(python3 -m pip index versions tensorflow-cpu 2>/dev/null \
        | sed -n 's/^Available versions: //p')
    python3 - "$range" "$versions" <<'EOF'
import sys
from packaging.specifiers import SpecifierSet
from packaging.version import Version

spec = SpecifierSet(sys.argv[1])
inside = sorted(v for v in map(Version, sys.argv[2].split(", ")) if v in spec)
lowest = inside[0].release[:2]
print(max(v for v in inside if v.release[:2] == lowest), inside[-1])
EOF
}

if (($# == 0)); then
    read -r oldest newest < <(range_ends)
    [[ -n ${newest:-} ]] || { echo "no tensorflow-cpu release found in range"; exit 2; }
    "$0" "$oldest"
    oldest_status=$?
    "$0" "$newest"
    newest_status=$?
    echo "== oldest tensorflow-cpu $oldest: exit $oldest_status;" \
        "newest $newest: exit $newest_status (0 pass, 1 tests fail, 2 no install)"
    exit $((oldest_status > newest_status ? oldest_status : newest_status))
fi
tf_version=$1
shift
keras_spec=""
force=0
for arg in "$@"; do
    case $arg in
    --force-protobuf) force=1 ;;
    *) keras_spec=$arg ;;
    esac
done
venv=${VENV:-/tmp/tbdn-tf-$tf_version}
keras_req=()
[[ -n $keras_spec ]] && keras_req=("keras$keras_spec")
# Read the package's own requirement on protobuf, so this script does not
# keep a second copy of it.
protobuf_req=$(grep -o '"protobuf[<>=~!][^"]*"' "$root/setup.py" | head -1 | tr -d '"')

# A copy of the checkout outside the working tree: pip builds in-tree and
# pytest would write caches there.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The committed tree (REF, default HEAD): what others get, without anyone's
# uncommitted edits.
git -C "$root" archive "${REF:-HEAD}" | tar -C "$work" -xf -

python3 -m venv --clear "$venv"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)
echo "== venv $venv: tensorflow-cpu==$tf_version ${keras_req[*]} + tb_deadneurons"
if ! "${pip[@]}" "tensorflow-cpu==$tf_version" "${keras_req[@]}" pytest werkzeug \
    "$work"; then
    echo "== INSTALL FAILED: tensorflow-cpu==$tf_version cannot be installed" \
        "with this package's requirements; pip's reason:"
    "${pip[@]:0:5}" --dry-run "tensorflow-cpu==$tf_version" "${keras_req[@]}" \
        "$work" 2>&1 | grep -A8 "conflict is caused by"
    ((force)) || exit 2
    echo "== --force-protobuf: TensorFlow first, then $protobuf_req without checks"
    "${pip[@]}" "tensorflow-cpu==$tf_version" "${keras_req[@]}" pytest werkzeug \
        || exit 2
    "${pip[@]}" --no-deps "$protobuf_req" || exit 2
    "${pip[@]}" --no-deps "$work" || exit 2
fi

"$venv/bin/python" - <<'EOF'
from importlib import metadata

for name in ("tensorflow-cpu", "keras", "tensorboard", "protobuf", "numpy"):
    print(f"== {name} {metadata.version(name)}")
EOF

cd "$work" || exit 2
"$venv/bin/python" -m pytest -q -p no:cacheprovider \
    tests/test_callback.py tests/test_summary_op.py
