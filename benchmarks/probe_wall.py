"""How long `invoke mirrors --probe` takes: the real catalogue probed from a fresh interpreter
(start-up included, as a user sees it), and the probe alone over loopback stand-ins that
include a mirror which accepts and never answers (so the deadline is always spent).

    python benchmarks/probe_wall.py [--repeat 5]

The probe's budget is 3 s including start-up (mirrors/probe.py DEADLINE_S is 2.5 s). Printed as
median and worst of --repeat runs; tests assert what the probe reports, never how long it took.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from i2vkit.mirrors import catalogue  # noqa: E402
from i2vkit.mirrors.probe import DEADLINE_S, probe  # noqa: E402
from tests.helpers.servers import SilentSocket, closed_port  # noqa: E402


def fresh_interpreter(repeat: int) -> list[float]:
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "i2vkit", "mirrors", "--probe"], check=True,
                       capture_output=True)  # fmt: skip
        walls.append(time.perf_counter() - start)
    return walls


def loopback(repeat: int) -> list[float]:
    hung = SilentSocket()
    try:
        data = {
            "order": ["hung", "closed"],
            "mirror": {
                "hung": {"pypi": {"url": f"{hung.url}/simple"}},
                "closed": {"pypi": {"url": f"http://127.0.0.1:{closed_port()}/simple"}},
            },
        }
        stand_ins = catalogue.from_data(data, "benchmark")
        walls = []
        for _ in range(repeat):
            start = time.perf_counter()
            probe(stand_ins, kinds=["pypi"])
            walls.append(time.perf_counter() - start)
        return walls
    finally:
        hung.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name, walls in (
        ("real catalogue, fresh interpreter", fresh_interpreter(args.repeat)),
        ("loopback with a hung mirror, in-process", loopback(args.repeat)),
    ):
        print(
            f"{name}: median {statistics.median(walls):.2f} s, worst {max(walls):.2f} s "
            f"(deadline {DEADLINE_S} s, budget 3 s; {args.repeat} runs)"
        )


if __name__ == "__main__":
    main()
