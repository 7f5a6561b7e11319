#!/usr/bin/env python3
"""A small fault-injecting HTTP/1.1 proxy for the Kinesis tests (standard library only).

Sits between a client (the Rust AWS SDK, boto3) and moto_server (or `sluice featurestore
serve`) and, per AWS request (one that carries an X-Amz-Target header such as
`Kinesis_20131202.GetRecords`, or a REST call of the Feature Store runtime API: PutRecord,
GetRecord, DeleteRecord, BatchGetRecord), draws one number u in [0, 1) and:

  u < throttle                       -> 400 ProvisionedThroughputExceededException (REST calls:
                                        ThrottlingException), not forwarded
  u < throttle + error500            -> 500 InternalFailure, not forwarded
  u < throttle + error500 + drop     -> the client connection is closed with no response
  u < ... + drop + expire            -> (GetRecords only) 400 ExpiredIteratorException, not
                                        forwarded: the reader must get a new iterator
  otherwise                          -> forwarded; for PutRecords each record independently fails
                                        with probability --partial: it is removed from the request
                                        (moto never sees it) and a failure entry is spliced back
                                        into the response's Records at its position, with
                                        FailedRecordCount raised to match.

--deny answers every faulted request with 400 AccessDeniedException (access tests);
--deny-s3 answers every S3 REST request (no X-Amz-Target) with 403 AccessDenied.
--only OP1,OP2 limits the faults to those operations; requests without X-Amz-Target (moto's
/moto-api, ...) are never faulted. Client connections are kept alive (HTTP/1.1); each forwarded
request opens its own upstream connection, since moto answers every request with
`Connection: close`. Forwarding is serialised by default (--no-serialize to allow concurrency):
moto's Kinesis backend is not thread-safe (concurrent PutRecords to one shard lose records,
GetRecords during a put can fail with a 500).

With --port 0 a free port is bound; the port is written to --ready-file once the proxy accepts
connections. SIGTERM or SIGINT prints the injected fault counts to stderr as one line,
`fault_proxy stats: {json}`, and exits 0.

  fault_proxy.py --upstream http://127.0.0.1:PORT --port 0 --ready-file F [--seed N]
                 [--throttle P] [--error500 P] [--drop P] [--expire P] [--partial P]
                 [--deny] [--only OPS] [--no-serialize] [--verbose]
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade", "content-length",
}
AMZ_JSON = "application/x-amz-json-1.1"
THROTTLE_BODY = {"__type": "ProvisionedThroughputExceededException",
                 "message": "Rate exceeded for shard"}
ERROR500_BODY = {"__type": "InternalFailure", "message": "injected"}
REST_THROTTLE_BODY = {"__type": "ThrottlingException", "message": "Rate exceeded (injected)"}
EXPIRED_BODY = {"__type": "ExpiredIteratorException",
                "message": "Iterator expired. The iterator was created at time (injected)"}
DENY_S3_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                b'<Message>Access Denied (injected)</Message></Error>')
DENY_BODY = {"__type": "AccessDeniedException",
             "message": "User is not authorized to perform this action (injected)"}
PARTIAL_ENTRY = {"ErrorCode": "ProvisionedThroughputExceededException",
                 "ErrorMessage": "injected"}


class Faults:
    """Random draws and counters, shared by all handler threads."""

    def __init__(self, args):
        self.args = args
        self.rnd = random.Random(args.seed)
        self.lock = threading.Lock()
        self.only = set(filter(None, (args.only or "").split(","))) or None
        self.counts = {"requests": 0, "forwarded": 0, "throttle": 0, "error500": 0, "drop": 0,
                       "expire": 0, "deny": 0, "partial_requests": 0, "partial_records": 0}

    def faulted(self, op):
        return op is not None and (self.only is None or op in self.only)

    def draw(self):
        with self.lock:
            return self.rnd.random()

    def count(self, kind, n=1):
        with self.lock:
            self.counts[kind] += n

    def snapshot(self):
        with self.lock:
            return dict(self.counts)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for the client side
    server_version = "fault_proxy"

    def log_message(self, fmt, *args):
        if self.server.args.verbose:
            sys.stderr.write("fault_proxy: " + (fmt % args) + "\n")

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status, headers, body):
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def reply_json(self, status, obj, error_type=None):
        headers = [("Content-Type", AMZ_JSON), ("x-amzn-RequestId", "fault-proxy")]
        if error_type:
            headers.append(("x-amzn-ErrorType", error_type))
        self.reply(status, headers, json.dumps(obj).encode())

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def forward(self, body, strip_encoding=False):
        """Sends the request upstream; returns (status, [(name, value)], body)."""
        up = self.server.upstream
        headers = {}
        for name, value in self.headers.items():
            low = name.lower()
            if low in HOP_BY_HOP or (strip_encoding and low == "accept-encoding"):
                continue
            headers[name] = value
        headers["Content-Length"] = str(len(body))
        with self.server.forward_lock:
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                out = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
                return resp.status, out, data
            finally:
                conn.close()

    def put_records_partial(self, body, faults):
        try:
            req = json.loads(body)
            records = req["Records"]
        except (ValueError, KeyError, TypeError):
            return None  # not a request we understand: forward it unchanged
        failed = [faults.draw() < self.server.args.partial for _ in records]
        if not any(failed):
            return None
        kept = [r for r, f in zip(records, failed) if not f]
        if kept:
            req["Records"] = kept
            status, headers, data = self.forward(json.dumps(req).encode(), strip_encoding=True)
            faults.count("forwarded")
            if status != 200:
                # The whole call failed: the client retries every record, nothing was injected.
                return status, headers, data
            resp = json.loads(data)
            upstream = iter(resp.get("Records", []))
        else:
            status, headers, resp, upstream = 200, [("Content-Type", AMZ_JSON)], {}, iter(())
        resp["Records"] = [dict(PARTIAL_ENTRY) if f else next(upstream) for f in failed]
        resp["FailedRecordCount"] = resp.get("FailedRecordCount", 0) + sum(failed)
        faults.count("partial_requests")
        faults.count("partial_records", sum(failed))
        return status, headers, json.dumps(resp).encode()

    def handle_any(self):
        faults = self.server.faults
        args = self.server.args
        body = self.read_body()
        target = self.headers.get("X-Amz-Target")
        op = target.rsplit(".", 1)[-1] if target else rest_operation(self.command, self.path)
        faults.count("requests")
        if args.deny_s3 and op is None and not self.path.startswith("/moto-api"):
            # S3's REST protocol: 403 with an XML error (no body for HEAD).
            faults.count("deny")
            body = b"" if self.command == "HEAD" else DENY_S3_BODY
            return self.reply(403, [("Content-Type", "application/xml")], body)
        if faults.faulted(op) and args.deny:
            faults.count("deny")
            return self.reply_json(400, DENY_BODY, DENY_BODY["__type"])
        if faults.faulted(op):
            u = faults.draw()
            if u < args.throttle:
                faults.count("throttle")
                body = THROTTLE_BODY if target else REST_THROTTLE_BODY
                return self.reply_json(400, body, body["__type"])
            if u < args.throttle + args.error500:
                faults.count("error500")
                return self.reply_json(500, ERROR500_BODY, ERROR500_BODY["__type"])
            if u < args.throttle + args.error500 + args.drop:
                faults.count("drop")
                return self.drop()
            if op == "GetRecords" and u < args.throttle + args.error500 + args.drop + args.expire:
                faults.count("expire")
                return self.reply_json(400, EXPIRED_BODY, EXPIRED_BODY["__type"])
        try:
            result = None
            if faults.faulted(op) and op == "PutRecords" and args.partial > 0:
                result = self.put_records_partial(body, faults)
            if result is None:
                result = self.forward(body)
                faults.count("forwarded")
        except OSError as e:
            self.log_message("upstream error: %r", e)
            result = 502, [("Content-Type", "text/plain")], b"upstream error\n"
        self.reply(*result)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any


def rest_operation(method, path):
    """The operation of a REST request of the Feature Store runtime API, else None."""
    if path.startswith("/FeatureGroup/"):
        return {"PUT": "PutRecord", "GET": "GetRecord", "DELETE": "DeleteRecord"}.get(method)
    if method == "POST" and path.startswith("/BatchGetRecord"):
        return "BatchGetRecord"
    return None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:5000")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 binds a free port")
    p.add_argument("--ready-file", help="the bound port is written here once listening")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--throttle", type=float, default=0.0)
    p.add_argument("--error500", type=float, default=0.0)
    p.add_argument("--drop", type=float, default=0.0)
    p.add_argument("--expire", type=float, default=0.0,
                   help="GetRecords answered with ExpiredIteratorException")
    p.add_argument("--deny", action="store_true", help="every faulted call: AccessDeniedException")
    p.add_argument("--deny-s3", action="store_true",
                   help="every S3 (REST) request: 403 AccessDenied")
    p.add_argument("--partial", type=float, default=0.0, help="per-record PutRecords failure")
    p.add_argument("--only", help="comma-separated operations to fault, e.g. GetRecords,ListShards")
    p.add_argument("--no-serialize", action="store_true",
                   help="forward requests concurrently (moto's Kinesis is not thread-safe)")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    if args.throttle + args.error500 + args.drop + args.expire > 1:
        p.error("throttle + error500 + drop + expire must not exceed 1")

    server = Server((args.host, args.port), Handler)
    server.args = args
    server.upstream = urllib.parse.urlsplit(args.upstream)
    server.faults = Faults(args)
    server.forward_lock = threading.Lock() if not args.no_serialize else _NoLock()
    port = server.server_address[1]

    def stop(signum, frame):
        sys.stderr.write("fault_proxy stats: %s\n" % json.dumps(server.faults.snapshot()))
        sys.stderr.flush()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.ready_file)
    print("fault_proxy listening on %s:%d -> %s" % (args.host, port, args.upstream), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
