#!/usr/bin/env bash
# `vadlab reproduce TABLE --executor local` as a user meets it (issue 27, "Must show"): a two-row table on synthetic
# `tiny` at the `smoke` preset (5 epochs a run), each run a submitit job of the local executor (a real subprocess);
# the job training row B is killed with SIGKILL after B's first checkpoint (a lost node), the command reports it and
# writes no table; the same command again reuses A, resumes B from its checkpoint and writes the table.
# usage: tools/executor_local_demo.sh [WORKDIR]    (default: a new temporary folder, kept and printed)
set -uo pipefail
VADLAB=${VADLAB:-$PWD/.venv/bin/vadlab}
WORK=${1:-$(mktemp -d /tmp/vadlab-executor-XXXX)}
mkdir -p "$WORK" && cd "$WORK" || exit 2
cat > tiny_table.toml <<'TOML'
title = "tiny table: MNAD-P with and without memory"
paper = "Park, Noh and Ham, Learning Memory-guided Normality for Anomaly Detection, CVPR 2020"
table = "Table 2"
section = "Sec. 4.3"
dataset = "synthetic:tiny"
seeds = [0]
paper_on = "UCSD Ped2 (full)"

[[rows]]
id = "A"
label = "w/o memory"
method = "mnad_pred"
ablation = "no_memory"
set = { epochs = 5 }
paper = 94.3

[[rows]]
id = "B"
label = "with memory"
method = "mnad_pred"
set = { epochs = 5 }
paper = 97.0
TOML
args=(reproduce tiny_table.toml --preset smoke --data data/tiny --runs runs --out reports --executor local)
echo "\$ vadlab ${args[*]}   (then SIGKILL to B's job after its first checkpoint)"
"$VADLAB" "${args[@]}" > first.out 2> first.err &
cmd=$!
until [ -f runs/tiny_table/B/seed0/checkpoint.pt ] || ! kill -0 $cmd 2>/dev/null; do sleep 0.05; done
sleep 0.3
task=$(pgrep -f "submitit.core._submit.*$WORK" | head -1)
echo "killing job task $task (B, $(python3 -c "import json;print(len(json.load(open('runs/tiny_table/B/seed0/history.json'))))" 2>/dev/null || echo '?') epochs done)"
kill -KILL "$task"
wait $cmd; echo "exit status: $?"
tail -n 4 first.out; tail -n 3 first.err
echo; echo "\$ vadlab ${args[*]}   (again)"
"$VADLAB" "${args[@]}" > second.out 2> second.err; echo "exit status: $?"
cat second.out; tail -n 3 second.err
echo; echo "reports/tiny_table/table.md:"; cat reports/tiny_table/table.md
echo; echo "(work folder: $WORK)"
