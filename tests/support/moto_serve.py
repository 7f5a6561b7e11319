"""Runs moto's server in this process on a free 127.0.0.1 port for one test binary.

Prints the endpoint (http://127.0.0.1:PORT) once the server answers, then waits for its
standard input to close (the test binary ended, however it ended) and stops the server.
Fails with one line naming what is missing when moto cannot start.

moto is run in-process (not as `moto_server`) so that, before it serves, a few small patches
make its Kinesis resharding behave as AWS documents it. moto 5.2.5 diverges from AWS:
SplitShard leaves later writes going to the closed parent, MergeShards copies the parents'
records into the child (a reader sees them twice), GetRecords never ends a closed shard,
and the threaded server is not thread-safe. The patches (see patch_kinesis):

  1. SplitShard / MergeShards close the parent(s) with a fixed EndingSequenceNumber (their
     last record's); parents keep their records; nothing is copied into the children.
  2. PutRecord(s) routes a record by MD5(partition key) (or ExplicitHashKey) to the OPEN
     shard whose inclusive hash key range holds it.
  3. GetRecords on a closed shard, once no records remain after the returned ones, returns
     no NextShardIterator (null) and ChildShards [{ShardId, ParentShards, HashKeyRange}].
  4. MergeShards takes the two adjacent shards in either order and refuses closed shards
     (InvalidArgumentException, as SplitShard already does and AWS does).
  5. One global lock serialises all request handling (moto's state is not thread-safe).
  6. Sequence numbers come from one process-wide increasing counter (decimal strings), so a
     child's numbers are greater than its parents' and numbers increase across a stream's
     shards over time, as on AWS. Each shard draws its StartingSequenceNumber from it when
     created.

The patches replace or wrap exact methods of moto 5.2.5 (moto/kinesis/models.py and
responses.py); if one is missing or its signature changed, this script exits at start
naming it rather than serving an unpatched moto.
"""

import hashlib
import inspect
import itertools
import logging
import os
import sys
import threading
import urllib.request

PINNED = "moto[server]==5.2.5"


def fail(msg):
    sys.exit(f"moto_serve.py: {msg}")


# --------------------------------------------------------------------------------------------
# Kinesis patches
# --------------------------------------------------------------------------------------------

# (class name, method name) -> the parameter names the patches were written against (moto 5.2.5)
PATCH_POINTS = {
    ("Shard", "__init__"): ["self", "shard_id", "starting_hash", "ending_hash", "parent",
                            "adjacent_parent"],
    ("Shard", "put_record"): ["self", "partition_key", "data", "explicit_hash_key"],
    ("Shard", "get_records"): ["self", "last_sequence_id", "limit"],
    ("Shard", "get_max_sequence_number"): ["self"],
    ("Shard", "to_json"): ["self"],
    ("Stream", "get_shard_for_key"): ["self", "partition_key", "explicit_hash_key"],
    ("Stream", "split_shard"): ["self", "shard_to_split", "new_starting_hash_key"],
    ("Stream", "merge_shards"): ["self", "shard_to_merge", "adjacent_shard_to_merge"],
    ("Stream", "get_shard"): ["self", "shard_id"],
    ("KinesisBackend", "get_records"): ["self", "stream_arn", "shard_iterator", "limit"],
    ("KinesisBackend", "describe_stream"): ["self", "stream_arn", "stream_name"],
    ("KinesisResponse", "get_records"): ["self"],
}


def check_patch_points(classes):
    import moto

    version = getattr(moto, "__version__", "?")
    for (cls_name, meth), want in PATCH_POINTS.items():
        fn = getattr(classes[cls_name], meth, None)
        if fn is None:
            fail(f"moto {version}: patch point {cls_name}.{meth} not found "
                 f"(the Kinesis patches target {PINNED})")
        got = list(inspect.signature(fn).parameters)
        if got != want:
            fail(f"moto {version}: patch point {cls_name}.{meth}{tuple(got)} changed, expected "
                 f"{tuple(want)} (the Kinesis patches target {PINNED})")
    # Shard attributes the patches read and write.
    shard = classes["Shard"](0, 0, 2**128 - 1)
    for attr in ("_shard_id", "starting_hash", "ending_hash", "records", "is_open", "parent",
                 "adjacent_parent", "shard_id"):
        if not hasattr(shard, attr):
            fail(f"moto {version}: Shard has no attribute {attr!r} "
                 f"(the Kinesis patches target {PINNED})")


def patch_kinesis():
    from moto.kinesis import models, responses, utils
    from moto.kinesis.exceptions import InvalidArgumentError

    Shard, Stream = models.Shard, models.Stream
    KinesisBackend, KinesisResponse = models.KinesisBackend, responses.KinesisResponse
    check_patch_points({"Shard": Shard, "Stream": Stream, "KinesisBackend": KinesisBackend,
                        "KinesisResponse": KinesisResponse})
    for name in ("decompose_shard_iterator",):
        if not hasattr(utils, name):
            fail(f"moto: moto.kinesis.utils.{name} not found (patches target {PINNED})")
    if not hasattr(models, "Record"):
        fail(f"moto: moto.kinesis.models.Record not found (patches target {PINNED})")
    decompose_shard_iterator = utils.decompose_shard_iterator
    Record = models.Record

    # 6. One increasing counter for every sequence number (itertools.count is atomic under
    # the GIL; requests are serialised anyway). moto numbered each shard from 1.
    seq_counter = itertools.count(1)

    orig_shard_init = Shard.__init__

    def shard_init(self, shard_id, starting_hash, ending_hash, parent=None,
                   adjacent_parent=None):
        orig_shard_init(self, shard_id, starting_hash, ending_hash, parent, adjacent_parent)
        self.sluice_starting_seq = next(seq_counter)  # below every record of this shard
        self.sluice_ending_seq = None  # fixed when the shard is closed

    def shard_close(shard):
        # 1. Closed at its current last sequence number (moto recomputed it on every call).
        shard.sluice_ending_seq = shard.get_max_sequence_number() or shard.sluice_starting_seq
        shard.is_open = False

    def shard_put_record(self, partition_key, data, explicit_hash_key):
        # 6. Stream-wide (process-wide) sequence numbers instead of per-shard max + 1.
        if not self.is_open:  # 2. routing never picks a closed shard; be loud if it did
            raise RuntimeError(f"moto_serve patch: write routed to closed {self.shard_id}")
        seq = next(seq_counter)
        self.records[seq] = Record(partition_key, data, seq, explicit_hash_key)
        return str(seq)

    orig_shard_to_json = Shard.to_json

    def shard_to_json(self):
        # 1./6. StartingSequenceNumber from creation; EndingSequenceNumber fixed at close
        # (moto gave the first record's number, or 0, and the live last record's number).
        resp = orig_shard_to_json(self)
        rng = {"StartingSequenceNumber": str(self.sluice_starting_seq)}
        if not self.is_open:
            rng["EndingSequenceNumber"] = str(self.sluice_ending_seq)
        resp["SequenceNumberRange"] = rng
        return resp

    def stream_get_shard_for_key(self, partition_key, explicit_hash_key):
        # 2. Only OPEN shards, hash key ranges inclusive at both ends (moto matched closed
        # shards first and excluded EndingHashKey). Same argument checks as moto.
        if not isinstance(partition_key, str):
            raise InvalidArgumentError("partition_key")
        if len(partition_key) > 256:
            raise InvalidArgumentError("partition_key")
        if explicit_hash_key:
            if not isinstance(explicit_hash_key, str):
                raise InvalidArgumentError("explicit_hash_key")
            int_key = int(explicit_hash_key)
            if int_key >= 2**128:
                raise InvalidArgumentError("explicit_hash_key")
        else:
            int_key = int(hashlib.md5(partition_key.encode("utf-8"),
                                      usedforsecurity=False).hexdigest(), 16)
        for shard in self.shards.values():
            if shard.is_open and shard.starting_hash <= int_key <= shard.ending_hash:
                return shard
        raise RuntimeError(f"moto_serve patch: no open shard holds hash key {int_key}")

    def next_shard_index(stream):
        return max(s._shard_id for s in stream.shards.values()) + 1

    def not_eligible(stream, shard):
        return InvalidArgumentError(
            message=f"Shard {shard.shard_id} in stream {stream.stream_name} under account "
                    f"{stream.account_id} has already been merged or split, and thus is not "
                    f"eligible for merging or splitting.")

    def stream_split_shard(self, shard_to_split, new_starting_hash_key):
        # 1. Like moto's, minus re-putting the parent's records (which landed back in the
        # parent): the parent is closed with its records; the children start empty.
        new_start = int(new_starting_hash_key)
        shard = self.shards[shard_to_split]
        if not shard.starting_hash < new_start < shard.ending_hash:
            raise InvalidArgumentError(
                message=f"NewStartingHashKey {new_start} used in SplitShard() on shard "
                        f"{shard_to_split} in stream {self.stream_name} under account "
                        f"{self.account_id} is not both greater than one plus the shard's "
                        f"StartingHashKey {shard.starting_hash} and less than the shard's "
                        f"EndingHashKey {(shard.ending_hash - 1)}.")
        if not shard.is_open:
            raise not_eligible(self, shard)
        shard_close(shard)  # before the children exist: theirs are higher numbers
        first = next_shard_index(self)
        for index, lo, hi in ((first, shard.starting_hash, new_start - 1),
                              (first + 1, new_start, shard.ending_hash)):
            child = Shard(index, starting_hash=lo, ending_hash=hi, parent=shard.shard_id)
            self.shards[child.shard_id] = child
        self.shard_count = sum(s.is_open for s in self.shards.values())

    def stream_merge_shards(self, shard_to_merge, adjacent_shard_to_merge):
        # 1./4. Either order, both open, parents closed with their records, child empty.
        shard1 = self.shards[shard_to_merge]
        shard2 = self.shards[adjacent_shard_to_merge]
        for s in (shard1, shard2):
            if not s.is_open:
                raise not_eligible(self, s)
        if shard1.ending_hash + 1 == shard2.starting_hash:
            lo, hi = shard1.starting_hash, shard2.ending_hash
        elif shard2.ending_hash + 1 == shard1.starting_hash:
            lo, hi = shard2.starting_hash, shard1.ending_hash
        else:
            raise InvalidArgumentError(
                message=f"Shards {shard_to_merge} and {adjacent_shard_to_merge} in stream "
                        f"{self.stream_name} under account {self.account_id} are not an "
                        f"adjacent pair of shards eligible for merging")
        shard_close(shard1)
        shard_close(shard2)
        child = Shard(next_shard_index(self), starting_hash=lo, ending_hash=hi,
                      parent=shard1.shard_id, adjacent_parent=shard2.shard_id)
        self.shards[child.shard_id] = child
        self.shard_count = sum(s.is_open for s in self.shards.values())

    orig_backend_get_records = KinesisBackend.get_records

    def shard_of_iterator(backend, stream_arn, shard_iterator):
        stream_name, shard_id, _ = decompose_shard_iterator(shard_iterator)
        stream = backend.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
        return stream, stream.get_shard(shard_id)

    def backend_get_records(self, stream_arn, shard_iterator, limit):
        # 3. A closed shard read to its end gives a null NextShardIterator.
        next_it, records, millis = orig_backend_get_records(
            self, stream_arn, shard_iterator, limit)
        _, shard = shard_of_iterator(self, stream_arn, shard_iterator)
        if not shard.is_open:
            position = int(decompose_shard_iterator(next_it)[2])
            if position >= shard.get_max_sequence_number():
                next_it = None
        return next_it, records, millis

    orig_response_get_records = KinesisResponse.get_records

    def response_get_records(self):
        # 3. With a null NextShardIterator: omit it and list the shard's ChildShards.
        result = orig_response_get_records(self)
        body = result.result
        if body.get("NextShardIterator") is None:
            body.pop("NextShardIterator", None)
            stream, shard = shard_of_iterator(
                self.kinesis_backend, self._get_param("StreamARN"),
                self._get_param("ShardIterator"))
            body["ChildShards"] = [
                {"ShardId": c.shard_id,
                 "ParentShards": [p for p in (c.parent, c.adjacent_parent) if p],
                 "HashKeyRange": {"StartingHashKey": str(c.starting_hash),
                                  "EndingHashKey": str(c.ending_hash)}}
                for c in stream.shards.values()
                if shard.shard_id in (c.parent, c.adjacent_parent)]
        return result

    Shard.__init__ = shard_init
    Shard.put_record = shard_put_record
    Shard.to_json = shard_to_json
    Stream.get_shard_for_key = stream_get_shard_for_key
    Stream.split_shard = stream_split_shard
    Stream.merge_shards = stream_merge_shards
    KinesisBackend.get_records = backend_get_records
    KinesisResponse.get_records = response_get_records


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


class Serialised:
    """5. A WSGI app that handles one request at a time (body produced under the lock)."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                if hasattr(result, "close"):
                    result.close()


def main():
    try:
        from werkzeug.serving import make_server
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        import moto.kinesis.models  # noqa: F401
        import moto.kinesis.responses  # noqa: F401
    except ImportError as e:
        fail(f"cannot import moto's server ({e}); pip install '{PINNED}'")

    patch_kinesis()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request log lines

    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # as moto_server does
    server = make_server("127.0.0.1", 0, Serialised(app), threaded=True,
                         request_handler=MotoRequestHandler)
    port = server.server_port
    os.environ.setdefault("MOTO_PORT", str(port))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    endpoint = f"http://127.0.0.1:{port}"
    try:
        urllib.request.urlopen(endpoint + "/moto-api/", timeout=30).read()
    except Exception as e:
        fail(f"moto's server did not answer on {endpoint}: {e}")
    print(endpoint, flush=True)
    try:
        sys.stdin.read()
    finally:
        server.shutdown()
        thread.join(timeout=5)


if __name__ == "__main__":
    main()
