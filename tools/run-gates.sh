#!/usr/bin/env bash
# Run the quality gates (make targets), timed, in lanes that run side by side, and
# print a summary. Gates in one lane run in turn; the lanes run at the same time.
# Every gate runs even when another one failed, so one run shows every problem; the
# exit status is non-zero when any gate failed.
#
# The lanes are chosen so that no two gates share a server, a port or a lab: the
# integration tests and the Molecule scenarios use separate port ranges and lab roots,
# and the one `hosts` lab of the machine (network namespaces) is only ever used by
# the second lane (integration, then the Molecule scenarios that need it).
#
# Usage: tools/run-gates.sh LANE...    each LANE a quoted, space-separated gate list
#   e.g. tools/run-gates.sh "ruff ansible-lint unit molecule" "sanity integration molecule-hosts"
# Environment:
#   GATES_SERIAL=1   run every gate in turn, output streamed (one lane at a time)
#   GATES_LOG_DIR    where each gate's output goes (default .build/gates)
set -uo pipefail

make_cmd=${MAKE:-make}
log_dir=${GATES_LOG_DIR:-.build/gates}
mkdir -p "$log_dir"
rm -f "$log_dir"/*.log "$log_dir"/*.status

# run_gate GATE: run it, output to its log (or the terminal when serial), status to GATE.status.
run_gate() {
    local gate=$1 start=$SECONDS status=passed
    printf '==> gate %s started\n' "$gate"
    if [[ ${GATES_SERIAL:-0} == 1 ]]; then
        $make_cmd --no-print-directory "$gate" 2>&1 | tee "$log_dir/$gate.log"
        ((PIPESTATUS[0] == 0)) || status=FAILED
    else
        $make_cmd --no-print-directory "$gate" >"$log_dir/$gate.log" 2>&1 || status=FAILED
    fi
    local elapsed=$((SECONDS - start))
    printf '%s %d\n' "$status" "$elapsed" >"$log_dir/$gate.status"
    printf '==> gate %s %s in %dm%02ds\n' "$gate" "$status" $((elapsed / 60)) $((elapsed % 60))
}

run_lane() {
    local gate
    for gate in $1; do
        run_gate "$gate"
    done
}

total_start=$SECONDS
pids=()
for lane in "$@"; do
    if [[ ${GATES_SERIAL:-0} == 1 ]]; then
        run_lane "$lane"
    else
        run_lane "$lane" &
        pids+=($!)
    fi
done
for pid in "${pids[@]}"; do
    wait "$pid"
done
total=$((SECONDS - total_start))

# Output of each gate, passed ones in short, failed ones in full and last (CI shows the end).
gates=()
for lane in "$@"; do
    for gate in $lane; do gates+=("$gate"); done
done
failed=()
if [[ ${GATES_SERIAL:-0} != 1 ]]; then
    for gate in "${gates[@]}"; do
        read -r status _ <"$log_dir/$gate.status"
        if [[ $status == passed ]]; then
            printf '\n==> %s (passed; last lines of %s)\n' "$gate" "$log_dir/$gate.log"
            tail -n 5 "$log_dir/$gate.log"
        fi
    done
fi
for gate in "${gates[@]}"; do
    read -r status _ <"$log_dir/$gate.status"
    [[ $status == passed ]] && continue
    failed+=("$gate")
    if [[ ${GATES_SERIAL:-0} != 1 ]]; then
        printf '\n==> %s FAILED: last 400 lines of %s\n' "$gate" "$log_dir/$gate.log"
        tail -n 400 "$log_dir/$gate.log"
    fi
done

printf '\n%-16s %-7s %5s\n' gate status time
for gate in "${gates[@]}"; do
    read -r status elapsed <"$log_dir/$gate.status"
    printf '%-16s %-7s %4ds\n' "$gate" "$status" "$elapsed"
done
printf '%-16s %-7s %4ds  (wall time; lanes: %s)\n' total "$([[ ${#failed[@]} -eq 0 ]] && echo passed || echo FAILED)" \
    "$total" "$(printf '[%s] ' "$@")"

if ((${#failed[@]})); then
    printf '\nfailed gates: %s\n' "${failed[*]}" >&2
    exit 1
fi
