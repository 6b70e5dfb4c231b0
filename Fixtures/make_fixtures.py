#!/usr/bin/env python3
"""Writes Shoal's test fixtures: sample peer folders, golden frames and manifests.

This is an independent implementation of the formats in PROTOCOL.md (Python's
hashlib, zlib and json, no Shoal code), so the Swift tests that read these files
cross-check the Swift encoders and decoders against the specification.
Deterministic: running it again writes the same bytes. Run from anywhere:
    python3 Fixtures/make_fixtures.py
"""
import hashlib, json, os, random, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(1006)

def write(rel, data):
    path = os.path.join(HERE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)

# ---- sample peer folders -------------------------------------------------
def text(lines):
    words = "peer tracker chunk manifest digest frame shoal swarm verify resume compress seed".split()
    return "".join(f"{i:04d} " + " ".join(rng.choice(words) for _ in range(9)) + "\n" for i in range(lines)).encode()

peers = {
    "peer_1": {"notes.txt": text(400), "photo.bin": bytes(rng.getrandbits(8) for _ in range(48_000))},
    "peer_2": {"report.txt": text(1200), "data.bin": bytes(rng.getrandbits(8) for _ in range(300_000)),
               "meeting notes.txt": text(50)},
    "peer_3": {"καλημέρα.txt": "Καλημέρα κόσμε! Shoal μοιράζει αρχεία.\n".encode() * 40, "empty.txt": b""},
}
for peer, files in peers.items():
    for name, data in files.items():
        write(os.path.join(peer, name), data)

# ---- manifests ----------------------------------------------------------
MAGIC = b"SHOALMF1"

def chunk_size_for(size):
    wanted = (size + 1023) // 1024
    c = 256 * 1024
    while c < wanted and c < 4 * 1024 * 1024:
        c <<= 1
    return c

def manifest(data, chunk=None):
    chunk = chunk or chunk_size_for(len(data))
    digests = [hashlib.sha256(data[i:i + chunk]).digest() for i in range(0, len(data), chunk)]
    return MAGIC + struct.pack(">QII", len(data), chunk, len(digests)) + b"".join(digests)

expected = {}
for peer, files in peers.items():
    for name, data in files.items():
        m = manifest(data)
        expected[f"{peer}/{name}"] = {"contentID": hashlib.sha256(m).hexdigest(), "size": len(data),
                                      "chunkSize": chunk_size_for(len(data)),
                                      "chunks": (len(data) + chunk_size_for(len(data)) - 1) // chunk_size_for(len(data))}
# data.bin with 16 KiB chunks: several chunks, the last one short.
data_bin = peers["peer_2"]["data.bin"]
m16 = manifest(data_bin, 16 * 1024)
expected["peer_2/data.bin@16KiB"] = {"contentID": hashlib.sha256(m16).hexdigest(), "size": len(data_bin),
                                     "chunkSize": 16 * 1024, "chunks": (len(data_bin) + 16383) // 16384}
expected["empty"] = {"contentID": hashlib.sha256(manifest(b"")).hexdigest(), "size": 0, "chunkSize": 262144, "chunks": 0}
write("manifests/expected.json", (json.dumps(expected, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())
write("manifests/data.bin-16KiB.manifest", m16)
write("manifests/empty.manifest", manifest(b""))

# Broken on purpose, named after their defect.
header = lambda size, chunk, count: MAGIC + struct.pack(">QII", size, chunk, count)
digests16 = m16[24:]
write("manifests/too-few-digests.manifest", header(len(data_bin), 16384, 18) + digests16[:18 * 32])
write("manifests/count-lies.manifest", header(len(data_bin), 16384, 20) + digests16 + b"\0" * 32)
write("manifests/bad-magic.manifest", b"SHOALMF9" + m16[8:])
write("manifests/truncated.manifest", m16[:-7])
write("manifests/trailing-bytes.manifest", m16 + b"\x00\x01")
write("manifests/absurd-size.manifest", header(1 << 62, 4 << 20, 1 << 20))
write("manifests/zero-chunk-size.manifest", header(100, 0, 0))

# ---- frames --------------------------------------------------------------
TYPES = {"hello": 0x01, "helloAck": 0x02, "error": 0x03, "checkActive": 0x04, "active": 0x05,
         "login": 0x12, "chunkRequest": 0x30, "chunkData": 0x31}

def frame(type_, payload, request_id=0, flags=0, version=1, reserved=0, length=None):
    length = len(payload) if length is None else length
    return struct.pack(">BBBBII", version, type_, flags, reserved, length, request_id) + payload

def js(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

notes = peers["peer_1"]["notes.txt"]
notes_m = manifest(notes)
notes_id = hashlib.sha256(notes_m).digest()
assert len(notes) < 256 * 1024  # one chunk

def chunk_data(data, raw_len, compressed, request_id=7, index=0, cid=notes_id):
    return frame(TYPES["chunkData"], cid + struct.pack(">II", index, raw_len) + data, request_id, 1 if compressed else 0)

golden = {
    "hello.frame": frame(TYPES["hello"], js({"protocol": "shoal", "role": "peer", "software": "shoal 0.1.0", "versions": [1]})),
    "helloAck.frame": frame(TYPES["helloAck"], js({"role": "tracker", "software": "shoal 0.1.0", "version": 1})),
    "error.frame": frame(TYPES["error"], js({"code": "not_found", "message": "no file named report.txt"}), 9),
    "checkActive.frame": frame(TYPES["checkActive"], js({"nonce": 42}), 3),
    "chunkRequest.frame": frame(TYPES["chunkRequest"], notes_id + struct.pack(">I", 0), 7),
    "chunkData-stored.frame": chunk_data(notes, len(notes), False),
    "chunkData-compressed.frame": chunk_data(zlib.compress(notes, 1), len(notes), True),
}
for name, data in golden.items():
    write("frames/" + name, data)
write("frames/notes.txt.manifest", notes_m)

# Broken on purpose.
hello = golden["hello.frame"]
broken = {
    "wrong-version.frame": frame(TYPES["hello"], hello[12:], version=2),
    "unknown-type.frame": frame(0x7F, b"{}"),
    "oversize-length.frame": frame(TYPES["chunkData"], b"", length=0xFFFF_FFF0)[:12],
    "undefined-flags.frame": frame(TYPES["hello"], hello[12:], flags=0x01),
    "nonzero-reserved.frame": frame(TYPES["hello"], hello[12:], reserved=1),
    "truncated-payload.frame": hello[:-5],
    "truncated-header.frame": hello[:7],
    "malformed-json.frame": frame(TYPES["login"], b'{"user": "maria", "password": '),
    "missing-field.frame": frame(TYPES["login"], js({"user": "maria", "port": 9000})),
    "chunkRequest-short.frame": frame(TYPES["chunkRequest"], notes_id[:20]),
    "chunkData-zip-bomb.frame": chunk_data(zlib.compress(notes + b"\0" * 1_000_000, 9), len(notes), True),
    "chunkData-corrupt-zlib.frame": chunk_data(bytes(b ^ 0x5A if 40 < i < 60 else b for i, b in enumerate(zlib.compress(notes, 1))), len(notes), True),
    "chunkData-truncated-zlib.frame": chunk_data(zlib.compress(notes, 1)[:-40], len(notes), True),
    "chunkData-bad-hash.frame": chunk_data(notes[:100] + b"X" + notes[101:], len(notes), False),
    "chunkData-lying-length.frame": chunk_data(notes + b"extra", len(notes) + 5, False),
    "chunkData-short-data.frame": chunk_data(notes[:-10], len(notes), False),
    "chunkData-wrong-content.frame": chunk_data(notes, len(notes), False, cid=hashlib.sha256(b"other").digest()),
    "chunkData-index-out-of-range.frame": chunk_data(notes, len(notes), False, index=5),
}
for name, data in broken.items():
    write("frames/broken/" + name, data)
print("fixtures written to", HERE)
