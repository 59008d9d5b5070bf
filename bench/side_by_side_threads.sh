#!/bin/bash
# Two rfft.generate processes side by side: torch's default threads against one thread each
# Usage: bash bench/side_by_side_threads.sh   (about 9 min on a 2-core CPU; writes bench_out/side_by_side/)
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
run() { env ${1:+OMP_NUM_THREADS=$1} "$PY" -m rfft.generate --attempts 2 --overwrite --out "bench_out/side_by_side/$2" > /dev/null 2>&1; }
timed() {  # timed LABEL COMMAND...: wall-clock seconds of the command
    local t0; t0=$(date +%s.%N); "${@:2}"; echo "$1: $(echo "$(date +%s.%N) - $t0" | bc) s"
}
pair() { run "$1" "$2_a" & run "$1" "$2_b" & wait; }
timed "alone, default threads" run "" alone
timed "two side by side, default threads" pair "" default
timed "two side by side, OMP_NUM_THREADS=1" pair 1 one
"$PY" -c "import torch; print('torch default threads', torch.get_num_threads())"
