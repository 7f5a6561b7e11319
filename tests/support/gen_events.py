#!/usr/bin/env python3
"""Writes deterministic, out-of-order keyed events as JSON lines for the differential tests.

Each line: {"k": "key-123", "v": <double>, "ts": <epoch ms>}. Event time advances --rate
events per second of event time; each event is shifted back by a random delay of
0..--disorder-ms, so a row is never more than --disorder-ms behind any row before it (the
disorder is bounded). With --files N > 1, OUT is a folder and line i goes to events-(i mod N).json,
so every file keeps that bound on its own.
"""
import argparse
import os
import random


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--rate", type=int, default=1000, help="events per second of event time")
    p.add_argument("--disorder-ms", type=int, default=2000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start-ms", type=int, default=1_700_000_000_000)
    p.add_argument("--files", type=int, default=1)
    p.add_argument("out")
    a = p.parse_args()

    rnd = random.Random(a.seed)
    step = 1000.0 / a.rate
    if a.files == 1:
        outs = [open(a.out, "w")]
    else:
        os.makedirs(a.out, exist_ok=True)
        outs = [open(os.path.join(a.out, f"events-{i}.json"), "w") for i in range(a.files)]
    for i in range(a.events):
        ts = a.start_ms + int(i * step) - rnd.randint(0, a.disorder_ms)
        k = rnd.randrange(a.keys)
        # repr() of a float round-trips exactly, so Sluice and DuckDB read the same double.
        v = rnd.random() * 1000.0
        outs[i % a.files].write(f'{{"k": "key-{k}", "v": {v!r}, "ts": {ts}}}\n')
    for f in outs:
        f.close()


if __name__ == "__main__":
    main()
