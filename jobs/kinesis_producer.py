#!/usr/bin/env python3
"""Writes blockchain-style transactions to a Kinesis stream.

The transactions come from ../shared/bench/gen_tx.py (run as a child process writing to a pipe,
so the data is exactly what that generator makes for the same --count and --seed): JSON lines
with tx_hash, block, fee, amount, currency and event_time (epoch ms). Each line is one Kinesis
record, partition key = tx_hash. Records go out in PutRecords calls of up to 500, one call at
a time; failed entries are retried (with backoff) before the next call.

  python3 jobs/kinesis_producer.py --stream tx --count 100000 [--rate 5000]
      [--endpoint URL] [--region R] [--create-shards N] [--seed 42] [--keys 4]
      [--event-rate 100] [--disorder-ms 2000] [--gen-tx PATH]

--endpoint defaults to $AWS_ENDPOINT_URL (unset: the real AWS endpoint of --region); with an
endpoint and no credentials in the environment, dummy ones (test/test) are used, as moto and
other local endpoints accept any. --rate is records per second of wall time (0: as fast as
possible). --create-shards N creates the stream with N shards when it does not exist.
Prints one JSON line when done: records, calls, retried entries, seconds, records/s.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
GEN_TX = os.path.join(HERE, "..", "..", "shared", "bench", "gen_tx.py")
MAX_BATCH = 500


def ensure_stream(kin, stream, shards):
    try:
        kin.describe_stream_summary(StreamName=stream)
    except kin.exceptions.ResourceNotFoundException:
        if not shards:
            sys.exit(f"kinesis_producer: stream {stream} does not exist (use --create-shards N)")
        try:
            kin.create_stream(StreamName=stream, ShardCount=shards)
        except kin.exceptions.ResourceInUseException:
            pass  # created meanwhile by someone else
    while kin.describe_stream_summary(StreamName=stream)[
            "StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        time.sleep(0.5)


def put_batch(kin, stream, batch):
    """Writes every entry of batch; returns (calls, retried entries)."""
    calls = retried = 0
    pending, delay = batch, 0.05
    while pending:
        resp = kin.put_records(StreamName=stream, Records=pending)
        calls += 1
        pending = [rec for rec, res in zip(pending, resp["Records"]) if "ErrorCode" in res]
        if pending:
            retried += len(pending)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    return calls, retried


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stream", required=True)
    p.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"))
    p.add_argument("--region", default=os.environ.get("AWS_REGION")
                   or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    p.add_argument("--count", type=int, default=100_000, help="transactions to write")
    p.add_argument("--rate", type=float, default=0, help="records per second, 0 = unlimited")
    p.add_argument("--create-shards", type=int, default=0, metavar="N",
                   help="create the stream with N shards when it is missing")
    p.add_argument("--seed", type=int, default=42, help="gen_tx.py --seed")
    p.add_argument("--keys", type=int, default=4, help="gen_tx.py --keys (currencies)")
    p.add_argument("--event-rate", type=int, default=100,
                   help="gen_tx.py --rate: events per second of event time")
    p.add_argument("--disorder-ms", type=int, default=2000, help="gen_tx.py --disorder-ms")
    p.add_argument("--gen-tx", default=GEN_TX, help="path of gen_tx.py")
    a = p.parse_args()

    if a.endpoint and not os.environ.get("AWS_ACCESS_KEY_ID"):
        os.environ["AWS_ACCESS_KEY_ID"] = "test"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "test"
    kin = boto3.client("kinesis", endpoint_url=a.endpoint, region_name=a.region,
                       config=Config(retries={"mode": "standard", "total_max_attempts": 10}))
    ensure_stream(kin, a.stream, a.create_shards)

    gen = subprocess.Popen(
        [sys.executable, a.gen_tx, "--events", str(a.count), "--seed", str(a.seed),
         "--keys", str(a.keys), "--rate", str(a.event_rate), "--disorder-ms", str(a.disorder_ms),
         "/dev/stdout"],
        stdout=subprocess.PIPE)
    # With a rate, smaller calls keep the pace smooth (about ten calls per second).
    batch_size = MAX_BATCH if a.rate <= 0 else max(1, min(MAX_BATCH, int(a.rate / 10)))
    start = time.monotonic()
    sent = calls = retried = 0
    batch = []

    def flush():
        nonlocal sent, calls, retried, batch
        if a.rate > 0:
            wait = start + sent / a.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        c, r = put_batch(kin, a.stream, batch)
        calls, retried, sent, batch = calls + c, retried + r, sent + len(batch), []

    try:
        for line in gen.stdout:
            data = line.rstrip(b"\n")
            batch.append({"Data": data, "PartitionKey": json.loads(data)["tx_hash"]})
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    except BaseException:
        gen.kill()
        raise
    finally:
        gen.stdout.close()
    if gen.wait() != 0:
        sys.exit(f"kinesis_producer: {a.gen_tx} failed with exit code {gen.returncode}")
    secs = time.monotonic() - start
    print(json.dumps({"stream": a.stream, "records": sent, "calls": calls, "retried": retried,
                      "seconds": round(secs, 3), "records_per_s": round(sent / secs, 1) if secs else None}))


if __name__ == "__main__":
    main()
