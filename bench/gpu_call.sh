# Sourced by the one-call GPU scripts (gpu_final17.sh, gpu_live16.sh) after `gpu_session.sh stash`
# (p1, p2; p3 carried with the call): the p3 wheels installed, the packages on PYTHONPATH, $OUT,
# and `left` (seconds of $BUDGET, default 570, not yet used) for each step's timeout.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/rvc-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/p3/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
for p in packages/*/src; do export PYTHONPATH=$PWD/$p:$PYTHONPATH; done
start=$SECONDS
left() { echo $((${BUDGET:-570} - (SECONDS - start))); }
