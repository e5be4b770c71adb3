#!/usr/bin/env bash
# Local stand-in for Bazel's remote coverage tools (which it would download): merges the
# per-test LCOV reports listed in --reports_file into --output_file by concatenation.
set -euo pipefail
reports="" output=""
for arg in "$@"; do
  case "$arg" in
    --reports_file=*) reports="${arg#*=}" ;;
    --output_file=*) output="${arg#*=}" ;;
  esac
done
if [[ -z "$output" ]]; then
  echo "coverage_report_generator: --output_file is required" >&2
  exit 1
fi
: >"$output"
if [[ -n "$reports" && -f "$reports" ]]; then
  while IFS= read -r report; do
    if [[ -n "$report" && -s "$report" ]]; then
      cat "$report" >>"$output"
    fi
  done <"$reports"
fi
