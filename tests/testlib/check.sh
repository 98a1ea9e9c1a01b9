# shellcheck shell=bash
# Check helpers of the shell tests (tests/*_check.sh source this file): pass/fail counters,
# expect (equal strings), expect_match (glob), check (a command succeeds) and check_summary, which
# prints the "NAME: N passed, N failed" line CI reads and fails when a check failed. Failure
# messages start with the name of the script that sourced this file.

check_passed=0
check_failed=0
check_script=$(basename "$0")

# check_fail LINE...: counts a failure and prints the lines, the first after the script's name.
check_fail() {
    check_failed=$((check_failed + 1))
    printf '%s: %s\n' "$check_script" "$1" >&2
    shift
    (($#)) && printf '%s\n' "$@" >&2
    return 0
}

expect() { # expect DESCRIPTION ACTUAL EXPECTED
    if [[ $2 == "$3" ]]; then
        check_passed=$((check_passed + 1))
    else
        check_fail "$1" "  got:      $2" "  expected: $3"
    fi
}

expect_match() { # expect_match DESCRIPTION ACTUAL GLOB
    # shellcheck disable=SC2053 # the right side is a glob on purpose
    if [[ $2 == $3 ]]; then
        check_passed=$((check_passed + 1))
    else
        check_fail "$1" "  got:     $2" "  pattern: $3"
    fi
}

check() { # check DESCRIPTION COMMAND...
    local description=$1
    shift
    if "$@"; then
        check_passed=$((check_passed + 1))
    else
        check_fail "check failed: $description"
    fi
}

check_summary() { # check_summary NAME: the summary line; status 0 when nothing failed
    echo "$1: $check_passed passed, $check_failed failed"
    [[ $check_failed -eq 0 ]]
}
