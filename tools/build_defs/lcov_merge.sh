#!/usr/bin/env bash
# Local stand-in for Bazel's remote coverage tools (a download), in both of their roles:
#   lcov merger (per test):  --coverage_dir=DIR --output_file=OUT ...: LCOV files in DIR -> OUT
#   report generator:        --reports_file=LIST --output_file=OUT ...: files in LIST -> OUT
# Both concatenate LCOV records; other flags (source filters, manifests) are ignored.
set -euo pipefail
coverage_dir="" reports="" output=""
for arg in "$@"; do
  case "$arg" in
    --coverage_dir=*) coverage_dir="${arg#*=}" ;;
    --reports_file=*) reports="${arg#*=}" ;;
    --output_file=*) output="${arg#*=}" ;;
  esac
done
if [[ -z "$output" ]]; then
  echo "lcov_merge: --output_file is required" >&2
  exit 1
fi
: >"$output"
if [[ -n "$coverage_dir" && -d "$coverage_dir" ]]; then
  find "$coverage_dir" -type f \( -name '*.dat' -o -name '*.info' \) -size +0 -print0 |
    sort -z | xargs -0 -r cat >>"$output"
fi
if [[ -n "$reports" && -f "$reports" ]]; then
  while IFS= read -r report; do
    if [[ -n "$report" && -s "$report" ]]; then
      cat "$report" >>"$output"
    fi
  done <"$reports"
fi
