#!/usr/bin/env python3
"""Seed the Android fuzz corpora from the real vectors in tests/data/android.

android_chain: one file per record: a count byte, then each certificate as a 2-byte big-endian
length + DER (the format fuzz_targets/android_chain.rs splits).
android_key_description: each leaf's KeyDescription extension value, and each leaf certificate.
safetynet: each SafetyNet record's compact JWS, and its decoded payload JSON.
"""
import base64, glob, json, os, sys

root = os.path.join(os.path.dirname(__file__), "..", "..")
out = os.path.join(os.path.dirname(__file__), "..", "corpus")
OID = bytes.fromhex("060a2b06010401d679020111")  # 1.3.6.1.4.1.11129.2.1.17


def der_len(b, i):
    first = b[i]
    if first < 0x80:
        return first, i + 1
    n = first & 0x7F
    return int.from_bytes(b[i + 1 : i + 1 + n], "big"), i + 1 + n


def key_description(cert):
    at = cert.find(OID)
    if at < 0:
        return None
    i = at + len(OID)
    if cert[i] == 0x01:  # critical BOOLEAN
        i += 3
    if cert[i] != 0x04:
        return None
    length, start = der_len(cert, i + 1)
    return cert[start : start + length]


os.makedirs(os.path.join(out, "android_chain"), exist_ok=True)
os.makedirs(os.path.join(out, "android_key_description"), exist_ok=True)
for path in sorted(glob.glob(os.path.join(root, "tests/data/android/key_attestation/*.json"))):
    record = json.load(open(path))
    chain = [base64.b64decode(c) for c in record["x5c"]]
    blob = bytes([len(chain)]) + b"".join(len(c).to_bytes(2, "big") + c for c in chain)
    name = record["id"]
    open(os.path.join(out, "android_chain", name), "wb").write(blob)
    open(os.path.join(out, "android_key_description", name + "-leaf"), "wb").write(chain[0])
    kd = key_description(chain[0])
    if kd:
        open(os.path.join(out, "android_key_description", name + "-kd"), "wb").write(kd)
os.makedirs(os.path.join(out, "safetynet"), exist_ok=True)
for path in sorted(glob.glob(os.path.join(root, "tests/data/android/safetynet/*.json"))):
    record = json.load(open(path))
    jws = record["jws"].encode()
    name = record["id"]
    open(os.path.join(out, "safetynet", name), "wb").write(jws)
    payload = jws.split(b".")[1]
    payload = base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
    open(os.path.join(out, "safetynet", name + "-payload"), "wb").write(payload)
print("seeded", file=sys.stderr)
