#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target into DIR/<target>/, derived from
Fixtures/ (golden frames, broken-on-purpose frames, manifests) plus a few
messages the fixtures lack. Each target's input starts with a few steering
bytes (see the target's doc comment); the seeds carry them.
    python3 Fuzz/make_seeds.py DIR
"""
import base64, glob, hashlib, json, os, struct, sys, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "Fixtures")
OUT = sys.argv[1]

# MessageType.allCases, in declaration order: the messages target picks by index.
TYPES = [0x01, 0x02, 0x03, 0x04, 0x05, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
         0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F, 0x30, 0x31, 0x32]
NAMES = ["hello", "helloAck", "error", "checkActive", "active", "register", "registered", "login", "loggedIn",
         "logout", "loggedOut", "announce", "announced", "list", "fileList", "details", "fileDetails", "report",
         "reported", "status", "trackerStatus", "chunkRequest", "chunkData", "chunkCancel"]

def write(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)

def read(path):
    with open(path, "rb") as f:
        return f.read()

frames = sorted(glob.glob(os.path.join(FIXTURES, "frames", "*.frame")) + glob.glob(os.path.join(FIXTURES, "frames", "broken", "*.frame")))

# Frame decoder: read size byte, steering byte, then the stream.
for path in frames:
    name = os.path.basename(path)
    write("FrameDecoder", name, b"\x00\x00" + read(path))
    write("FrameDecoder", "split-" + name, b"\x0b\x01" + read(path))
golden = b"".join(read(p) for p in frames if "/broken/" not in p)
write("FrameDecoder", "all-golden-frames", b"\x06\x02" + golden)

# Messages: type index (top bit: the type's flag), then the payload.
def message(name, payload, flag=False):
    return bytes([NAMES.index(name) | (0x80 if flag else 0)]) + payload

for path in frames:
    data = read(path)
    if len(data) < 12 or data[1] not in TYPES:
        continue
    write("Messages", os.path.basename(path), bytes([TYPES.index(data[1]) | (0x80 if data[2] else 0)]) + data[12:])

def js(obj):
    return json.dumps(obj, sort_keys=True).encode()

manifest = read(os.path.join(FIXTURES, "manifests", "data.bin-16KiB.manifest"))
file_size, chunk_size, count = struct.unpack(">QII", manifest[8:24])
content = hashlib.sha256(manifest).hexdigest()
payload = {"fileSize": file_size, "chunkSize": chunk_size, "digests": base64.b64encode(manifest[24:]).decode()}
chunks = base64.b64encode(bytes([0b10110000, 0, 0])[:(count + 7) // 8]).decode()
token = "ab" * 16
extra = {
    "register": {"user": "maria", "password": "correct horse"},
    "registered": {"user": "maria"},
    "loggedIn": {"token": token, "user": "maria"},
    "logout": {"token": token},
    "loggedOut": {},
    "announce": {"token": token, "replace": True, "files": [
        {"name": "data.bin", "contentID": content, "manifest": payload, "chunks": chunks, "have": [3, 4]},
        {"name": "old.txt", "contentID": content, "withdrawn": True}]},
    "announced": {"files": 2},
    "list": {"token": token},
    "fileList": {"files": [{"name": "data.bin", "contentID": content, "size": file_size, "holders": 1, "partialHolders": 2}]},
    "details": {"token": token, "name": "data.bin", "withoutManifest": False},
    "fileDetails": {"files": [{"name": "data.bin", "contentID": content, "manifest": payload, "holders": [
        {"user": "maria", "host": "127.0.0.1", "port": 9000, "countDownloads": 3, "countFailures": 1,
         "bytesServed": 1 << 40, "chunks": chunks}]}]},
    "report": {"token": token, "contentID": content, "holder": "maria", "outcome": "success", "bytes": 16384},
    "reported": {"holder": "maria", "countDownloads": 4, "countFailures": 1},
    "status": {"token": token},
    "active": {"nonce": 42},
}
for name, obj in extra.items():
    write("Messages", name + ".json", message(name, js(obj)))
write("Messages", "chunkCancel.bin", message("chunkCancel", bytes.fromhex(content) + struct.pack(">I", 3)))
write("Messages", "chunkRequest-stored.bin", message("chunkRequest", bytes.fromhex(content) + struct.pack(">I", 3), flag=True))

# Manifests: the canonical encoding as it is.
for path in sorted(glob.glob(os.path.join(FIXTURES, "manifests", "*.manifest"))) + [os.path.join(FIXTURES, "frames", "notes.txt.manifest")]:
    write("Manifest", os.path.basename(path), read(path))

# Chunk maps: count selector, then the bits.
write("ChunkMap", "empty", b"\x00")
write("ChunkMap", "19-of-data.bin", b"\x05" + bytes([0b10110000, 0xFF, 0b11100000]))
write("ChunkMap", "full-64", b"\x00" + b"\xff" * 8)
write("ChunkMap", "explicit-count", b"\x80\x00\x13" + bytes([0xFF, 0xFF, 0xE0]))
write("ChunkMap", "padding-bits-set", b"\x05" + bytes([0xFF, 0xFF, 0xFF]))

# Inflater: declared size (3 bytes), then the zlib stream of a chunkData fixture.
for path in frames:
    data = read(path)
    if len(data) > 52 and data[1] == 0x31 and data[2] & 1:
        raw_length = struct.unpack(">I", data[48:52])[0]
        write("Inflater", os.path.basename(path), struct.pack(">I", raw_length)[1:] + data[52:])
text = read(os.path.join(FIXTURES, "peer_2", "report.txt"))[:20000]
write("Inflater", "text-level-1", struct.pack(">I", len(text))[1:] + zlib.compress(text, 1))
write("Inflater", "stored-block", struct.pack(">I", 300)[1:] + zlib.compress(os.urandom(0) + bytes(range(256)) + bytes(44), 0))
write("Inflater", "empty", b"\x00\x00\x00" + zlib.compress(b""))
