#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/ (run from anywhere; idempotent).

Seeds are valid inputs of each target's format, so the fuzzer starts from
deep inside the decoders: frontend messages as psql and the drivers send
them, statements from the conformance corpus (tests/sql/*.slt), replication
frames of every kind, and write batches as duet writes them.
"""
import hashlib
import struct
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CORPUS = ROOT / "corpus"


def save(target, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


# --- frontend_message: first byte 0 = starts with a startup packet, 1 = typed
def msg(kind, body):
    return kind + struct.pack(">i", 4 + len(body)) + body


def cstr(s):
    return s.encode() + b"\0"


def startup(params):
    body = struct.pack(">i", 196608) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return struct.pack(">i", 4 + len(body)) + body


def bind(portal, stmt, params, result_formats):
    body = cstr(portal) + cstr(stmt)
    body += struct.pack(">h", 1) + struct.pack(">h", 0)
    body += struct.pack(">h", len(params))
    for p in params:
        if p is None:
            body += struct.pack(">i", -1)
        else:
            body += struct.pack(">i", len(p)) + p
    body += struct.pack(">h", len(result_formats)) + b"".join(struct.pack(">h", f) for f in result_formats)
    return msg(b"B", body)


def parse(name, sql, oids):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack(">h", len(oids)) + b"".join(struct.pack(">i", o) for o in oids))


query = msg(b"Q", cstr("SELECT 1"))
sync = msg(b"S", b"")
extended = (
    parse("s1", "SELECT $1::int + 1", [23])
    + msg(b"D", b"S" + cstr("s1"))
    + bind("", "s1", [b"41"], [1])
    + msg(b"D", b"P" + cstr(""))
    + msg(b"E", cstr("") + struct.pack(">i", 0))
    + msg(b"C", b"S" + cstr("s1"))
    + sync
)
frontend = [
    b"\0" + startup([("user", "root"), ("database", "defaultdb"), ("application_name", "psql")]) + query + msg(b"X", b""),
    b"\0" + struct.pack(">ii", 8, 80877103),  # SSLRequest
    b"\0" + struct.pack(">iiii", 16, 80877102, 42, 7),  # CancelRequest
    b"\0" + startup([("user", "replicator"), ("replication", "database")]) + msg(b"p", cstr("password")),
    b"\1" + query + sync,
    b"\1" + extended,
    b"\1" + msg(b"Q", cstr("COPY t FROM STDIN")) + msg(b"d", b"1\tone\n2\ttwo\n") + msg(b"c", b""),
    b"\1" + msg(b"Q", cstr("COPY t FROM STDIN")) + msg(b"d", b"1\n") + msg(b"f", cstr("client gave up")),
    b"\1" + msg(b"p", b"SCRAM-SHA-256\0" + struct.pack(">i", 32) + b"n,,n=,r=fyko+d2lbbFgONRv9qkxdawL"),
    b"\1" + msg(b"H", b"") + msg(b"F", struct.pack(">i", 1)),
    b"\1" + bind("p", "", [None, b"\0\0\0\x07"], [0, 1]) + msg(b"E", cstr("p") + struct.pack(">i", 10)) + sync,
]
for f in frontend:
    save("frontend_message", f)

# --- sql_statement: every statement of the conformance corpus, one per file
for slt in sorted((ROOT.parent / "tests" / "sql").glob("*.slt")):
    lines = slt.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith(("statement", "query")):
            i += 1
            block = []
            while i < len(lines) and lines[i].strip() and lines[i] != "----":
                block.append(lines[i])
                i += 1
            if block:
                save("sql_statement", "\n".join(block).encode())
        i += 1


# --- replication_frame: every kind, both directions
def batch_frame(epoch, lsn, data):
    return b"w" + struct.pack(">QQI", epoch, lsn, zlib.crc32(data)) + data


for f in [
    batch_frame(1, 17, b"\x11" * 12),
    batch_frame(0, 1, b""),
    b"k" + struct.pack(">QB", 123456, 1),
    b"e" + struct.pack(">Q", 99) + b"crc64:0123456789abcdef",
    b"r" + struct.pack(">QQQ", 10, 9, 8),
    b"x",
]:
    save("replication_frame", f)


# --- writebatch_apply: [u16 len][batch] chunks; the seq is stamped by the target
def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def write_batch(entries):
    body = b""
    for e in entries:
        if e[1] is None:
            body += b"\x00" + varint(len(e[0])) + e[0]
        else:
            body += b"\x01" + varint(len(e[0])) + e[0] + varint(len(e[1])) + e[1]
    return struct.pack("<QI", 0, len(entries)) + body


def chunks(batches):
    return b"".join(struct.pack("<H", len(b)) + b for b in batches)


for batches in [
    [write_batch([(b"k1", b"v1")])],
    [write_batch([(b"a", b"1"), (b"b", None)]), write_batch([(b"c", b"x" * 300)])],
    [write_batch([(bytes([0xF0, i]), bytes([i]) * i) for i in range(20)])],
    [write_batch([(b"gone", None)]), write_batch([(b"k", b"")])],
]:
    save("writebatch_apply", chunks(batches))
