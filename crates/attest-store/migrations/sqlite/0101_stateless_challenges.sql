-- Stateless challenges (SQLite; mirrored in migrations/postgres).
--
-- Challenges are no longer stored when issued: attestd authenticates each challenge value with
-- an HMAC whose key is kept in `server_secrets`, and records a challenge only when it is spent.
-- Issuing a challenge therefore costs no write; spending one is a single INSERT whose primary
-- key makes it succeed exactly once. Outstanding rows of the old table are dropped: a
-- challenge lives minutes, clients ask for a new one.
DROP TABLE challenges;

-- Spent challenge nonces, kept until their challenge has expired (plus a grace period for
-- clock skew between instances), then purged. The nonce is 16 random bytes.
CREATE TABLE spent_challenges (
    nonce      BLOB    NOT NULL PRIMARY KEY CHECK (length(nonce) BETWEEN 16 AND 64),
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX spent_challenges_by_expiry ON spent_challenges (expires_at);

-- Secrets every instance sharing the database must agree on (the challenge MAC key). The first
-- instance to start writes a random one; the others read it.
CREATE TABLE server_secrets (
    name       TEXT    NOT NULL PRIMARY KEY,
    secret     BLOB    NOT NULL CHECK (length(secret) >= 32),
    created_at INTEGER NOT NULL
) STRICT;
