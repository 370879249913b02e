"""Reading speed: all three Twitter-2015 splits plus MNRE v2, on one core (target: under 2 s).

python benchmarks/read_speed.py [--data-dir ../shared/datasets] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

from common import data_dir, pin_one_core, write_result

from cotdistill.readers import load_split


def read_all(root) -> dict[str, int]:
    counts = {}
    for split in ("train", "valid", "test"):
        counts[f"twitter2015/{split}"] = len(load_split("twitter2015", root / "twitter2015", split))
    for split in ("train", "valid", "test"):
        counts[f"mnre/{split}"] = len(load_split("mnre", root / "mnre", split))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pin_one_core()
    root = data_dir(args.data_dir)
    times = []
    counts = {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        counts = read_all(root)
        times.append(time.perf_counter() - start)
    result = {
        "examples": counts,
        "seconds": {
            "min": min(times),
            "median": sorted(times)[len(times) // 2],
            "max": max(times),
            "runs": times,
        },
        "target_seconds": 2.0,
        "meets_target": max(times) < 2.0,
    }
    print(
        f"read {sum(counts.values()):,} examples: min {min(times):.3f} s, max {max(times):.3f} s over {len(times)} runs"
    )
    write_result("read_speed", result, "python benchmarks/read_speed.py")


if __name__ == "__main__":
    main()
