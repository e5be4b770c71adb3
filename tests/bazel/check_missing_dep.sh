#!/usr/bin/env bash
# Proves that Bazel test targets see only their declared dependencies.
#
# //tests/bazel:test_config_missing_dep is //tests:test_config without "//coseg_tf", and
# //tests/bazel:layout_check_missing_dep is //tests/bazel:layout_check without
# "//coseg_tf:export" (both tagged manual, so `bazel test //...` skips them). Each must fail
# with the import of the missing package, while the same tests with their deps pass. Outside
# Bazel, `.venv/bin/python -c "import coseg_tf.export"` works (editable install), so a pass
# here would mean Bazel's interpreter leaks the source tree.
#
# Usage: tests/bazel/check_missing_dep.sh   (from anywhere in the repo; needs `make install`)
set -uo pipefail
cd "$(dirname "$0")/../.."
BAZEL=${BAZEL:-bazel}
status=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# The controls: the same test modules with their deps declared.
if ! "$BAZEL" test //tests:test_config //tests/bazel:layout_check; then
  echo "check_missing_dep: the controls failed; nothing is proven" >&2
  exit 1
fi

expect_import_failure() {
  local target=$1 module=$2
  local log
  log="$("$BAZEL" info bazel-testlogs 2>/dev/null)/${target#//}"
  log="${log/://}/test.log"
  # Bazel's own output reports the expected failure as FAIL; keep it out of the CI log.
  if "$BAZEL" test --test_output=summary "$target" >"$out" 2>&1; then
    cat "$out" >&2
    echo "FAIL: $target passed without its dependency: the project leaks into Bazel's tests" >&2
    status=1
  elif grep -q "ModuleNotFoundError: No module named '$module'" "$log"; then
    echo "ok: $target fails with: No module named '$module'"
  else
    cat "$out" >&2
    echo "FAIL: $target failed, but not on the import of $module (see $log)" >&2
    status=1
  fi
}

expect_import_failure //tests/bazel:test_config_missing_dep coseg_tf
expect_import_failure //tests/bazel:layout_check_missing_dep coseg_tf.export

if [[ $status -eq 0 ]]; then
  echo "check_missing_dep: 2 passed, 0 failed"
else
  echo "check_missing_dep: a missing dependency went unnoticed" >&2
fi
exit $status
