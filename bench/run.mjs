// Times the npm App Attest verifiers on the real records of tests/data/apple, for
// bench/peers.sh. Usage:
//
//   node bench/run.mjs probe                     which records each peer accepts
//   node bench/run.mjs time <impl> <op> <record.json> [--seconds S] [--warmup S]
//
// <impl> is node-app-attest or appattest-checker-node, <op> attestation or assertion.
// `time` prints one line `RESULT <op> <impl> <ops/s> <calls> <seconds>` and exits non-zero if
// the peer does not accept the record, accepts a tampered copy, or fails any timed call.
//
// Inputs are decoded once, outside the loop (as `attestd bench` does); every timed call does the
// full verification the peer's public API offers, and asynchronous calls are awaited one by one.

import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { readFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

import * as nodeAppAttest from "node-app-attest";

const require = createRequire(import.meta.url);
const checker = require("appattest-checker-node");

const HERE = dirname(fileURLToPath(import.meta.url));
const DATA = join(HERE, "..", "tests", "data", "apple");

// ---------------------------------------------------------------------------------------------
// Clock. appattest-checker-node checks certificate validity with @peculiar/x509's
// `verify({publicKey})`, which compares notBefore/notAfter with `new Date()` and offers the
// library's caller no way to pass a time. Every sample certificate has expired, so `new Date()`
// (no arguments) and `Date.now()` are pinned to the record's `verify_at`. Dates built from
// explicit arguments are untouched; the timing loop uses process.hrtime, not Date.
// node-app-attest does not look at certificate validity at all, so the pin does not affect it.
const RealDate = Date;
let pinnedMs = null;
class PinnedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0 && pinnedMs !== null) super(pinnedMs);
    else super(...args);
  }
  static now() {
    return pinnedMs !== null ? pinnedMs : RealDate.now();
  }
}
globalThis.Date = PinnedDate;
function pinClock(rfc3339) {
  pinnedMs = rfc3339 ? RealDate.parse(rfc3339) : null;
}

// ---------------------------------------------------------------------------------------------
// Records.

const sha256 = (bytes) => createHash("sha256").update(bytes).digest();
const b64 = (text) => Buffer.from(text, "base64");

function spkiPem(der) {
  const lines = der.toString("base64").match(/.{1,64}/g).join("\n");
  return `-----BEGIN PUBLIC KEY-----\n${lines}\n-----END PUBLIC KEY-----\n`;
}

function splitAppId(appId) {
  const dot = appId.indexOf(".");
  return { teamIdentifier: appId.slice(0, dot), bundleIdentifier: appId.slice(dot + 1) };
}

// Both peers take the server's challenge and compute clientDataHash = SHA256(challenge) themselves,
// while a record stores only client_data_hash (and says in challenge_note what was hashed). Recover
// the challenge bytes from the note: every quoted string, UUID (as ASCII and as 16 raw bytes),
// base64 token and trailing JSON document is a candidate, and the one whose SHA-256 equals
// client_data_hash is the challenge. Records with no such preimage (Apple's samples, which use the
// raw challenge as clientDataHash) cannot be given to either peer.
function recoverChallenge(record) {
  const note = record.challenge_note || "";
  const want = record.client_data_hash;
  const candidates = [];
  for (const m of note.matchAll(/"([^"]*)"/g)) candidates.push(Buffer.from(m[1], "utf8"));
  for (const m of note.matchAll(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi)) {
    candidates.push(Buffer.from(m[0], "utf8"), Buffer.from(m[0].replaceAll("-", ""), "hex"));
  }
  for (const m of note.matchAll(/[A-Za-z0-9+/]{8,}={0,2}/g)) candidates.push(b64(m[0]));
  const json = note.indexOf("= {");
  if (json !== -1) candidates.push(Buffer.from(note.slice(json + 2), "utf8"));
  return candidates.find((c) => sha256(c).toString("hex") === want) ?? null;
}

function loadRecord(path) {
  return JSON.parse(readFileSync(path, "utf8"));
}

// ---------------------------------------------------------------------------------------------
// The peers. Each builder returns {call, sync, tampered} for one record, or throws if the record
// cannot be expressed in the peer's API. `call` returns true only on a successful verification.

function attestationInputs(record) {
  const challenge = recoverChallenge(record);
  if (!challenge) throw new Error("no challenge preimage for client_data_hash in challenge_note");
  const tampered = Buffer.from(challenge);
  tampered[0] ^= 1;
  return {
    attestation: b64(record.attestation),
    keyId: record.key_id,
    challenge,
    tampered,
    appId: record.app_id,
    development: record.environment === "development",
  };
}

function assertionInputs(record) {
  const clientData = b64(record.client_data);
  const tampered = Buffer.concat([clientData, Buffer.from([0])]);
  return {
    assertion: b64(record.assertion),
    publicKeyPem: spkiPem(b64(record.public_key)),
    clientData,
    tampered,
    appId: record.app_id,
    previousCounter: record.previous_counter ?? 0,
  };
}

const PEERS = {
  "node-app-attest": {
    attestation(record) {
      const i = attestationInputs(record);
      const { teamIdentifier, bundleIdentifier } = splitAppId(i.appId);
      const run = (challenge) => {
        try {
          const result = nodeAppAttest.verifyAttestation({
            attestation: i.attestation,
            challenge,
            keyId: i.keyId,
            bundleIdentifier,
            teamIdentifier,
            allowDevelopmentEnvironment: i.development,
          });
          return typeof result.publicKey === "string";
        } catch {
          return false;
        }
      };
      return { sync: true, call: () => run(i.challenge), tampered: () => run(i.tampered) };
    },
    assertion(record) {
      const i = assertionInputs(record);
      const { teamIdentifier, bundleIdentifier } = splitAppId(i.appId);
      // verifyAssertion hashes `payload` itself (clientDataHash = SHA256(payload)).
      const run = (payload) => {
        try {
          const result = nodeAppAttest.verifyAssertion({
            assertion: i.assertion,
            payload,
            publicKey: i.publicKeyPem,
            bundleIdentifier,
            teamIdentifier,
            signCount: i.previousCounter,
          });
          return result.signCount > i.previousCounter;
        } catch {
          return false;
        }
      };
      return { sync: true, call: () => run(i.clientData), tampered: () => run(i.tampered) };
    },
  },
  "appattest-checker-node": {
    attestation(record) {
      const i = attestationInputs(record);
      const appInfo = { appId: i.appId, developmentEnv: i.development };
      const run = async (challenge) => {
        const result = await checker.verifyAttestation(appInfo, i.keyId, challenge, i.attestation);
        return !("verifyError" in result) && typeof result.publicKeyPem === "string";
      };
      return { sync: false, call: () => run(i.challenge), tampered: () => run(i.tampered) };
    },
    assertion(record) {
      const i = assertionInputs(record);
      // verifyAssertion takes clientDataHash, so the caller hashes clientData; that hash is part
      // of each timed call (as in node-app-attest and attestd). The library leaves the counter
      // check to its caller, which is done here.
      const run = async (clientData) => {
        const clientDataHash = sha256(clientData);
        const result = await checker.verifyAssertion(
          clientDataHash,
          i.publicKeyPem,
          i.appId,
          i.assertion,
        );
        return !("verifyError" in result) && result.signCount > i.previousCounter;
      };
      return { sync: false, call: () => run(i.clientData), tampered: () => run(i.tampered) };
    },
  },
};

// Accepts the record and rejects a tampered copy (so a success is not vacuous).
async function check(peer) {
  const ok = await peer.call();
  const tamperedOk = await peer.tampered();
  return { ok, rejectsTampered: !tamperedOk };
}

// ---------------------------------------------------------------------------------------------
// Timing.

const nowSeconds = () => Number(process.hrtime.bigint()) / 1e9;

async function loop(peer, seconds) {
  const start = nowSeconds();
  const end = start + seconds;
  let calls = 0;
  let good = 0;
  if (peer.sync) {
    while (nowSeconds() < end) {
      for (let k = 0; k < 8; k++) if (peer.call()) good++;
      calls += 8;
    }
  } else {
    while (nowSeconds() < end) {
      for (let k = 0; k < 8; k++) if (await peer.call()) good++;
      calls += 8;
    }
  }
  return { calls, good, elapsed: nowSeconds() - start };
}

async function time(implName, op, recordPath, seconds, warmup) {
  const impl = PEERS[implName];
  if (!impl || !impl[op]) throw new Error(`unknown implementation/operation ${implName} ${op}`);
  const record = loadRecord(recordPath);
  if (op === "attestation") pinClock(record.verify_at);
  const peer = impl[op](record);
  const { ok, rejectsTampered } = await check(peer);
  if (!ok) throw new Error(`${implName} does not accept ${record.id}`);
  if (!rejectsTampered) throw new Error(`${implName} accepts a tampered copy of ${record.id}`);
  await loop(peer, warmup);
  const r = await loop(peer, seconds);
  if (r.good !== r.calls) throw new Error(`${implName}: ${r.calls - r.good} of ${r.calls} timed calls failed`);
  const opsPerSecond = Math.round(r.good / r.elapsed);
  console.log(`RESULT ${op} ${implName} ${opsPerSecond} ${r.calls} ${r.elapsed.toFixed(2)}`);
}

async function probe() {
  const names = Object.keys(PEERS);
  console.log(["operation", "record", ...names].join("\t"));
  for (const op of ["attestation", "assertion"]) {
    const dir = join(DATA, `${op}s`);
    for (const file of readdirSync(dir).sort()) {
      const record = loadRecord(join(dir, file));
      if (!record.expect?.valid) continue;
      const cells = [];
      for (const name of names) {
        pinClock(op === "attestation" ? record.verify_at : null);
        let cell;
        try {
          const { ok, rejectsTampered } = await check(PEERS[name][op](record));
          cell = ok ? (rejectsTampered ? "ok" : "ok(accepts-tampered)") : "FAIL";
        } catch (e) {
          cell = `n/a (${e.message})`;
        }
        cells.push(cell);
      }
      console.log([op, record.id, ...cells].join("\t"));
    }
  }
  pinClock(null);
}

function option(args, name, fallback) {
  const at = args.indexOf(name);
  return at === -1 ? fallback : Number(args[at + 1]);
}

const [mode, ...rest] = process.argv.slice(2);
try {
  if (mode === "probe") {
    await probe();
  } else if (mode === "time") {
    const [implName, op, recordPath] = rest;
    await time(implName, op, recordPath, option(rest, "--seconds", 3), option(rest, "--warmup", 1));
  } else {
    console.error("usage: node run.mjs probe | time <impl> <attestation|assertion> <record.json> [--seconds S] [--warmup S]");
    process.exit(64);
  }
} catch (e) {
  console.error(`error: ${e.message}`);
  process.exit(1);
}
