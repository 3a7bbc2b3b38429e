#!/usr/bin/env bash
# The workflow's GPU path in one short call (at most 8 minutes), for a lent GPU machine; everything lands in $OUT:
#   1. tiny_world   the tiny world (.test/config/config.yaml) end to end with device auto, so pretraining,
#                   embedding and fine-tuning run on CUDA: results.csv, benchmark files, logs
#   2. throughput   bench/train_throughput.py --quick on CUDA (pretraining images/s, JSON)
#   3. torchrun     one pretraining job under torchrun with one process on the GPU, on the tiny world's inputs
# summary.tsv has one line per step: name, exit status, seconds (124: its time limit was hit); environment.txt
# the GPU, torch and CUDA. A failed step does not stop the next.
#
#   OUT=/tmp/gpu_check bash bench/gpu_check.sh            # on the GPU machine, from the repository root
#   OUT=/tmp/gpu_check bash bench/gpu_check.sh --cpu-dry  # checks the script on a CPU: plans the tiny world
#                                                         # (snakemake -n), builds only its inputs, and runs the
#                                                         # throughput and torchrun steps with tiny budgets
set -uo pipefail

OUT=${OUT:?set OUT to the folder that receives the results}
DRY=false
[[ "${1:-}" == "--cpu-dry" ]] && DRY=true
PY=${PYTHON:-python}
[[ -x .venv/bin/python && -z "${PYTHON:-}" ]] && PY=.venv/bin/python
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$(dirname "$(command -v "$PY")"):$PATH"
WORK=$(mktemp -d)
mkdir -p "$OUT"
printf 'step\trc\tseconds\n' >"$OUT/summary.tsv"

step() { # step NAME LIMIT_S COMMAND...: run it with a time limit, log it, record rc and seconds
	local name=$1 limit=$2 start rc
	shift 2
	start=$(date +%s)
	timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
	rc=$?
	printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - start))" | tee -a "$OUT/summary.tsv"
}

{
	date -u
	nvidia-smi 2>&1 | head -20
	"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
	lscpu | grep -m1 'Model name'
	nproc
} >"$OUT/environment.txt" 2>&1
if ! "$PY" -c 'import torch, snakemake, geocontrast' 2>>"$OUT/environment.txt"; then
	echo "torch, snakemake or geocontrast is not importable with $PY: nothing measured" | tee -a "$OUT/environment.txt"
	exit 1
fi
if ! $DRY && ! "$PY" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
	echo "no CUDA device visible to torch: run with --cpu-dry to check the script only" | tee -a "$OUT/environment.txt"
	exit 1
fi

# 1. The tiny world; its inputs feed step 3.
SNAKEMAKE=("$PY" -m snakemake -s workflow/Snakefile --directory "$WORK/tiny" --configfile .test/config/config.yaml)
RESULTS="$WORK/tiny/results/tiny"
INPUTS=(results/tiny/cache/32px.npy results/tiny/manifest.parquet results/tiny/replicates/0/splits.parquet)
if $DRY; then
	step tiny_world 120 "${SNAKEMAKE[@]}" --cores 2 -n
	step tiny_inputs 180 "${SNAKEMAKE[@]}" --cores 2 "${INPUTS[@]}"
else
	step tiny_world 270 "${SNAKEMAKE[@]}" --cores "$(nproc)"
	cp "$RESULTS/results.csv" "$RESULTS/results_summary.txt" "$OUT/" 2>/dev/null
	cp -r "$WORK/tiny/results/benchmarks" "$OUT/benchmarks" 2>/dev/null
	mkdir -p "$OUT/logs" && cp "$WORK"/tiny/results/logs/tiny/{pretrain,evaluate_frozen,finetune}_* "$OUT/logs/" 2>/dev/null
fi

# 2. Pretraining throughput (cnn5, every strategy; with CUDA the benchmark adds its GPU encoders).
if $DRY; then
	step throughput 240 "$PY" bench/train_throughput.py --quick --images 512 --reps 1 --strategies augmented \
		--out "$OUT/train_throughput.json"
else
	step throughput 120 "$PY" bench/train_throughput.py --quick --threads 8 --out "$OUT/train_throughput.json"
fi

# 3. One pretraining job under torchrun, one process (on the GPU unless --cpu-dry).
step torchrun 60 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m geocontrast.train \
	--strategy augmented --cache "$RESULTS/cache/32px.npy" --manifest "$RESULTS/manifest.parquet" \
	--splits "$RESULTS/replicates/0/splits.parquet" --out-dir "$WORK/torchrun" \
	--params-json '{"epochs": 1, "steps_per_epoch": 4, "batch_size": 32, "encoder": "cnn5", "resolution": 32}'
cp "$WORK/torchrun/metrics.jsonl" "$OUT/torchrun_metrics.jsonl" 2>/dev/null
rm -rf "$WORK"
cat "$OUT/summary.tsv"
