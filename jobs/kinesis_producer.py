#!/usr/bin/env python3
"""Writes blockchain-style transactions to a Kinesis stream with boto3.

The transactions come from `sluice datagen tx` (run as a child process writing to a pipe, so
the data is exactly what that command writes to a file for the same --count and --seed): JSON
lines with tx_hash, block, fee, amount, currency and event_time (epoch ms). Each line is one
Kinesis record, partition key = tx_hash. Records go out in PutRecords calls of up to 500, one
call at a time; failed entries are retried (with backoff) before the next call.

  python3 jobs/kinesis_producer.py --stream tx --count 100000 [--rate 5000]
      [--endpoint URL] [--region R] [--create-shards N] [--seed 42] [--keys 4]
      [--event-rate 100] [--disorder-ms 2000] [--sluice PATH]

--sluice is the sluice command to run: by default $SLUICE_BIN, else `sluice` on PATH, else the
repository's target/debug or target/release build, else `cargo run` in the repository.

--endpoint defaults to $AWS_ENDPOINT_URL (unset: the real AWS endpoint of --region); with an
endpoint and no credentials in the environment, dummy ones (test/test) are used, as moto and
other local endpoints accept any. --rate is records per second of wall time (0: as fast as
possible). --create-shards N creates the stream with N shards when it does not exist.
Prints one JSON line when done: records, calls, retried entries, seconds, records/s.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import boto3
from botocore.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_BATCH = 500


def sluice_command(explicit):
    """The command that runs sluice, as a list."""
    for candidate in (explicit, os.environ.get("SLUICE_BIN"), shutil.which("sluice")):
        if candidate:
            return [candidate]
    for profile in ("debug", "release"):
        built = os.path.join(REPO, "target", profile, "sluice")
        if os.access(built, os.X_OK):
            return [built]
    return ["cargo", "run", "--quiet", "--manifest-path", os.path.join(REPO, "Cargo.toml"), "--"]


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
    p.add_argument("--seed", type=int, default=42, help="sluice datagen tx --seed")
    p.add_argument("--keys", type=int, default=4, help="sluice datagen tx --keys (currencies)")
    p.add_argument("--event-rate", type=float, default=100,
                   help="sluice datagen tx --rate: events per second of event time")
    p.add_argument("--disorder-ms", type=int, default=2000,
                   help="sluice datagen tx --disorder-ms")
    p.add_argument("--sluice", help="the sluice command (see above)")
    a = p.parse_args()

    if a.endpoint and not os.environ.get("AWS_ACCESS_KEY_ID"):
        os.environ["AWS_ACCESS_KEY_ID"] = "test"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "test"
    kin = boto3.client("kinesis", endpoint_url=a.endpoint, region_name=a.region,
                       config=Config(retries={"mode": "standard", "total_max_attempts": 10}))
    ensure_stream(kin, a.stream, a.create_shards)

    if a.count <= 0:  # only create the stream
        print(json.dumps({"stream": a.stream, "records": 0}))
        return
    generator = sluice_command(a.sluice) + [
        "datagen", "tx", "--events", str(a.count), "--seed", str(a.seed), "--keys", str(a.keys),
        "--rate", str(a.event_rate), "--disorder-ms", str(a.disorder_ms), "-"]
    gen = subprocess.Popen(generator, stdout=subprocess.PIPE)
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
        sys.exit(f"kinesis_producer: {' '.join(generator)} failed with exit code {gen.returncode}")
    secs = time.monotonic() - start
    print(json.dumps({"stream": a.stream, "records": sent, "calls": calls, "retried": retried,
                      "seconds": round(secs, 3), "records_per_s": round(sent / secs, 1) if secs else None}))


if __name__ == "__main__":
    main()
