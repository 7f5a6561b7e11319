#!/usr/bin/env python3
"""Checks that moto, as served by tests/support/moto_serve.py, reshards Kinesis streams the way
AWS documents it. Standalone: starts moto_serve.py with this Python, runs the checks with boto3
(no retries, so a 500 is an error), prints one line per check and exits 0 (all passed) or 1.

  python tests/support/check_moto_resharding.py [--endpoint URL]   # URL: use a running server

Checks: a 3-shard stream gets 300 records (20 keys); shard 0 is split and shards 1 and 2 merged
(given in reverse order); 300 more records. Then: every record stored exactly once; parents
closed with an EndingSequenceNumber that later writes do not move; post-reshard records only
in the open children, each in the shard whose hash key range holds MD5(key); children's
sequence numbers above their parents'; reading parents (to a null NextShardIterator) then
children gives each key's records in write order; ChildShards at the end of each parent;
closed shards refused by SplitShard/MergeShards; 8 concurrent writers lose nothing while a
reader polls.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import threading

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
FAILURES = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def client(endpoint):
    return boto3.client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=10,
                      read_timeout=60, max_pool_connections=32))


def hash_key(key):
    return int(hashlib.md5(key.encode()).hexdigest(), 16)


def shards_by_id(kin, stream):
    return {s["ShardId"]: s for s in kin.list_shards(StreamName=stream)["Shards"]}


def in_range(shard, h):
    r = shard["HashKeyRange"]
    return int(r["StartingHashKey"]) <= h <= int(r["EndingHashKey"])


def create(kin, stream, n):
    kin.create_stream(StreamName=stream, ShardCount=n)
    kin.get_waiter("stream_exists").wait(StreamName=stream,
                                         WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})


def put(kin, stream, entries, batch=50):
    """entries: (key, data) in order. Returns {data: shard id from the response}."""
    placed = {}
    for i in range(0, len(entries), batch):
        chunk = entries[i:i + batch]
        resp = kin.put_records(StreamName=stream, Records=[
            {"PartitionKey": k, "Data": d.encode()} for k, d in chunk])
        assert resp["FailedRecordCount"] == 0, resp
        for (_, d), r in zip(chunk, resp["Records"]):
            placed[d] = r["ShardId"]
    return placed


def read_shard(kin, stream, shard_id, limit=10000):
    """All records of a shard from TRIM_HORIZON. Returns (records, end) where end is the last
    GetRecords response when the iterator came back null, else None (open shard, caught up).
    Also returns whether a null iterator came while records were still unread (an error)."""
    it = kin.get_shard_iterator(StreamName=stream, ShardId=shard_id,
                                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    out = []
    while True:
        resp = kin.get_records(ShardIterator=it, Limit=limit)
        out += resp["Records"]
        if resp.get("NextShardIterator") is None:
            return out, resp
        if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
            return out, None
        it = resp["NextShardIterator"]


def reshard_checks(kin):
    stream = "reshard"
    create(kin, stream, 3)
    keys = [f"key-{i}" for i in range(20)]
    before = [(keys[i % 20], f"{keys[i % 20]}:{i}") for i in range(300)]
    placed = put(kin, stream, before)
    # A few single PutRecord calls too.
    for k, d in [(keys[0], "single:0"), (keys[7], "single:1")]:
        placed[d] = kin.put_record(StreamName=stream, PartitionKey=k, Data=d.encode())["ShardId"]
        before.append((k, d))

    s = shards_by_id(kin, stream)
    s0, s1, s2 = sorted(s)
    r0 = s[s0]["HashKeyRange"]
    mid = (int(r0["StartingHashKey"]) + int(r0["EndingHashKey"])) // 2 + 1
    kin.split_shard(StreamName=stream, ShardToSplit=s0, NewStartingHashKey=str(mid))
    # Reverse order: AWS accepts the adjacent pair either way round.
    kin.merge_shards(StreamName=stream, ShardToMerge=s2, AdjacentShardToMerge=s1)

    after_reshard = shards_by_id(kin, stream)
    children = sorted(set(after_reshard) - {s0, s1, s2})
    check(len(children) == 3, f"3 children after split+merge: {children}")
    parents = [s0, s1, s2]
    ending = {p: after_reshard[p]["SequenceNumberRange"].get("EndingSequenceNumber")
              for p in parents}
    check(all(ending.values()), f"parents closed with EndingSequenceNumber: {ending}")
    check(all("EndingSequenceNumber" not in after_reshard[c]["SequenceNumberRange"]
              for c in children), "children open")

    # Closed shards are not eligible any more; a non-adjacent pair is refused.
    for what, call in [
        ("split closed", lambda: kin.split_shard(StreamName=stream, ShardToSplit=s0,
                                                 NewStartingHashKey=str(mid))),
        ("merge closed", lambda: kin.merge_shards(StreamName=stream, ShardToMerge=s1,
                                                  AdjacentShardToMerge=children[0])),
        ("merge non-adjacent", lambda: kin.merge_shards(
            StreamName=stream, ShardToMerge=children[0], AdjacentShardToMerge=children[2])),
    ]:
        try:
            call()
            check(False, f"{what} refused")
        except ClientError as e:
            code = e.response["Error"]["Code"]
            check(code in ("InvalidArgumentException", "ResourceInUseException"),
                  f"{what} refused with {code}")

    after = [(keys[i % 20], f"{keys[i % 20]}:{i}") for i in range(300, 600)]
    placed.update(put(kin, stream, after))
    written = before + after
    post = {d for _, d in after}

    final = shards_by_id(kin, stream)
    check({p: final[p]["SequenceNumberRange"].get("EndingSequenceNumber") for p in parents}
          == ending, "parents' EndingSequenceNumber unchanged by later writes")
    check(sum(1 for sh in final.values()
              if "EndingSequenceNumber" not in sh["SequenceNumberRange"]) == 3,
          "3 open shards")

    # Read every shard; parents before children (ids are in creation order).
    got, ends = {}, {}
    for sid in sorted(final):
        recs, end = read_shard(kin, stream, sid, limit=7)
        got[sid], ends[sid] = recs, end
    all_data = [r["Data"].decode() for recs in got.values() for r in recs]
    check(len(all_data) == len(written) and set(all_data) == {d for _, d in written},
          f"every record stored exactly once ({len(all_data)} read, {len(written)} written)")
    where = {r["Data"].decode(): sid for sid, recs in got.items() for r in recs}
    check(all(where[d] == placed[d] for d in placed), "records are where PutRecords said")
    check(all(where[d] in children for d in post), "post-reshard records only in children")
    check(all(where[d] in parents for _, d in before), "pre-reshard records only in parents")
    check(all(in_range(final[where[d]], hash_key(k)) for k, d in written),
          "each record in the shard whose hash key range holds MD5(key)")
    check(all(got[c] for c in children), f"every child got records: "
          f"{ {c: len(got[c]) for c in children} }")

    # Sequence numbers: ascending within a shard, children above their parents, parents'
    # ending = their last record.
    seqs = {sid: [int(r["SequenceNumber"]) for r in recs] for sid, recs in got.items()}
    check(all(v == sorted(v) and len(set(v)) == len(v) for v in seqs.values()),
          "sequence numbers strictly increasing within each shard")
    check(all(not seqs[p] or max(seqs[p]) == int(ending[p]) for p in parents),
          "parent EndingSequenceNumber = its last record's")
    for c in children:
        ps = [p for p in (final[c].get("ParentShardId"), final[c].get("AdjacentParentShardId"))
              if p]
        start = int(final[c]["SequenceNumberRange"]["StartingSequenceNumber"])
        check(all(start > int(ending[p]) for p in ps) and
              all(min(seqs[c]) > max(seqs[p], default=0) for p in ps),
              f"{c} sequence numbers above its parents {ps}")
    check(final[children[2]].get("ParentShardId") == s2 and
          final[children[2]].get("AdjacentParentShardId") == s1,
          "merged child: ParentShardId = ShardToMerge, AdjacentParentShardId = the other")

    # Null iterator and ChildShards at each parent's end; none for open shards.
    expect_children = {s0: children[:2], s1: children[2:], s2: children[2:]}
    for p in parents:
        end = ends[p]
        ok = end is not None
        if ok:
            cs = end.get("ChildShards") or []
            ok = sorted(c["ShardId"] for c in cs) == expect_children[p] and all(
                c["HashKeyRange"] == final[c["ShardId"]]["HashKeyRange"] and
                c["ParentShards"] == [x for x in (final[c["ShardId"]].get("ParentShardId"),
                                                  final[c["ShardId"]].get("AdjacentParentShardId"))
                                      if x]
                for c in cs)
        check(ok, f"{p}: null NextShardIterator with ChildShards "
                  f"{end.get('ChildShards') if end else None}")
    check(all(ends[c] is None for c in children), "open children never give a null iterator")
    # A closed shard read from LATEST ends at once; from the middle it keeps going first.
    it = kin.get_shard_iterator(StreamName=stream, ShardId=s0,
                                ShardIteratorType="LATEST")["ShardIterator"]
    resp = kin.get_records(ShardIterator=it)
    check(not resp["Records"] and resp.get("NextShardIterator") is None and resp.get("ChildShards"),
          "closed shard from LATEST: no records, null iterator, ChildShards")
    if len(got[s1]) >= 2:
        it = kin.get_shard_iterator(StreamName=stream, ShardId=s1,
                                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                                    StartingSequenceNumber=got[s1][-2]["SequenceNumber"])["ShardIterator"]
        r1 = kin.get_records(ShardIterator=it, Limit=1)
        check(len(r1["Records"]) == 1 and r1.get("NextShardIterator") and not r1.get("ChildShards"),
              "closed shard with records left: iterator not null")

    # Per-key order: parents then children.
    order = {}
    for sid in parents + children:
        for r in got[sid]:
            order.setdefault(r["PartitionKey"], []).append(r["Data"].decode())
    want = {}
    for k, d in written:
        want.setdefault(k, []).append(d)
    check(order == want, "per-key order (parents, then children) = write order")


def concurrency_checks(kin):
    stream = "concurrent"
    create(kin, stream, 2)
    errors, stop, polls = [], threading.Event(), [0]

    def writer(w):
        try:
            for i in range(0, 200, 20):
                recs = [{"PartitionKey": f"w{w}-k{j % 3}", "Data": f"w{w}:{i + j}".encode()}
                        for j in range(20)]
                resp = kin.put_records(StreamName=stream, Records=recs)
                if resp["FailedRecordCount"]:
                    errors.append(f"writer {w}: {resp['FailedRecordCount']} failed")
            for i in range(200, 210):
                kin.put_record(StreamName=stream, PartitionKey=f"w{w}-k{i % 3}",
                               Data=f"w{w}:{i}".encode())
        except Exception as e:  # noqa: BLE001
            errors.append(f"writer {w}: {e!r}")

    def reader():
        try:
            its = [kin.get_shard_iterator(StreamName=stream, ShardId=s,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                   for s in shards_by_id(kin, stream)]
            while not stop.is_set():
                its = [kin.get_records(ShardIterator=it).get("NextShardIterator") for it in its]
                its = [it for it in its if it]  # a split parent read to its end: null
                polls[0] += 1
                kin.list_shards(StreamName=stream)
        except Exception as e:  # noqa: BLE001
            errors.append(f"reader: {e!r}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    rt = threading.Thread(target=reader)
    rt.start()
    for t in threads:
        t.start()
    # Reshard while the writers run.
    kin.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000",
                    NewStartingHashKey=str(2**126))
    for t in threads:
        t.join()
    stop.set()
    rt.join()
    check(not errors, f"8 concurrent writers + a reader ({polls[0]} polls) + a split: "
                      f"no errors {errors[:3]}")

    final = shards_by_id(kin, stream)
    order = {}
    count = 0
    for sid in sorted(final):
        recs, _ = read_shard(kin, stream, sid)
        count += len(recs)
        for r in recs:
            order.setdefault(r["PartitionKey"], []).append(int(r["Data"].decode().split(":")[1]))
    check(count == 8 * 210, f"concurrent writes: {count} stored of {8 * 210}")
    check(all(v == sorted(v) for v in order.values()) and
          sum(len(set(v)) for v in order.values()) == 8 * 210,
          "concurrent writes: each stored once, per-key order kept")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", help="a running moto_serve.py (default: start one)")
    a = p.parse_args()
    server = None
    endpoint = a.endpoint
    if not endpoint:
        server = subprocess.Popen([sys.executable, os.path.join(HERE, "moto_serve.py")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        endpoint = server.stdout.readline().strip()
        if not endpoint.startswith("http://"):
            server.wait()
            print(f"FAIL  moto_serve.py did not start (exit {server.returncode})")
            return 1
    try:
        kin = client(endpoint)
        reshard_checks(kin)
        concurrency_checks(kin)
    except Exception as e:  # noqa: BLE001
        check(False, f"unexpected error: {e!r}")
    finally:
        if server:
            server.stdin.close()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"{len(FAILURES)} check(s) failed" if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
