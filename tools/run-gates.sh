#!/usr/bin/env bash
# Run each quality gate (a make target) in turn, time it, and print a summary.
# Every gate runs even when an earlier one failed, so one run shows every
# problem; the exit status is non-zero when any gate failed.
#
# Usage: tools/run-gates.sh GATE...   (make test calls it with the gate list)
set -uo pipefail

make_cmd=${MAKE:-make}
summary=()
failed=()
total_start=$SECONDS

for gate in "$@"; do
    printf '\n==> gate %s\n' "$gate"
    start=$SECONDS
    if $make_cmd --no-print-directory "$gate"; then
        status=passed
    else
        status=FAILED
        failed+=("$gate")
    fi
    elapsed=$((SECONDS - start))
    printf '==> gate %s %s in %dm%02ds\n' "$gate" "$status" $((elapsed / 60)) $((elapsed % 60))
    summary+=("$(printf '%-14s %-7s %4ds' "$gate" "$status" "$elapsed")")
done

total=$((SECONDS - total_start))
printf '\n%-14s %-7s %5s\n' gate status time
printf '%s\n' "${summary[@]}"
printf '%-14s %-7s %4ds\n' total "$([[ ${#failed[@]} -eq 0 ]] && echo passed || echo FAILED)" "$total"

if ((${#failed[@]})); then
    printf '\nfailed gates: %s\n' "${failed[*]}" >&2
    exit 1
fi
