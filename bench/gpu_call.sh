# Sourced by the one-call GPU scripts (gpu_final17.sh, gpu_live16.sh, gpu_check.sh) after
# `gpu_session.sh stash` (p1, p2; p3 carried with the call): the p3 wheels installed, the
# packages on PYTHONPATH, $OUT, and `left` (seconds of $BUDGET, default 570, not yet used) for
# each step's timeout. A fresh machine compiles MLX's kernels on first use (a minute or more of
# device time): `keep_kernels` (call it last) sends MLX's kernel folder and the driver's
# compute cache back as $OUT/kernels.tgz.*; put those parts in .gpu/p4/ (stashed like p1 and p2:
# `run(carry=[".gpu/p4"], command="bash bench/gpu_session.sh stash")`) or .gpu/p3/, and the
# next machine starts with them unpacked (COLD=1: not, e.g. to time a first conversion on a
# fresh machine, as gpu_final17.sh's first bench row does).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/rvc-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/p3/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
for p in packages/*/src; do export PYTHONPATH=$PWD/$p:$PYTHONPATH; done
KERNEL_DIRS=(.cache/rvc/mlx-kernels .nv/ComputeCache)  # under $HOME: configure_gpu's and the driver's
# a cache over one carry (~62 MB with the tree): its last parts in .gpu/p4b, carried with p3
compgen -G ".gpu/p4b/kernels.tgz.*" >/dev/null && mkdir -p /tmp/stash && cp .gpu/p4b/kernels.tgz.* /tmp/stash/
for d in .gpu/p3 /tmp/stash; do
    if [ -z "${COLD:-}" ] && compgen -G "$d/kernels.tgz.*" >/dev/null && [ ! -d "$HOME/${KERNEL_DIRS[0]}" ]; then
        cat "$d"/kernels.tgz.* | tar xzf - -C "$HOME" && echo "kernels unpacked: $(du -sh "$HOME/.cache/rvc" | cut -f1)"
    fi
done
keep_kernels() {  # at most 15 MB a part (files come back up to 16 MiB, 8 files a call)
    (cd "$HOME" && ls -d "${KERNEL_DIRS[@]}" 2>/dev/null | tar czf - -T -) | split -b 15M - "$OUT/kernels.tgz."
    ls -la "$OUT"/kernels.tgz.* | awk '{s += $5} END {print "kernels kept: " s / 1e6 " MB"}'
}
start=$SECONDS
left() { local l=$((${BUDGET:-570} - (SECONDS - start))); echo $((l > 1 ? l : 1)); }  # timeout takes no negative
