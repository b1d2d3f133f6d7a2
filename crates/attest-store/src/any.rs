//! The backend chosen once at startup from the database URL.

use std::time::Duration;

use time::OffsetDateTime;

use crate::{
    AssertionCommit, AssertionCommitted, ContextQuery, CounterAdvance, CounterAnomaly, Decision,
    DecisionFilter, DecisionSummary, DeliveryAttempt, DeliveryFilter, DeviceKey, Environment,
    FailureCount, FailureScope, FailureSubject, KeyContext, KeyEncryptionKey, KeyFilter, KeyId,
    LoggedDecision, NewWebhookDelivery, PostgresStore, ReadableFile, Refusal, RefusalRecorded,
    SenderFailures, SenderFilter, SigningKey, SpentChallenge, SqliteStore, Store, StoreError,
    SummaryFilter, WebhookDelivery,
};

/// Connection settings shared by both backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Pool size; `None` picks the backend's default (8 for a SQLite file, 10 for PostgreSQL).
    /// An in-memory SQLite database always uses one connection.
    pub max_connections: Option<u32>,
    /// How long a request waits for a free connection before failing with
    /// [`StoreError::Unavailable`].
    pub acquire_timeout: Duration,
    /// SQLite only: how long a writer waits for the database lock.
    pub busy_timeout: Duration,
    /// SQLite only: open database files that users other than the owner may access (group or
    /// other permission bits set) instead of refusing them; the caller should warn about
    /// [`AnyStore::readable_files`]. Default `false`: the file holds the signing keys.
    pub allow_readable_files: bool,
    /// SQLite only: whether other processes may open the database while this store has it.
    pub sqlite_locking: SqliteLocking,
    /// Seals the signing keys and server secrets at rest (see [`KeyEncryptionKey`]). With a
    /// key, plaintext secrets already stored are sealed in place when the store connects;
    /// without one, a store whose secrets are sealed refuses to connect.
    pub key_encryption_key: Option<KeyEncryptionKey>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: None,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            allow_readable_files: false,
            sqlite_locking: SqliteLocking::default(),
            key_encryption_key: None,
        }
    }
}

/// How a SQLite database file is shared with other processes (see [`SqliteStore`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteLocking {
    /// One process at a time: the store locks the file and keeps SQLite's WAL index in its own
    /// memory, so no `-shm` file is mapped (nothing can `SIGBUS` the process).
    #[default]
    Exclusive,
    /// SQLite's default: other processes (`sqlite3`, an online `.backup`) may open the file
    /// while the store runs; the WAL index is a memory-mapped `-shm` file, and a `-shm` that
    /// stops being writable under the running process kills it with `SIGBUS`.
    Shared,
}

/// SQLite or PostgreSQL, as the database URL says. The server holds one `Arc<AnyStore>`.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// A `sqlite:` URL.
    Sqlite(SqliteStore),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(PostgresStore),
}

impl AnyStore {
    /// Connects with default [`StoreOptions`]; see [`AnyStore::connect_with`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// Picks the backend from the URL scheme (a bare path is a SQLite file), connects and
    /// applies that backend's migrations.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") || crate::sqlite_files::is_bare_path(url) {
            SqliteStore::connect(url, options).await.map(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            PostgresStore::connect(url, options)
                .await
                .map(Self::Postgres)
        } else {
            // Only the scheme goes into the error: the rest may hold a password.
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            Err(StoreError::UnsupportedUrl {
                scheme: scheme.chars().take(32).collect(),
            })
        }
    }

    /// `sqlite` or `postgres`, for logs and metrics.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// SQLite database files that other users may access, opened because
    /// [`StoreOptions::allow_readable_files`] allowed it; empty for PostgreSQL.
    pub fn readable_files(&self) -> &[ReadableFile] {
        match self {
            Self::Sqlite(store) => store.readable_files(),
            Self::Postgres(_) => &[],
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
            Self::Postgres(store) => store.close().await,
        }
    }
}

/// Calls the same method on whichever backend `self` holds.
macro_rules! dispatch {
    ($self:ident.$method:ident($($argument:expr),*)) => {
        match $self {
            AnyStore::Sqlite(store) => store.$method($($argument),*).await,
            AnyStore::Postgres(store) => store.$method($($argument),*).await,
        }
    };
}

impl Store for AnyStore {
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self.ping())
    }

    async fn spend_challenge(&self, challenge: SpentChallenge<'_>) -> Result<bool, StoreError> {
        dispatch!(self.spend_challenge(challenge))
    }

    async fn purge_spent_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        dispatch!(self.purge_spent_challenges(before))
    }

    async fn server_secret(
        &self,
        name: &str,
        candidate: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, StoreError> {
        dispatch!(self.server_secret(name, candidate, now))
    }

    async fn commit_assertion(
        &self,
        commit: AssertionCommit<'_>,
    ) -> Result<AssertionCommitted, StoreError> {
        dispatch!(self.commit_assertion(commit))
    }

    async fn insert_device_key(&self, key: &DeviceKey, receipt: &[u8]) -> Result<(), StoreError> {
        dispatch!(self.insert_device_key(key, receipt))
    }

    async fn device_key(&self, key_id: KeyId) -> Result<Option<DeviceKey>, StoreError> {
        dispatch!(self.device_key(key_id))
    }

    async fn device_key_receipt(&self, key_id: KeyId) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self.device_key_receipt(key_id))
    }

    async fn key_context(
        &self,
        key_id: KeyId,
        query: &ContextQuery,
    ) -> Result<Option<KeyContext>, StoreError> {
        dispatch!(self.key_context(key_id, query))
    }

    async fn advance_counter(
        &self,
        key_id: KeyId,
        new_counter: u32,
        now: OffsetDateTime,
    ) -> Result<CounterAdvance, StoreError> {
        dispatch!(self.advance_counter(key_id, new_counter, now))
    }

    async fn revoke_device_key(
        &self,
        key_id: KeyId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        dispatch!(self.revoke_device_key(key_id, now))
    }

    async fn settle_lineage(
        &self,
        app_id: &str,
        device_id: &str,
        environment: Environment,
        now: OffsetDateTime,
    ) -> Result<Vec<(KeyId, KeyId)>, StoreError> {
        dispatch!(self.settle_lineage(app_id, device_id, environment, now))
    }

    async fn supersede_device_key(
        &self,
        old_key: KeyId,
        new_key: KeyId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        dispatch!(self.supersede_device_key(old_key, new_key, now))
    }

    async fn link_device_key(
        &self,
        key_id: KeyId,
        device_id: &str,
        user_id: Option<&str>,
    ) -> Result<(), StoreError> {
        dispatch!(self.link_device_key(key_id, device_id, user_id))
    }

    async fn list_device_keys(
        &self,
        app_id: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<DeviceKey>, StoreError> {
        dispatch!(self.list_device_keys(app_id, limit, offset))
    }

    async fn find_device_keys(
        &self,
        filter: &KeyFilter,
        limit: u32,
    ) -> Result<Vec<DeviceKey>, StoreError> {
        dispatch!(self.find_device_keys(filter, limit))
    }

    async fn count_device_keys(&self, filter: &KeyFilter) -> Result<u64, StoreError> {
        dispatch!(self.count_device_keys(filter))
    }

    async fn record_counter_anomaly(
        &self,
        key_id: KeyId,
        anomaly: CounterAnomaly,
    ) -> Result<(), StoreError> {
        dispatch!(self.record_counter_anomaly(key_id, anomaly))
    }

    async fn expire_device_key(
        &self,
        key_id: KeyId,
        idle_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        dispatch!(self.expire_device_key(key_id, idle_before, now))
    }

    async fn expire_idle_keys(
        &self,
        idle_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        dispatch!(self.expire_idle_keys(idle_before, now))
    }

    async fn failure_counts(
        &self,
        scope: &FailureScope,
        since: OffsetDateTime,
    ) -> Result<Vec<FailureCount>, StoreError> {
        dispatch!(self.failure_counts(scope, since))
    }

    async fn decision_summary(
        &self,
        filter: &SummaryFilter,
    ) -> Result<DecisionSummary, StoreError> {
        dispatch!(self.decision_summary(filter))
    }

    async fn enqueue_webhook(&self, delivery: &NewWebhookDelivery) -> Result<i64, StoreError> {
        dispatch!(self.enqueue_webhook(delivery))
    }

    async fn claim_due_webhooks(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        dispatch!(self.claim_due_webhooks(now, lease_until, limit))
    }

    async fn record_webhook_attempt(
        &self,
        id: i64,
        attempt: &DeliveryAttempt,
    ) -> Result<(), StoreError> {
        dispatch!(self.record_webhook_attempt(id, attempt))
    }

    async fn list_webhook_deliveries(
        &self,
        filter: &DeliveryFilter,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        dispatch!(self.list_webhook_deliveries(filter, limit))
    }

    async fn record_decision(&self, decision: &Decision) -> Result<i64, StoreError> {
        dispatch!(self.record_decision(decision))
    }

    async fn purge_decisions(&self, before: OffsetDateTime, limit: u32) -> Result<u64, StoreError> {
        dispatch!(self.purge_decisions(before, limit))
    }

    async fn list_decisions(
        &self,
        filter: &DecisionFilter,
        limit: u32,
    ) -> Result<Vec<LoggedDecision>, StoreError> {
        dispatch!(self.list_decisions(filter, limit))
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        dispatch!(self.insert_signing_key(key))
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        dispatch!(self.signing_keys())
    }

    async fn retire_signing_key(&self, kid: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        dispatch!(self.retire_signing_key(kid, at))
    }

    async fn probe_write(&self, now: OffsetDateTime) -> Result<(), StoreError> {
        dispatch!(self.probe_write(now))
    }

    async fn delete_retired_signing_keys(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        dispatch!(self.delete_retired_signing_keys(before))
    }

    async fn save_revocation_list(
        &self,
        list: &crate::NewRevocationList<'_>,
    ) -> Result<crate::RevocationListSaved, StoreError> {
        dispatch!(self.save_revocation_list(list))
    }

    async fn record_revocation_list_attempt(
        &self,
        attempt: &crate::RevocationListAttempt,
    ) -> Result<(), StoreError> {
        dispatch!(self.record_revocation_list_attempt(attempt))
    }

    async fn revocation_list(&self) -> Result<crate::RevocationListState, StoreError> {
        dispatch!(self.revocation_list())
    }

    async fn record_refusal(&self, refusal: &Refusal<'_>) -> Result<RefusalRecorded, StoreError> {
        dispatch!(self.record_refusal(refusal))
    }

    async fn tallied_failures(
        &self,
        subject: &FailureSubject,
        since: OffsetDateTime,
    ) -> Result<Vec<FailureCount>, StoreError> {
        dispatch!(self.tallied_failures(subject, since))
    }

    async fn sender_failures(
        &self,
        filter: &SenderFilter,
    ) -> Result<Vec<SenderFailures>, StoreError> {
        dispatch!(self.sender_failures(filter))
    }

    async fn purge_failure_tallies(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        dispatch!(self.purge_failure_tallies(before))
    }

    async fn heartbeat(
        &self,
        instance: &str,
        now: OffsetDateTime,
        live_since: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        dispatch!(self.heartbeat(instance, now, live_since))
    }

    async fn leave(&self, instance: &str) -> Result<(), StoreError> {
        dispatch!(self.leave(instance))
    }
}
