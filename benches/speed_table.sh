#!/usr/bin/env bash
# The README's CPU speed table: PyTorch's STCN and memvos's, side by side in one run, interleaved
# (best of two each), 30 frames of 854x480, top-20, memory every 5th frame, 2 threads each, I/O
# excluded; then peak resident memory of each with 3 objects, and a 32x64 frame with memvos (both
# --winograd-from settings); then the README's method table: every method at 480p, 1 object, on
# burn's ops, on memvos's CPU kernels (fp32 and bf16) and in PyTorch (interleaved, best of two,
# --frames frames each, default 10), and each one's peak resident memory with 3 objects.
#
#   python3 -m venv .venv-bench && .venv-bench/bin/pip install torch numpy   # once (optional tooling)
#   cargo build --release --example stage_times
#   bash benches/speed_table.sh [.venv-bench/bin/python] [frames]
#   bash benches/speed_table.sh .venv-bench/bin/python 10 methods   # the method table alone
#   METHODS="mivos imsfr" bash benches/speed_table.sh .venv-bench/bin/python 10 methods   # some rows
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv-bench/bin/python}
FRAMES=${2:-10}
ONLY=${3:-all}
ST=target/release/examples/stage_times
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
fps_torch() { "$PY" benches/pytorch_reference.py --stream --objects "$1" --frames 30 --threads 2 | sed -n 's/.*ms per frame, \([0-9.]*\) FPS/\1/p'; }
fps_memvos() { "$ST" --device cpu --objects "$1" --stream 30 --stream-only | tail -1 | awk -F'|' '{gsub(/ /, "", $9); print $9}'; }
best() { printf '%s\n' "$@" | sort -g | tail -1; }
method_table() {
  fps_st() { "$ST" --device cpu --method "$1" --cpu-kernels "$2" --objects "$3" --stream "$FRAMES" --stream-only ${4:+--precision $4} | tail -1 | awk -F'|' '{gsub(/ /, "", $9); print $9}'; }
  fps_py() { "$PY" benches/pytorch_reference.py --stream --method "$1" --objects "$2" --frames "$FRAMES" --threads 2 | sed -n 's/.*ms per frame, \([0-9.]*\) FPS/\1/p'; }
  echo "| method | burn's ops | memvos's CPU kernels | PyTorch | × burn | × PyTorch | memvos bf16 | bf16 × fp32 | peak memory, 3 objects: memvos / bf16 / PyTorch |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for m in ${METHODS:-stcn mivos qdmn gsfm imsfr}; do
    b1=$(fps_st $m burn 1); c1=$(fps_st $m memvos 1); h1=$(fps_st $m memvos 1 bf16); p1=$(fps_py $m 1)
    c2=$(fps_st $m memvos 1); h2=$(fps_st $m memvos 1 bf16); p2=$(fps_py $m 1)
    c=$(best "$c1" "$c2"); h=$(best "$h1" "$h2"); p=$(best "$p1" "$p2")
    rm_=$(( $(rss "$ST" --device cpu --method $m --objects 3 --stream "$FRAMES" --stream-only) / 1024 ))
    rh=$(( $(rss "$ST" --device cpu --method $m --objects 3 --stream "$FRAMES" --stream-only --precision bf16) / 1024 ))
    rp=$(( $(rss "$PY" benches/pytorch_reference.py --stream --method $m --objects 3 --frames "$FRAMES" --threads 2) / 1024 ))
    echo "| $m | $b1 FPS | $c FPS | $p FPS | $(python3 -c "print(f'{$c / $b1:.2f}')") | $(python3 -c "print(f'{$c / $p:.2f}')") | $h FPS | $(python3 -c "print(f'{$h / $c:.2f}')") | $rm_ / $rh / $rp MiB |"
  done
}
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
if [ "$ONLY" = methods ]; then method_table; exit 0; fi
echo "| objects | PyTorch $("$PY" -c 'import torch; print(torch.__version__)') | memvos | ratio |"
echo "|---|---|---|---|"
for k in 1 3; do
  t1=$(fps_torch $k); m1=$(fps_memvos $k); t2=$(fps_torch $k); m2=$(fps_memvos $k)
  t=$(best "$t1" "$t2"); m=$(best "$m1" "$m2")
  echo "| $k | $t FPS | $m FPS | $(python3 -c "print(f'{$m / $t:.2f}')") |"
done
echo
echo "peak resident memory, 3 objects, 30 frames: PyTorch $(( $(rss "$PY" benches/pytorch_reference.py --stream --objects 3 --frames 30 --threads 2) / 1024 )) MiB, memvos $(( $(rss "$ST" --device cpu --objects 3 --stream 30 --stream-only) / 1024 )) MiB"
echo
echo "32x64 frame, 1 object (memvos):"
"$ST" --device cpu --size 32x64 --stream 50 --repeats 20 | tail -1
"$ST" --device cpu --size 32x64 --stream 50 --repeats 20 --winograd-from 1024 | tail -1
echo
echo "every method at 854x480, 1 object, $FRAMES frames:"
method_table
