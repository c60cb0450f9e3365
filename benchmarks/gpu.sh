#!/usr/bin/env bash
# The GPU side of issue 17, prepared for the device tool (one command runs at most 10 minutes, a session has 15):
#   bash benchmarks/gpu.sh tests clip4clip eval   # CUDA tests, CLIP4Clip train (meanP, seqTransf) + 1k x 1k eval (~8 min)
#   bash benchmarks/gpu.sh others                 # EMCL-Net, EERCF and DAVRL training steps (~6 min)
# Parts: tests (tests/test_gpu.py), clip4clip (train step, 64 videos x 12 frames, with torch.compile), others
# (EMCL-Net, EERCF and DAVRL train steps, no compile), eval (CLIP4Clip 1k x 1k: encode, seqTransf and tightTransf scoring).
#
# Prepare here (the device machine reaches no registry):
#   1. the original code (ignored by git): git clone <ArrowLuo/CLIP4Clip @ 508ffa3> .original/CLIP4Clip;
#      <jpthu17/EMCL @ 3af1794>'s video_retrieval/EMCL-Net/{tvr,main_retrieval.py} into .original/EMCL (same path);
#      git clone <adxcreative/EERCF @ 90f1d07> .original/EERCF; git clone <bzy-source/DAVRL @ a5ed5c2>
#      .original/DAVRL   (about 15 MB in all)
#   2. wheels of what the device image lacks or has too old (see .library/device/KINDS.md: it has torch, accelerate,
#      peft, tokenizers 0.23, huggingface_hub 1.33, transformers 5.17; not datasets), into the ignored folder .whl/
#      (15 MB; checked here: these are all the benchmarks and tests/test_gpu.py import, decord / av / faiss / evaluate
#      are imported only where videos are decoded or indexed; datasets 5.2 wants pyarrow >= 24 there):
#        .venv/bin/pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#          --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#          -d .whl transformers==5.23.0 datasets==5.2.0 dill multiprocess xxhash
# then: run(command="bash benchmarks/gpu.sh tests clip4clip eval", carry=[".original", ".whl"], timeout_s=600)
# and copy the tables from $OUT into benchmarks/RESULTS.md with the machine line they print.
set -euo pipefail
OUT=${OUT:-/tmp/tvr-gpu-out}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
PARTS=${*:-tests clip4clip others eval}
if [ -d .whl ]; then
  "$PYTHON" -m pip install -q --no-index --find-links .whl --no-deps .whl/*.whl
fi
export PYTHONPATH=$PWD/src HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/machine.txt"
"$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  | tee -a "$OUT/machine.txt"

for part in $PARTS; do
  case $part in
    tests)
      "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -15 | tee "$OUT/test_gpu.txt" ;;
    clip4clip)
      "$PYTHON" benchmarks/bench_train.py --device cuda --batch-size 64 --repeats 20 --warmup 5 \
        --sim-headers meanP seqTransf --variants original tvr-fp32 tvr-bertadam tvr-bf16 tvr-bf16-compile \
        2>&1 | grep -v -i warn | tee "$OUT/bench_train.md" ;;
    others)
      for method in emcl eercf davrl; do
        "$PYTHON" benchmarks/bench_train.py --method $method --device cuda --batch-size 64 --repeats 10 --warmup 3 \
          --variants original tvr-fp32 tvr-bf16 2>&1 | grep -v -i warn | tee "$OUT/bench_train_$method.md"
      done ;;
    eval)
      "$PYTHON" benchmarks/bench_eval.py --device cuda --encode-videos 1000 --encode-texts 1000 --batch-size-val 16 \
        --heads meanP:1000x1000 seqTransf:1000x1000 tightTransf:1000x1000 --repeats 2 \
        2>&1 | grep -v -i warn | tee "$OUT/bench_eval.md" ;;
    *) echo "unknown part $part (tests, clip4clip, others, eval)" >&2; exit 2 ;;
  esac
done
