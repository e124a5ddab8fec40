# Sourced by the command-line tools' tests (test_cli.sh, test_compare_cli.sh): a scratch folder
# $tmp removed on exit, the counts of checks passed and failed, expect, and the closing summary.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
passed=0

# expect STATUS PATTERN -- COMMAND...: runs COMMAND and checks its exit status and that stdout
# (status 0) or stderr (otherwise) matches PATTERN, a basic regular expression (grep's). A hang
# (e.g. a pyramid of millions of levels) fails after 120 s rather than waits.
expect() {
  local status="$1" pattern="$2"; shift 3
  local out err code
  out=$(timeout 120 "$@" 2>"$tmp/stderr"); code=$?
  err=$(cat "$tmp/stderr")
  if [ "$code" -ne "$status" ] || { [ "$status" -eq 0 ] && ! grep -q -- "$pattern" <<<"$out"; } ||
     { [ "$status" -ne 0 ] && ! grep -q -- "$pattern" <<<"$err"; }; then
    echo "FAIL: $* -> exit $code (want $status, '$pattern')"; echo "  stdout: ${out:0:300}"; echo "  stderr: $err"
    failures=$((failures + 1))
  else
    passed=$((passed + 1))
  fi
}

# The last command of a test: prints the counts, and its status is the test's (0 when none failed).
summary() {
  echo "$passed passed, $failures failed"
  [ "$failures" -eq 0 ]
}
