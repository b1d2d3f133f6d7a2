//! The `Store` trait and its security contract.

use std::future::Future;

use time::OffsetDateTime;

use crate::{
    AssertionCommit, AssertionCommitted, ContextQuery, CounterAdvance, CounterAnomaly, Decision,
    DecisionFilter, DecisionSummary, DeliveryAttempt, DeliveryFilter, DeviceKey, Environment,
    FailureCount, FailureScope, FailureSubject, KeyContext, KeyFilter, KeyId, LoggedDecision,
    NewRevocationList, NewWebhookDelivery, Refusal, RefusalRecorded, RevocationListAttempt,
    RevocationListSaved, RevocationListState, SenderFailures, SenderFilter, SigningKey,
    SpentChallenge, StoreError, SummaryFilter, WebhookDelivery,
};

/// Persistent state of attestd: challenges, attested keys, the decision log and JWT signing
/// keys.
///
/// # Security contract
///
/// Every implementation must guarantee the following, each as **one atomic statement** of the
/// database (never read-then-write in the application), so that it holds with any number of
/// server processes sharing the database. The conformance suite in `tests/conformance/` proves
/// each point against every backend.
///
/// 1. **Keys are never overwritten.** [`insert_device_key`](Store::insert_device_key) of a key
///    id that already exists fails with [`StoreError::Conflict`] and leaves the stored key
///    exactly as it was (public key, counter, receipt, revocation). A second attestation can
///    therefore never replace the public key or reset the counter of a known key.
/// 2. **Challenges are single use.** The store never holds issued challenges (the server
///    authenticates challenge values itself, with a MAC keyed by a
///    [`server_secret`](Store::server_secret)); it remembers *spent* ones.
///    [`spend_challenge`](Store::spend_challenge) inserts the challenge's nonce into a set whose
///    primary key is the nonce, in one statement (`INSERT ... ON CONFLICT DO NOTHING`). However
///    many callers race to spend the same nonce, exactly one gets `true`; every other caller, and
///    every later call, gets `false` for as long as the nonce is remembered. A nonce is only
///    forgotten by [`purge_spent_challenges`](Store::purge_spent_challenges) once its
///    `expires_at` is past the time the caller passes, so the caller must refuse expired
///    challenges before spending them and purge with a margin for clock skew between instances.
/// 3. **Counters only move forward.** [`advance_counter`](Store::advance_counter) (and
///    [`commit_assertion`](Store::commit_assertion), which runs the same UPDATE) stores the
///    new counter only if it is strictly greater than the stored one and the key is not revoked
///    (`UPDATE ... WHERE counter < new AND revoked_at IS NULL`). An equal or lower counter
///    (a replayed or cloned assertion) is rejected, and of concurrent requests carrying the
///    same counter exactly one advances. Call it only after the assertion's signature has
///    been verified, and accept the assertion only on [`CounterAdvance::Advanced`].
/// 4. **Revocation is final.** A revoked, superseded or expired key never advances again, and
///    revoking twice keeps the first revocation time and the first
///    [`RevocationReason`](crate::RevocationReason). A supersession link, once written, is
///    never rewritten, so the chain of keys of a device cannot be redirected.
/// 5. **Nothing is silently coerced.** Values outside their domain are refused
///    ([`StoreError::Invalid`]) and stored values that do not parse are reported
///    ([`StoreError::Corrupt`]), never replaced by defaults.
/// 6. **Webhook deliveries are claimed once.** [`claim_due_webhooks`](Store::claim_due_webhooks)
///    hands each due delivery to one caller at a time (the claim moves `next_attempt_at` to the
///    lease end in the same statement); a delivered or failed delivery is never claimed or
///    changed again.
///
/// Times are passed in by the caller (the store never reads the clock) and kept with
/// one-second precision.
///
/// [`commit_assertion`](Store::commit_assertion) runs points 2 and 3 and logs the decision in one
/// transaction: an assertion is accepted with its challenge spent, its counter advanced and its
/// decision logged, or its challenge spent alone (counter not advanced), or not at all
/// (challenge spent before).
///
/// Decisions are recorded with their reasons in one transaction: a decision is logged with all
/// of its reasons or not at all.
///
/// 7. **Secrets stay sealed.** With a [`KeyEncryptionKey`](crate::KeyEncryptionKey) in
///    [`StoreOptions`](crate::StoreOptions), the private half of every signing key and every
///    server secret is written sealed (AES-256-GCM, bound to its row) and opened when read; a
///    sealed secret that does not open with the configured key (no key, another key, altered
///    bytes) fails with [`StoreError::Sealing`], never with another key or a fresh secret.
///    Plaintext secrets stored before a key was configured are sealed in place when the store
///    connects, one compare-and-swap per row. Without a key, secrets are stored as given and
///    the database must be protected like any other secret store.
/// 8. **Text holds no NUL.** Text with a NUL character is refused with
///    [`StoreError::Invalid`] before it reaches the database, on both backends alike
///    (PostgreSQL cannot store it; SQLite would, and C string APIs would cut it short).
/// 9. **Refusals are counted exactly, logged by sample.** [`record_refusal`](Store::record_refusal)
///    adds one to its sender's tally of its window and code (and to its proven device's) in one
///    upsert, so concurrent refusals are all counted; of the refusals with one sender, app and
///    code in one window exactly the first [`Refusal::sample`](crate::Refusal::sample) are
///    logged in full, in the same transaction as their count. A refusal's rows are the two
///    tallies and at most one decision, whatever the number of refusals before it.
/// 10. **The newest status list wins.** [`save_revocation_list`](Store::save_revocation_list)
///     replaces the stored Android status list only if the new one was fetched strictly later
///     (to the second), in the upsert's WHERE: however many instances fetch and save
///     concurrently, in whatever order, the list left stored is the one fetched last, and an
///     older fetch never replaces a newer one. The store does not parse the list: parse it
///     before saving it.
///
/// Errors are [`StoreError`]s; no database driver type appears in this API.
pub trait Store: Send + Sync {
    /// Checks that the database answers (for `/readyz`).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Spends the challenge whose nonce is `challenge.nonce`: `true` the first time, `false`
    /// if it was spent before. See the contract, point 2.
    fn spend_challenge(
        &self,
        challenge: SpentChallenge<'_>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Forgets spent challenges that expired before `before`; returns how many. Pass a time
    /// well behind the clock of every instance (their challenges must be refused as expired by
    /// then).
    fn purge_spent_challenges(
        &self,
        before: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The secret named `name` shared by every instance of the database: stores `candidate`
    /// (at least 32 bytes) if there is none yet, and returns the stored one.
    fn server_secret(
        &self,
        name: &str,
        candidate: &[u8],
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// An accepted assertion's writes in one transaction: spends its challenge (point 2),
    /// advances its key's counter (point 3) and logs `commit.decision`. See
    /// [`AssertionCommitted`] for what happened.
    fn commit_assertion(
        &self,
        commit: AssertionCommit<'_>,
    ) -> impl Future<Output = Result<AssertionCommitted, StoreError>> + Send;

    /// Stores a newly attested key with the receipt its attestation carried (App Attest; empty
    /// when it carried none, and always empty on platforms without receipts, else
    /// [`StoreError::Invalid`]). Fails with [`StoreError::Conflict`] if the key id exists,
    /// leaving the stored key untouched. See the contract, point 1.
    fn insert_device_key(
        &self,
        key: &DeviceKey,
        receipt: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The key with this id, if any. The receipt is not read: see
    /// [`device_key_receipt`](Store::device_key_receipt).
    fn device_key(
        &self,
        key_id: KeyId,
    ) -> impl Future<Output = Result<Option<DeviceKey>, StoreError>> + Send;

    /// The latest App Attest receipt of the key (PKCS#7 DER; empty if its attestation carried
    /// none), for Apple's risk-metric endpoint. `None` if no key has this id or its platform has
    /// no receipts. Apart from the key because it is ~5 KB that only receipt refresh sends.
    fn device_key_receipt(
        &self,
        key_id: KeyId,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// The key with this id and what the risk signals of a request about it need (device
    /// history, recent failures, key counts), in one query.
    fn key_context(
        &self,
        key_id: KeyId,
        query: &ContextQuery,
    ) -> impl Future<Output = Result<Option<KeyContext>, StoreError>> + Send;

    /// Atomically raises the key's counter to `new_counter` if that is greater than the stored
    /// counter and the key is not revoked; then also sets `last_seen_at` to `now` and counts
    /// the assertion. See the contract, point 3.
    fn advance_counter(
        &self,
        key_id: KeyId,
        new_counter: u32,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<CounterAdvance, StoreError>> + Send;

    /// Revokes the key at `now` with reason [`Revoked`](crate::RevocationReason::Revoked)
    /// (keeping an earlier revocation time and reason). Fails with [`StoreError::NotFound`] if
    /// there is no such key.
    fn revoke_device_key(
        &self,
        key_id: KeyId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Leaves one active key in the lineage `(app_id, device_id, environment)`: the one stored
    /// last wins and every other active key of the lineage is superseded by it (revoked at
    /// `now`), in one statement. Returns the `(old, new)` pairs it linked. Call it after storing
    /// a key that replaces its lineage: two re-attestations racing for one device then settle on
    /// exactly one active key whatever the order of their steps, because the one that runs last
    /// sees both keys, and a key is only ever superseded by a key stored after it.
    fn settle_lineage(
        &self,
        app_id: &str,
        device_id: &str,
        environment: Environment,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<(KeyId, KeyId)>, StoreError>> + Send;

    /// Records that `new_key` replaced `old_key` and revokes `old_key` at `now` with reason
    /// [`Superseded`](crate::RevocationReason::Superseded) (keeping an earlier revocation time
    /// and reason, and an earlier successor: the first link is never rewritten). Fails with
    /// [`StoreError::NotFound`] if either key is missing and [`StoreError::Invalid`] if they are
    /// the same key.
    fn supersede_device_key(
        &self,
        old_key: KeyId,
        new_key: KeyId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves an **active** key to device `device_id` and, when `user_id` is given, names its
    /// user (the admin API's link, for a key attested before its backend could vouch for it).
    /// Nothing else of the key changes. Fails with [`StoreError::NotFound`] if there is no such
    /// key or it is revoked, superseded or expired (a retired key never moves: its place in a
    /// chain is final, contract point 4). Call [`settle_lineage`](Store::settle_lineage) for
    /// the new device afterwards.
    fn link_device_key(
        &self,
        key_id: KeyId,
        device_id: &str,
        user_id: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keys, oldest first (by creation time, then key id), optionally of one App ID.
    /// `limit` is capped at [`MAX_PAGE_SIZE`](crate::MAX_PAGE_SIZE).
    fn list_device_keys(
        &self,
        app_id: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> impl Future<Output = Result<Vec<DeviceKey>, StoreError>> + Send;

    /// Keys matching every set field of `filter`, oldest first (by creation time, then key id).
    /// `limit` is capped at [`MAX_PAGE_SIZE`](crate::MAX_PAGE_SIZE).
    fn find_device_keys(
        &self,
        filter: &KeyFilter,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DeviceKey>, StoreError>> + Send;

    /// How many keys match every set field of `filter`.
    fn count_device_keys(
        &self,
        filter: &KeyFilter,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Atomically adds one to the key's counter regressions or replays (never touching its
    /// counter, so a regression cannot move the counter backwards). Fails with
    /// [`StoreError::NotFound`] if there is no such key.
    fn record_counter_anomaly(
        &self,
        key_id: KeyId,
        anomaly: CounterAnomaly,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Expires the key at `now` (reason [`Expired`](crate::RevocationReason::Expired)) if it is
    /// still active and was last seen before `idle_before`, in one statement: a key used in the
    /// meantime is left alone. Returns whether it expired the key.
    fn expire_device_key(
        &self,
        key_id: KeyId,
        idle_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Expires, as [`expire_device_key`](Store::expire_device_key) does, every active key last
    /// seen before `idle_before`; returns how many. The keys stay stored, with their history.
    fn expire_idle_keys(
        &self,
        idle_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Appends a decision, with one row per distinct reason code, to the audit log in one
    /// transaction; returns its log id. Fails with [`StoreError::Invalid`] for a risk score
    /// above 100.
    fn record_decision(
        &self,
        decision: &Decision,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Deletes up to `limit` of the oldest decisions logged before `before`, with their
    /// reasons, in one transaction; returns how many decisions. Call it until it returns less
    /// than `limit`.
    fn purge_decisions(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Logged decisions matching `filter`, newest first. `limit` is capped at
    /// [`MAX_PAGE_SIZE`](crate::MAX_PAGE_SIZE).
    fn list_decisions(
        &self,
        filter: &DecisionFilter,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<LoggedDecision>, StoreError>> + Send;

    /// Failures (decisions whose code is not `ok`) at or after `since` in `scope`, counted by
    /// code, ordered by code. Reads the decision log, so its cost grows with the failures it
    /// counts, and refusals beyond each window's sample are not there: for audits, not per
    /// request (per request: [`tallied_failures`](Store::tallied_failures)).
    fn failure_counts(
        &self,
        scope: &FailureScope,
        since: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<FailureCount>, StoreError>> + Send;

    /// Decisions matching `filter` counted by outcome and by failed rule.
    fn decision_summary(
        &self,
        filter: &SummaryFilter,
    ) -> impl Future<Output = Result<DecisionSummary, StoreError>> + Send;

    /// Adds a delivery to the webhook outbox, pending and due at its `created_at`; returns its
    /// id. Fails with [`StoreError::Conflict`] if this event is already queued for this
    /// endpoint.
    fn enqueue_webhook(
        &self,
        delivery: &NewWebhookDelivery,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Claims up to `limit` pending deliveries due at `now` (oldest first): in one statement,
    /// their `next_attempt_at` becomes `lease_until`, so no other caller claims them until the
    /// lease lapses (a crashed deliverer's claims are retried then). See the contract, point 6.
    fn claim_due_webhooks(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<WebhookDelivery>, StoreError>> + Send;

    /// Records one attempt of a pending delivery: counts it, keeps its result, and marks the
    /// delivery delivered, due again, or failed. Fails with [`StoreError::NotFound`] if there is
    /// no pending delivery with this id (a finished delivery is never changed).
    fn record_webhook_attempt(
        &self,
        id: i64,
        attempt: &DeliveryAttempt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deliveries matching `filter`, newest first. `limit` is capped at
    /// [`MAX_PAGE_SIZE`](crate::MAX_PAGE_SIZE).
    fn list_webhook_deliveries(
        &self,
        filter: &DeliveryFilter,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<WebhookDelivery>, StoreError>> + Send;

    /// Stores a signing key. Fails with [`StoreError::Conflict`] if the kid exists.
    fn insert_signing_key(
        &self,
        key: &SigningKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// All signing keys, retired ones included, oldest first.
    fn signing_keys(&self) -> impl Future<Output = Result<Vec<SigningKey>, StoreError>> + Send;

    /// Marks a signing key retired at `at` (keeping an earlier retirement time). Fails with
    /// [`StoreError::NotFound`] if there is no such kid.
    fn retire_signing_key(
        &self,
        kid: &str,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Commits a write, for `/readyz`: rewrites the one row of `write_probe` with `now`,
    /// through the same write path as every other write (on SQLite the writer task, behind the
    /// commits queued before it). Fails when a commit would fail.
    fn probe_write(
        &self,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the signing keys retired before `before`, private keys included; returns how
    /// many. A key that is not retired is never deleted.
    fn delete_retired_signing_keys(
        &self,
        before: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Counts a refused request against its sender (and its proven device) and logs it in full
    /// if it is among the first [`Refusal::sample`](crate::Refusal::sample) of its sender, app
    /// and code in its window, in one transaction. See the contract, point 9. Fails with
    /// [`StoreError::Invalid`] for a decision with code `ok` or a window of 0 seconds.
    fn record_refusal(
        &self,
        refusal: &Refusal<'_>,
    ) -> impl Future<Output = Result<RefusalRecorded, StoreError>> + Send;

    /// The tallied refusals of `subject` in windows starting at or after `since`, by code,
    /// ordered by code. Reads the subject's rows of those windows only.
    fn tallied_failures(
        &self,
        subject: &FailureSubject,
        since: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<FailureCount>, StoreError>> + Send;

    /// The refusals of the senders of `filter.app_id` (or of one address), by sender and code,
    /// most refusals first.
    fn sender_failures(
        &self,
        filter: &SenderFilter,
    ) -> impl Future<Output = Result<Vec<SenderFailures>, StoreError>> + Send;

    /// Forgets the tallies of windows starting before `before`; returns how many rows.
    fn purge_failure_tallies(
        &self,
        before: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records that `instance` is alive at `now`, forgets instances not seen since
    /// `live_since`, and returns how many are alive (this one included).
    fn heartbeat(
        &self,
        instance: &str,
        now: OffsetDateTime,
        live_since: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Forgets `instance` (it is stopping).
    fn leave(&self, instance: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Saves Google's Android status list unless one fetched at the same second or later is
    /// stored ([`RevocationListSaved::Stale`]). See the contract, point 10.
    fn save_revocation_list(
        &self,
        list: &NewRevocationList<'_>,
    ) -> impl Future<Output = Result<RevocationListSaved, StoreError>> + Send;

    /// Records how a fetch of the status list ended, unless a later attempt is recorded.
    fn record_revocation_list_attempt(
        &self,
        attempt: &RevocationListAttempt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The stored status list and the last fetch attempt (both `None` before the first).
    fn revocation_list(
        &self,
    ) -> impl Future<Output = Result<RevocationListState, StoreError>> + Send;
}
