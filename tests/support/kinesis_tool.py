#!/usr/bin/env python3
"""Drives a Kinesis endpoint (moto_server in the tests) with boto3: create streams, write and
read records, reshard.

  kinesis_tool.py --endpoint URL create --stream S --shards N
  kinesis_tool.py --endpoint URL put --stream S --file F.jsonl (--key-field K | --key random)
                  [--strict-order]
  kinesis_tool.py --endpoint URL put-kpl --stream S --file F.jsonl (--key-field K | --key random)
                  --per-aggregate N
  kinesis_tool.py --endpoint URL read --stream S --out F.jsonl [--deaggregate]
  kinesis_tool.py --endpoint URL split --stream S --shard SHARD_ID
  kinesis_tool.py --endpoint URL merge --stream S --shards A,B
  kinesis_tool.py --endpoint URL shards --stream S
  kinesis_tool.py now-ms

--endpoint defaults to $AWS_ENDPOINT_URL; the region is us-east-1 and the credentials default to
test/test. Calls are retried (botocore "standard" mode, 10 attempts), so the tool also works
through tests/support/fault_proxy.py.

put: each line of F is one record's data (the line's bytes without the newline); the partition
key is str() of field K of the JSON line, or a random one. Records go out in PutRecords calls of
up to 500, one call at a time; the failed entries of a call are retried until they succeed
before the next call starts. A record that fails while a later record with the same key in the
same call succeeds is written after it: with --strict-order a call never holds two records with
the same key, which keeps each key's order even when entries fail (at the cost of smaller calls).

read: every shard, parents before children, from TRIM_HORIZON until a GetRecords call returns no
records with MillisBehindLatest 0 (moto never ends a closed shard with a null iterator), or the
iterator is null. Writes one JSON line per record:
  {"shard": .., "seq": .., "key": .., "data": <utf-8 text>, "arrival_ms": ..}
(data that is not UTF-8 is written as "data_b64" instead). --deaggregate expands KPL-aggregated
records into their user records, adding "sub" (the sub-sequence number).
"""
import argparse
import base64
import json
import os
import random
import sys
import time

import boto3
from botocore.config import Config

# The producer's PutRecords loop (rejected records retried with backoff), shared.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "jobs"))
from kinesis_producer import put_batch  # noqa: E402

MAX_BATCH = 500


def client(endpoint):
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    return boto3.client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1",
        config=Config(retries={"mode": "standard", "total_max_attempts": 10},
                      connect_timeout=10, read_timeout=60))


def list_shards(kin, stream):
    shards, kw = [], {"StreamName": stream}
    while True:
        resp = kin.list_shards(**kw)
        shards += resp["Shards"]
        if not resp.get("NextToken"):
            return shards
        # moto wants the first call's parameters again beside NextToken (real Kinesis refuses
        # StreamName together with NextToken; this tool targets moto).
        kw = {"StreamName": stream, "NextToken": resp["NextToken"]}


def put_all(kin, stream, entries, strict_order=False):
    """Writes (key, data) pairs in order; returns how many PutRecords calls succeeded."""
    calls, i = 0, 0
    while i < len(entries):
        batch, keys = [], set()
        while i < len(entries) and len(batch) < MAX_BATCH:
            key, data = entries[i]
            if strict_order and key in keys:
                break
            keys.add(key)
            batch.append({"Data": data, "PartitionKey": key})
            i += 1
        calls += put_batch(kin, stream, batch)[0]
    return calls


def read_lines(path, key_field):
    entries = []
    with open(path, "rb") as f:
        for line in f:
            data = line[:-1] if line.endswith(b"\n") else line
            if not data.strip():
                continue
            if key_field is None:
                key = "%032x" % random.getrandbits(128)
            else:
                key = str(json.loads(data)[key_field])
            entries.append((key, data))
    return entries


def cmd_create(kin, a):
    kin.create_stream(StreamName=a.stream, ShardCount=a.shards)
    while kin.describe_stream_summary(StreamName=a.stream)[
            "StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        time.sleep(0.2)
    print(json.dumps({"stream": a.stream, "shards": a.shards, "status": "ACTIVE"}))


def cmd_put(kin, a):
    entries = read_lines(a.file, a.key_field)
    calls = put_all(kin, a.stream, entries, a.strict_order)
    print(json.dumps({"records": len(entries), "put_records_calls": calls}))


def cmd_put_kpl(kin, a):
    from aws_kinesis_agg.aggregator import RecordAggregator

    agg = RecordAggregator()
    out, n = [], 0

    def emit(rec):
        pk, _ehk, data = rec.get_contents()
        out.append((pk, data))

    for key, data in read_lines(a.file, a.key_field):
        full = agg.add_user_record(key, data)
        if full is not None:  # the aggregate hit the size limit: a new one holds this record
            emit(full)
            n = 1
            continue
        n += 1
        if n == a.per_aggregate:
            emit(agg.clear_and_get())
            n = 0
    if agg.get_num_user_records():
        emit(agg.clear_and_get())
    calls = put_all(kin, a.stream, out)
    print(json.dumps({"kinesis_records": len(out), "put_records_calls": calls}))


def shard_order(shards, done):
    """Shards not yet read, each after its parents (those in the list)."""
    ids = {s["ShardId"] for s in shards}
    todo, ordered = [s for s in shards if s["ShardId"] not in done], []
    placed = set(done)
    while todo:
        ready = [s for s in todo
                 if all(p not in ids or p in placed
                        for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p)]
        ready = ready or todo[:1]  # a cycle cannot happen; stay safe anyway
        for s in ready:
            ordered.append(s)
            placed.add(s["ShardId"])
        todo = [s for s in todo if s["ShardId"] not in placed]
    return ordered


def record_lines(shard_id, rec, deaggregate):
    users = [(rec["PartitionKey"], rec["Data"], None)]
    if deaggregate:
        from aws_kinesis_agg.deaggregator import iter_deaggregate_records

        users = []
        for u in iter_deaggregate_records([rec], data_format="Boto3"):
            if "kinesis" in u and u["kinesis"].get("aggregated"):
                k = u["kinesis"]
                users.append((k["partitionKey"], base64.b64decode(k["data"]), k["subSequenceNumber"]))
            else:
                users.append((rec["PartitionKey"], rec["Data"], None))
    arrival_ms = round(rec["ApproximateArrivalTimestamp"].timestamp() * 1000)
    for key, data, sub in users:
        line = {"shard": shard_id, "seq": rec["SequenceNumber"], "key": key}
        if sub is not None:
            line["sub"] = sub
        try:
            line["data"] = data.decode("utf-8")
        except UnicodeDecodeError:
            line["data_b64"] = base64.b64encode(data).decode()
        line["arrival_ms"] = arrival_ms
        yield json.dumps(line)


def read_shard(kin, stream, shard_id, out, deaggregate):
    it = kin.get_shard_iterator(StreamName=stream, ShardId=shard_id,
                                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    n = 0
    while it:
        resp = kin.get_records(ShardIterator=it, Limit=10000)
        for rec in resp["Records"]:
            for line in record_lines(shard_id, rec, deaggregate):
                out.write(line + "\n")
                n += 1
        if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
            break
        it = resp.get("NextShardIterator")
    return n


def cmd_read(kin, a):
    done, counts = set(), {}
    with open(a.out, "w") as out:
        while True:  # list again after reading: children created meanwhile are read too
            todo = shard_order(list_shards(kin, a.stream), done)
            if not todo:
                break
            for s in todo:
                counts[s["ShardId"]] = read_shard(kin, a.stream, s["ShardId"], out, a.deaggregate)
                done.add(s["ShardId"])
    print(json.dumps({"records": sum(counts.values()), "per_shard": counts}))


def print_shards(kin, stream):
    print(json.dumps(list_shards(kin, stream), indent=1))


def cmd_split(kin, a):
    shard = next(s for s in list_shards(kin, a.stream) if s["ShardId"] == a.shard)
    lo, hi = (int(shard["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    kin.split_shard(StreamName=a.stream, ShardToSplit=a.shard, NewStartingHashKey=str((lo + hi) // 2 + 1))
    print_shards(kin, a.stream)


def cmd_merge(kin, a):
    first, second = a.shards.split(",")
    kin.merge_shards(StreamName=a.stream, ShardToMerge=first, AdjacentShardToMerge=second)
    print_shards(kin, a.stream)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"))
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("create")
    s.add_argument("--stream", required=True)
    s.add_argument("--shards", type=int, required=True)

    for name in ("put", "put-kpl"):
        s = sub.add_parser(name)
        s.add_argument("--stream", required=True)
        s.add_argument("--file", required=True)
        k = s.add_mutually_exclusive_group(required=True)
        k.add_argument("--key-field", help="partition key = str(line[K])")
        k.add_argument("--key", choices=["random"], help="a random partition key per record")
        if name == "put":
            s.add_argument("--strict-order", action="store_true",
                           help="never two records with one key in a call")
        else:
            s.add_argument("--per-aggregate", type=int, required=True,
                           help="user records per Kinesis record")

    s = sub.add_parser("read")
    s.add_argument("--stream", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--deaggregate", action="store_true")

    s = sub.add_parser("split")
    s.add_argument("--stream", required=True)
    s.add_argument("--shard", required=True)

    s = sub.add_parser("merge")
    s.add_argument("--stream", required=True)
    s.add_argument("--shards", required=True, help="A,B: two adjacent open shards")

    s = sub.add_parser("shards")
    s.add_argument("--stream", required=True)

    sub.add_parser("now-ms")
    a = p.parse_args()

    if a.cmd == "now-ms":
        print(time.time_ns() // 1_000_000)
        return
    if not a.endpoint:
        p.error("--endpoint (or AWS_ENDPOINT_URL) is required")
    kin = client(a.endpoint)
    if a.cmd == "shards":
        return print_shards(kin, a.stream)
    {"create": cmd_create, "put": cmd_put, "put-kpl": cmd_put_kpl, "read": cmd_read,
     "split": cmd_split, "merge": cmd_merge}[a.cmd](kin, a)


if __name__ == "__main__":
    sys.exit(main())
