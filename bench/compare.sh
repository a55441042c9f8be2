#!/usr/bin/env bash
# Runs the Rust benchmark (`trainer bench`) and both PyTorch references on the same
# MNIST files, one after the other, and prints their numbers side by side with the
# ratios. Installs PyTorch into bench/.venv first if it is missing (pip; the PyPI wheel
# pulls CUDA libraries, ~5 GB; it serves this benchmark only, never the tests).
#
#   bench/compare.sh [--data-dir DIR] [--epochs N] [--cnn-epochs N] [--skip-reference] [--skip-cnn]
#
# The second table sets the CNN (configs/mnist-cnn.json, --cnn-epochs epochs, default
# 1) beside the same network in preloaded PyTorch (bench/pytorch_cnn.py) on 2 threads
# (passive and spinning) and 1.
#
# PyTorch's OpenMP threads spin while they wait; on a 2-core machine shared with
# anything else that slows it down badly, so the references run with
# OMP_WAIT_POLICY=PASSIVE. On an otherwise idle machine spinning is faster, so the
# preloaded reference also runs with OpenMP's default, and the table shows both.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
data_dir="${MNIST_DATA_DIR:-../shared/data/mnist}"
epochs=5
cnn_epochs=1
reference=1
cnn=1
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) data_dir="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --cnn-epochs) cnn_epochs="$2"; shift 2 ;;
    --skip-reference) reference=0; shift ;;
    --skip-cnn) cnn=0; shift ;;
    *) echo "error: unknown argument $1; use --data-dir DIR, --epochs N, --cnn-epochs N, --skip-reference, --skip-cnn" >&2; exit 2 ;;
  esac
done
[ -d "$data_dir" ] || { echo "error: no MNIST directory $data_dir; pass --data-dir DIR" >&2; exit 1; }

venv="$root/bench/.venv"
if ! "$venv/bin/python" -c 'import torch, torchvision, numpy, psutil, safetensors' 2>/dev/null; then
  echo "installing torch, torchvision, numpy, psutil and safetensors into $venv ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch torchvision numpy psutil safetensors
fi

echo "building the trainer (release) ..." >&2
cargo build --release -p trainer --quiet
# Run the binary itself: `cargo run` execs it in cargo's own process, whose start-up
# would count as the trainer's.
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
trainer="$target_dir/release/trainer"

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT

# Runs one benchmark; its last stdout line (the JSON) goes to $results/<name>.json.
# On failure, says which one failed and shows the end of its stderr.
measure() {
  local name="$1"; shift
  echo "running $name ..." >&2
  if ! "$@" > "$results/$name.out" 2> "$results/$name.err"; then
    echo "error: $name failed:" >&2
    tail -n 5 "$results/$name.err" >&2
    exit 1
  fi
  tail -n 1 "$results/$name.out" > "$results/$name.json"
}

measure burn "$trainer" bench --data-dir "$data_dir" --epochs "$epochs"
# The preloaded baseline runs twice: with passive OpenMP threads, as advised for a
# shared 2-core machine, and with OpenMP's default (spinning) threads, which on an
# otherwise idle machine is PyTorch's fastest; the table shows both.
measure fast env OMP_WAIT_POLICY=PASSIVE "$venv/bin/python" bench/pytorch_fast.py --data-dir "$data_dir" --epochs "$epochs"
measure fast_spin env -u OMP_WAIT_POLICY "$venv/bin/python" bench/pytorch_fast.py --data-dir "$data_dir" --epochs "$epochs"
# For a network this small one thread has trained faster than two here.
measure fast_one env OMP_WAIT_POLICY=PASSIVE "$venv/bin/python" bench/pytorch_fast.py --data-dir "$data_dir" --epochs "$epochs" --threads 1
if [ "$reference" = 1 ]; then
  measure reference env OMP_WAIT_POLICY=PASSIVE "$venv/bin/python" bench/pytorch_reference.py --data-dir "$data_dir" --epochs "$epochs"
fi
if [ "$cnn" = 1 ]; then
  measure burn_cnn "$trainer" bench --config configs/mnist-cnn.json --data-dir "$data_dir" --epochs "$cnn_epochs"
  measure cnn_two env OMP_WAIT_POLICY=PASSIVE "$venv/bin/python" bench/pytorch_cnn.py --data-dir "$data_dir" --epochs "$cnn_epochs" --threads 2
  measure cnn_two_spin "$venv/bin/python" bench/pytorch_cnn.py --data-dir "$data_dir" --epochs "$cnn_epochs" --threads 2
  measure cnn_one env OMP_WAIT_POLICY=PASSIVE "$venv/bin/python" bench/pytorch_cnn.py --data-dir "$data_dir" --epochs "$cnn_epochs" --threads 1
fi

"$venv/bin/python" - "$results" <<'EOF'
import json, os, platform, sys

results = sys.argv[1]
runs = {}
for name in ("burn", "fast", "fast_spin", "fast_one", "reference", "burn_cnn", "cnn_two", "cnn_two_spin", "cnn_one"):
    path = os.path.join(results, name + ".json")
    if os.path.exists(path) and os.path.getsize(path) > 0:
        runs[name] = json.load(open(path))
burn = runs["burn"]

rows = [
    ("training epoch, batch 64 (s, median)", "epoch_seconds", "lower", "{:.3f}"),
    ("training images/s", "train_images_per_second", "higher", "{:,.0f}"),
    ("evaluation images/s, batch 1000", "eval_images_per_second", "higher", "{:,.0f}"),
    ("batch-1 latency median (us)", "batch1_latency_median_us", "lower", "{:.1f}"),
    ("batch-1 latency p99 (us)", "batch1_latency_p99_us", "lower", "{:.1f}"),
    ("start to first step (s)", "startup_to_first_step_seconds", "lower", "{:.2f}"),
    ("data load (s)", "data_load_seconds", "lower", "{:.2f}"),
    ("peak RSS (MiB)", "peak_rss_mb", "lower", "{:.0f}"),
    ("test accuracy (%)", "test_accuracy", "higher", "{:.2f}"),
]

def cell(run, key, fmt):
    value = run.get(key)
    return "-" if value is None else fmt.format(value)

def ratio(other, key, better, burn=burn):
    mine, theirs = burn.get(key), other.get(key)
    if not mine or not theirs or key == "test_accuracy":
        return ""
    factor = theirs / mine if better == "lower" else mine / theirs
    return f" ({factor:.1f}x)"

names = [n for n in ("fast", "fast_spin", "fast_one", "reference") if n in runs]
labels = {
    "fast": "PyTorch preloaded (passive)",
    "fast_spin": "PyTorch preloaded (spinning)",
    "fast_one": "PyTorch preloaded (1 thread)",
    "reference": "PyTorch tutorial (passive)",
}
cpu = "unknown CPU"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
print(f"machine: {cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}")
print(f"epochs: {burn['epochs']}; threads: Burn {burn['threads']}, "
      + ", ".join(f"{labels[n]} {runs[n]['threads']}" for n in names)
      + "; passive: OMP_WAIT_POLICY=PASSIVE, spinning: OpenMP's default")
print("(x: how many times better Burn is; below 1.0x PyTorch is better)")
print()
header = ["measure", f"Burn {burn['implementation'].split('-', 1)[1]}"] + [labels[n] for n in names]
table = [header, ["---"] * len(header)]
for label, key, better, fmt in rows:
    table.append([label, cell(burn, key, fmt)] + [cell(runs[n], key, fmt) + ratio(runs[n], key, better) for n in names])
for row in table:
    print("| " + " | ".join(row) + " |")

if "burn_cnn" in runs:
    cnn = runs["burn_cnn"]
    peers = [n for n in ("cnn_two", "cnn_two_spin", "cnn_one") if n in runs]
    cnn_labels = {
        "cnn_two": "PyTorch CNN (2 threads)",
        "cnn_two_spin": "PyTorch CNN (2 threads, spinning)",
        "cnn_one": "PyTorch CNN (1 thread)",
    }
    print()
    print(f"CNN ({cnn['network']}), epochs: {cnn['epochs']}")
    print()
    header = ["measure", f"Burn {cnn['implementation'].split('-', 1)[1]}"] + [cnn_labels[n] for n in peers]
    table = [header, ["---"] * len(header)]
    for label, key, better, fmt in rows:
        table.append([label, cell(cnn, key, fmt)]
                     + [cell(runs[n], key, fmt) + ratio(runs[n], key, better, cnn) for n in peers])
    for row in table:
        print("| " + " | ".join(row) + " |")
EOF
