"""What a node's release channel costs per release: strict checks, OpenDP noise, sealed logs.

For typical releases of a data node (a mean-age message, a 7-cell histogram, a logistic
regression round's gradient and Hessian, a 1000-cell float array) it times, per release, the
node's encoding of the message alone (the baseline: what a ``flame`` node does) and the same
with the ``strict`` checks first, and prints the ratio. For DP it times one noisy number drawn
with OpenDP (exact sampling, what a node does) against NumPy's ``laplace`` (the naive draw the
analysis used to make) and against the final result's encoding. For logs it times sealing one
analysis line to a researcher against forwarding it in plaintext. A script, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from flame_lab.privacy import NodePolicy, ReleaseRules
from flame_lab.release import ReleaseChannel
from flame_lab.release.dp import NodeDP, noisy_number
from flame_lab.release.logs import SealContext, seal_line
from flame_lab.sandbox.node.runtime_client import to_channel
from flame_lab.sandbox.node.service import encode_body
from flame_lab.security.keys import Identity, NodeIdentity

RECORDS = 655
RELEASES = {
    "mean age (2 numbers)": {"n": 655, "total": 33645.0},
    "histogram (7 cells + 6 stats)": {
        "patients": 655,
        "cohort": 68,
        "mean_age": 63.41,
        "mean_hba1c": 6.66,
        "female": 36,
        "male": 32,
        "hba1c_histogram": [12, 26, 16, 12, 8, 9, 7],
    },
    "logreg round (30 numbers)": {"gradient": [0.25] * 5, "hessian": [0.5] * 25},
    "array (300 floats)": np.linspace(0.5, 99.5, 300),
}


def timed(func: Callable[[], object], repeat: int) -> float:
    """Median seconds of one call, over ``repeat`` batches of calls lasting ~10 ms or more."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            func()
        if time.perf_counter() - start >= 0.01 or calls >= 1 << 16:
            break
        calls *= 2
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            func()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def strict_channel(ratio: float) -> ReleaseChannel:
    policy = NodePolicy(profile="strict", release=ReleaseRules(max_values_ratio=ratio))
    return ReleaseChannel(policy, node="bench", role="default", record_count=RECORDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\nstrict checks per release (record count {RECORDS})")
    print(f"{'release':32} {'flame (encode)':>15} {'strict':>12} {'ratio':>7}")
    for name, value in RELEASES.items():
        wire = to_channel(value)
        base = timed(lambda wire=wire: encode_body(wire), args.repeat)
        channel = strict_channel(1e9)  # the run total never trips while timing

        def checked(value=value, wire=wire, channel=channel) -> None:
            channel.values_released = 0
            channel._seen.clear()
            channel.message(value)
            encode_body(wire)

        both = timed(checked, args.repeat)
        print(f"{name:32} {base * 1e6:12.1f} us {both * 1e6:9.1f} us {both / base:6.2f}x")

    print("\nDP noise per released number (epsilon 1, sensitivity 1)")
    params = NodeDP(1.0, 1.0)
    rng = np.random.default_rng(1)
    opendp = timed(lambda: noisy_number(42.0, params), args.repeat)
    naive = timed(lambda: 42.0 + float(rng.laplace(0.0, 1.0)), args.repeat)
    final = timed(lambda: encode_body(to_channel("1094.7")), args.repeat)
    print(f"  numpy laplace (naive, the old analysis-side draw): {naive * 1e6:8.2f} us")
    print(f"  OpenDP exact Laplace (node):                      {opendp * 1e6:8.2f} us")
    print(f"  encoding the final result alone:                  {final * 1e6:8.2f} us")
    print(
        f"  OpenDP / numpy: {opendp / naive:.1f}x; noise + encoding / encoding alone: "
        f"{(opendp + final) / final:.1f}x"
    )

    print("\nanalysis log lines: sealed to the researcher vs plaintext")
    researcher, node = Identity.generate(), NodeIdentity.generate()
    context = SealContext("bench", "node", "0" * 64, "nonce", [researcher.public], node)
    line = "round 7: loss 0.18342, step 2.1e-05"
    plain = timed(lambda: f"{line}".encode(), args.repeat)
    sealed = timed(lambda: seal_line(context, 1, "info", line), args.repeat)
    size = len(seal_line(context, 1, "info", line))
    print(f"  plaintext line: {plain * 1e6:8.2f} us, {len(line)} bytes")
    print(
        f"  sealed line:    {sealed * 1e6:8.2f} us, {size} bytes "
        f"({sealed / plain:.0f}x the time, {size / len(line):.0f}x the bytes)"
    )
    print(
        f"  1000 lines (the default cap of a run): {sealed * 1000 * 1e3:.0f} ms of the node's CPU"
    )


if __name__ == "__main__":
    main()
