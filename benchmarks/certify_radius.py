"""Time of the input-dependent certified radius (Suekenik et al. 2022) on its default grid, per call.

The radius is a grid search over radii with a non-central chi-square worst case per grid point
(docs/smoothing.md); this reports the median time of one call at CIFAR-10's dimension for a few p_A, so a
change of the grid or of SciPy's ncx2 shows up here rather than in a timed unit test.

    python benchmarks/certify_radius.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from robustlit.certify import input_dependent_radius


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dim", type=int, default=3072)
    args = parser.parse_args()
    for p_a in (0.9, 0.99, 0.999):
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            radius = input_dependent_radius(p_a, 0.25, 0.01, args.dim)
            seconds.append(time.perf_counter() - start)
        print(f"p_A {p_a}: radius {radius:.4f}, median {statistics.median(seconds):.3f} s per call")


if __name__ == "__main__":
    main()
