#!/bin/bash
# Two rfft.generate processes side by side: torch's default threads against one thread each
# Usage: bash bench/side_by_side_threads.sh   (about 9 min on a 2-core CPU; writes bench_out/side_by_side/)
cd "$(dirname "$0")/.."
G="${PYTHON:-.venv/bin/python} -m rfft.generate --attempts 2 --overwrite"
t0=$(date +%s.%N); $G --out bench_out/side_by_side/alone > /dev/null 2>&1; t1=$(date +%s.%N)
echo "alone, default threads: $(echo "$t1 - $t0" | bc) s"
t0=$(date +%s.%N); $G --out bench_out/side_by_side/a > /dev/null 2>&1 & $G --out bench_out/side_by_side/b > /dev/null 2>&1 & wait; t1=$(date +%s.%N)
echo "two side by side, default threads: $(echo "$t1 - $t0" | bc) s"
t0=$(date +%s.%N); OMP_NUM_THREADS=1 $G --out bench_out/side_by_side/c > /dev/null 2>&1 & OMP_NUM_THREADS=1 $G --out bench_out/side_by_side/d > /dev/null 2>&1 & wait; t1=$(date +%s.%N)
echo "two side by side, OMP_NUM_THREADS=1: $(echo "$t1 - $t0" | bc) s"
${PYTHON:-.venv/bin/python} -c "import torch; print('torch default threads', torch.get_num_threads())"
