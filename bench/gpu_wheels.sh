#!/usr/bin/env bash
# Builds the ignored .gpu/p1..p3 folders that bench/gpu_session.sh and gpu_check.sh carry to the
# lent H200 (Python 3.12 there; no registry): wheels at uv.lock's versions, mlx-cuda-13 split in
# two (over one call's 64 MiB), the reference anchors and a speech clip. Run once per checkout,
# here, from the repo root: `bash bench/gpu_wheels.sh`. Then, back to back on the device:
#   run(carry=[".gpu/p1"], command="bash bench/gpu_session.sh stash")
#   run(carry=[".gpu/p2"], command="bash bench/gpu_session.sh stash >/dev/null; bash bench/gpu_session.sh none >/dev/null 2>&1")
#   run(carry=[".gpu/p3"], command="STEPS='...' NOKEEP=1 BUDGET=560 bash bench/gpu_check.sh")
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >>.git/info/exclude
pin() { { grep -A1 "^name = \"$1\"$" uv.lock || true; } | sed -n 's/^version = "\(.*\)"/\1/p' | head -1; }
get() {  # folder, then names (uv.lock's version where it has one)
    local dir=$1; shift
    local specs=()
    for n in "$@"; do v=$(pin "$n"); specs+=("$n${v:+==$v}"); done
    python3 -m pip download -q --only-binary=:all: --python-version 3.12 --no-deps -d "$dir" \
        --platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 "${specs[@]}"
}
rm -rf .gpu/p1 .gpu/p2 .gpu/p3 .gpu/tmp
mkdir -p .gpu/p1 .gpu/p2 .gpu/p3 .gpu/tmp
get .gpu/tmp mlx-cuda-13==0.32.4
(cd .gpu/tmp && split -b 58M mlx_cuda_13-*.whl mlxcuda.part.)
mv .gpu/tmp/mlxcuda.part.aa .gpu/p1/
mv .gpu/tmp/mlxcuda.part.ab .gpu/p2/
get .gpu/p2 mlx faiss-cpu pedalboard soxr sounddevice noisereduce stftpitchshift mlx-contentvec mlx-rmvpe
# the reference's RMVPE (torch_ref.py) needs librosa; not soundfile (it breaks transformers there)
get .gpu/p3 av praat-parselmouth librosa audioread pooch decorator platformdirs
cp -r ../shared/anchors .gpu/p3/anchors && chmod -R u+w .gpu/p3/anchors
cp ../shared/fixtures/audio/speechbrain_LJ050-0131.wav .gpu/p3/speech.wav
rm -rf .gpu/tmp
du -sh .gpu/p1 .gpu/p2 .gpu/p3
