"""Inclusive samples per function in a py-spy ``--format raw`` profile, within the stacks that
pass through each given function name (default: the pipeline; e.g. ``rvc_f0`` for its f0
stage). Not a test; for reading where a first conversion's time goes.

    python bench/spy_summary.py spy.txt [run_pipeline rvc_f0] [--top 40]
"""

from __future__ import annotations

import argparse
import collections


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("profile")
    ap.add_argument("within", nargs="*", default=["run_pipeline"])
    ap.add_argument("--top", type=int, default=40)
    a = ap.parse_args()
    stacks = []
    for line in open(a.profile):
        stack, _, count = line.rstrip().rpartition(" ")
        stacks.append((stack.split(";"), int(count)))
    print(f"{sum(n for _, n in stacks)} samples")
    for name in a.within:
        inc: collections.Counter[str] = collections.Counter()
        for frames, n in stacks:
            if not any(name in f for f in frames):
                continue
            for key in {f.split(" (")[0] for f in frames}:
                inc[key] += n
        print(f"== within {name} ==")
        for key, n in inc.most_common(a.top):
            print(f"{n:6d} {key[:150]}")


if __name__ == "__main__":
    main()
