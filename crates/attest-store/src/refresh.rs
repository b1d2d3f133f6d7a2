//! Receipt refresh: the schedule of Apple's receipt exchange ("fraud risk metric") per device
//! key, shared by every attestd instance of a database.
//!
//! The [`RefreshStore`] trait and its security contract; one implementation per backend, written
//! once by a macro as in [`crate::backend`]. The table is `receipt_refresh` (migration 0100);
//! the receipt itself and its risk metric stay in `device_keys` (`receipt`,
//! `receipt_risk_metric`), which is what [`crate::Store::device_key`] returns.

use std::future::Future;

use time::OffsetDateTime;

use crate::{KeyId, MAX_PAGE_SIZE, StoreError};

/// Longest `last_status` / `lease_owner` text accepted (they are codes and instance names).
pub const MAX_REFRESH_LABEL_LEN: usize = 128;

/// The refresh state of one device key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRefreshState {
    /// The key.
    pub key_id: KeyId,
    /// When the key is next due; `None` once refreshing stopped for good (revoked key, receipt
    /// that cannot be sent). A due key is claimed at or after this time.
    pub next_refresh_at: Option<OffsetDateTime>,
    /// Failed exchanges since the last one Apple answered with a receipt or "not modified".
    pub attempts: u32,
    /// When the last exchange ended.
    pub last_attempt_at: Option<OffsetDateTime>,
    /// `refreshed`, `not_modified` or the error code of the last exchange.
    pub last_status: Option<String>,
    /// Receipts obtained from Apple so far.
    pub refreshes: u64,
    /// When the last receipt arrived.
    pub last_refreshed_at: Option<OffsetDateTime>,
    /// Creation time (field 12) of the receipt now stored with the key.
    pub receipt_created_at: Option<OffsetDateTime>,
    /// Not Before (field 19) of that receipt: Apple answers 304 to an exchange before it.
    pub receipt_not_before: Option<OffsetDateTime>,
    /// Expiration (field 21) of that receipt.
    pub receipt_expires_at: Option<OffsetDateTime>,
    /// The risk metric of that receipt (the same value as `DeviceKey::receipt_risk_metric`).
    pub risk_metric: Option<i64>,
    /// When that risk metric was received.
    pub risk_metric_at: Option<OffsetDateTime>,
    /// The instance that claimed the key last.
    pub lease_owner: Option<String>,
    /// Until when that claim holds; `None` when nobody works on the key.
    pub lease_until: Option<OffsetDateTime>,
    /// When the key entered the schedule.
    pub enrolled_at: OffsetDateTime,
}

/// A device key that has no refresh state yet (see [`RefreshStore::unenrolled_device_keys`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshCandidate {
    /// The key.
    pub key_id: KeyId,
    /// When it was attested.
    pub created_at: OffsetDateTime,
    /// Its stored receipt (the attestation's `ATTEST` receipt for a new key).
    pub receipt: Vec<u8>,
}

/// The first refresh state of a key (see [`RefreshStore::enroll_refresh`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshEnrollment {
    /// The key.
    pub key_id: KeyId,
    /// Its first refresh; `None` enrols it as stopped (a receipt that cannot be sent).
    pub next_refresh_at: Option<OffsetDateTime>,
    /// Creation time of the stored receipt, if it could be read.
    pub receipt_created_at: Option<OffsetDateTime>,
    /// Not Before of the stored receipt, if it has one.
    pub receipt_not_before: Option<OffsetDateTime>,
    /// Expiration of the stored receipt, if it has one.
    pub receipt_expires_at: Option<OffsetDateTime>,
    /// Now.
    pub enrolled_at: OffsetDateTime,
}

/// How one exchange with Apple ended (see [`RefreshStore::record_refresh`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshAttempt {
    /// When it ended.
    pub at: OffsetDateTime,
    /// `refreshed`, `not_modified` or an error code (at most [`MAX_REFRESH_LABEL_LEN`] bytes).
    pub status: String,
    /// `true` if Apple answered with a receipt or "not modified" (the failure count restarts at
    /// 0); `false` counts one more failure.
    pub succeeded: bool,
}

/// A receipt Apple returned, already verified by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshedReceipt {
    /// The receipt (PKCS#7 DER).
    pub receipt: Vec<u8>,
    /// Its creation time (field 12).
    pub created_at: OffsetDateTime,
    /// Its Not Before (field 19).
    pub not_before: Option<OffsetDateTime>,
    /// Its Expiration (field 21).
    pub expires_at: Option<OffsetDateTime>,
    /// Its risk metric (field 17), at least 0.
    pub risk_metric: Option<i64>,
    /// When it was received.
    pub received_at: OffsetDateTime,
}

/// What [`RefreshStore::store_refreshed_receipt`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptUpdate {
    /// The receipt and its risk metric replaced the stored ones.
    Stored,
    /// A receipt created later is already stored; nothing changed.
    Stale,
}

/// The receipt-refresh schedule, for any number of attestd instances sharing the database.
///
/// # Security contract
///
/// Like [`crate::Store`], each point holds with any number of processes, because it is decided
/// inside one atomic statement (or one transaction) of the database, never read-then-write in
/// the application. The suite in `tests/refresh.rs` proves each against every backend.
///
/// 1. **A due key goes to exactly one caller.** [`claim_due_refreshes`] marks the keys it
///    returns as leased to `owner` until `lease_until`, in the same statement that selects
///    them: on PostgreSQL `UPDATE ... WHERE key_id IN (SELECT ... FOR UPDATE SKIP LOCKED
///    LIMIT n) RETURNING`, the due and lease conditions being re-checked on the locked row; on
///    SQLite one `UPDATE ... RETURNING` under the database write lock. However many callers
///    race, a key is returned to one of them, and to nobody else until the lease passes or its
///    owner records an outcome or releases it. A key whose lease expired (its owner crashed) is
///    due again: a refresh is done at least once, and exactly once unless an owner dies
///    mid-exchange.
/// 2. **Only the lease owner records an outcome.** [`record_refresh`] changes the row only if
///    `lease_owner` is still the caller: an instance that stalled past its lease, whose key was
///    claimed by another, cannot overwrite the newer schedule.
/// 3. **A receipt is never replaced by an older one.** [`store_refreshed_receipt`] replaces the
///    key's receipt and risk metric only if the new receipt was not created before the stored
///    one (to the second: the comparison is in the `UPDATE`'s `WHERE`, under the row lock; a
///    receipt of the same second, such as Apple's first answer right after the attestation,
///    does replace it), and changes
///    `device_keys.receipt`, `device_keys.receipt_risk_metric` and the refresh row in one
///    transaction. Receipts must be verified before they are stored: the store does not parse
///    them.
/// 4. **Enrolment never overwrites.** [`enroll_refresh`] is `INSERT ... ON CONFLICT DO
///    NOTHING`: a second enrolment of a key (two instances enrolling the same new key) leaves
///    the first one's state untouched.
/// 5. **Stopped keys stay stopped.** A key with no `next_refresh_at` is never claimed.
/// 6. **Nothing is silently coerced.** Negative risk metrics, empty or oversized owners and
///    statuses, and leases that end before `now` are refused with [`StoreError::Invalid`].
///
/// Times are passed in by the caller and kept with one-second precision.
///
/// [`claim_due_refreshes`]: RefreshStore::claim_due_refreshes
/// [`record_refresh`]: RefreshStore::record_refresh
/// [`store_refreshed_receipt`]: RefreshStore::store_refreshed_receipt
/// [`enroll_refresh`]: RefreshStore::enroll_refresh
pub trait RefreshStore: Send + Sync {
    /// Unrevoked device keys created at or after `created_since` that have no refresh state,
    /// oldest first, at most `limit` (capped at [`MAX_PAGE_SIZE`]).
    fn unenrolled_device_keys(
        &self,
        created_since: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RefreshCandidate>, StoreError>> + Send;

    /// Creates the key's refresh state. `Ok(false)` if it already has one (left unchanged);
    /// [`StoreError::Invalid`] if the key does not exist. See the contract, point 4.
    fn enroll_refresh(
        &self,
        enrollment: &RefreshEnrollment,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Leases up to `limit` keys due at `now` (`next_refresh_at <= now`, no live lease) to
    /// `owner` until `lease_until`, most overdue first, and returns their state. See the
    /// contract, point 1.
    fn claim_due_refreshes(
        &self,
        now: OffsetDateTime,
        limit: u32,
        lease_until: OffsetDateTime,
        owner: &str,
    ) -> impl Future<Output = Result<Vec<ReceiptRefreshState>, StoreError>> + Send;

    /// Records how the exchange for a key leased to `owner` ended, schedules the next one at
    /// `next_at` (`None`: stop refreshing this key) and ends the lease. `Ok(false)` if the key
    /// is not (or no longer) leased to `owner`: nothing changed. See the contract, point 2.
    fn record_refresh(
        &self,
        key_id: KeyId,
        owner: &str,
        attempt: &RefreshAttempt,
        next_at: Option<OffsetDateTime>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a receipt Apple returned, and its risk metric, in place of the key's receipt unless
    /// that one is newer. [`StoreError::NotFound`] if the key has no refresh state. See the contract,
    /// point 3.
    fn store_refreshed_receipt(
        &self,
        key_id: KeyId,
        receipt: &RefreshedReceipt,
    ) -> impl Future<Output = Result<ReceiptUpdate, StoreError>> + Send;

    /// Ends every lease `owner` holds (on shutdown, for keys claimed but not worked on), so
    /// that other instances may claim them at once. Returns how many.
    fn release_refresh_claims(
        &self,
        owner: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The key's refresh state, if it has one.
    fn refresh_state(
        &self,
        key_id: KeyId,
    ) -> impl Future<Output = Result<Option<ReceiptRefreshState>, StoreError>> + Send;

    /// How many keys are due at `now` (leased ones included): the backlog.
    fn count_due_refreshes(
        &self,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// The columns of `receipt_refresh`, in [`RefreshRow`] order.
macro_rules! refresh_columns {
    () => {
        "key_id, next_refresh_at, attempts, last_attempt_at, last_status, refreshes, \
         last_refreshed_at, receipt_created_at, receipt_not_before, receipt_expires_at, \
         risk_metric, risk_metric_at, lease_owner, lease_until, enrolled_at"
    };
}

/// The statements both backends run; only the claim differs (row locks on PostgreSQL).
pub(crate) mod sql {
    pub(crate) const UNENROLLED: &str = "SELECT d.key_id, d.created_at, \
         (SELECT r.receipt FROM device_key_receipts r WHERE r.key_id = d.key_id) AS receipt \
         FROM device_keys d \
         WHERE d.created_at >= $1 AND d.revoked_at IS NULL AND d.platform = 'ios' \
         AND NOT EXISTS (SELECT 1 FROM receipt_refresh r WHERE r.key_id = d.key_id) \
         ORDER BY d.created_at, d.key_id LIMIT $2";

    /// Contract point 4.
    pub(crate) const ENROLL: &str = "INSERT INTO receipt_refresh \
         (key_id, next_refresh_at, receipt_created_at, receipt_not_before, receipt_expires_at, \
          enrolled_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_id) DO NOTHING";

    /// Contract point 1 on PostgreSQL: the subquery locks the rows it picks and skips rows
    /// another claimer holds; the outer WHERE repeats the due and lease conditions, which
    /// PostgreSQL re-checks on the latest row version, so a row leased by a claimer that
    /// committed in between is not leased twice.
    pub(crate) const CLAIM_POSTGRES: &str = concat!(
        "UPDATE receipt_refresh SET lease_owner = $3, lease_until = $2 \
         WHERE key_id IN (SELECT key_id FROM receipt_refresh \
             WHERE next_refresh_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
             ORDER BY next_refresh_at, key_id LIMIT $4 FOR UPDATE SKIP LOCKED) \
         AND next_refresh_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
         RETURNING ",
        refresh_columns!()
    );

    /// Contract point 1 on SQLite: one UPDATE takes the database write lock before it reads,
    /// so the selection and the lease are one step.
    pub(crate) const CLAIM_SQLITE: &str = concat!(
        "UPDATE receipt_refresh SET lease_owner = $3, lease_until = $2 \
         WHERE key_id IN (SELECT key_id FROM receipt_refresh \
             WHERE next_refresh_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
             ORDER BY next_refresh_at, key_id LIMIT $4) \
         AND next_refresh_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
         RETURNING ",
        refresh_columns!()
    );

    /// Contract point 2: only the owner's UPDATE matches.
    pub(crate) const RECORD: &str = "UPDATE receipt_refresh SET \
         next_refresh_at = $3, last_attempt_at = $4, last_status = $5, \
         attempts = CASE WHEN $6 THEN 0 ELSE attempts + 1 END, lease_until = NULL \
         WHERE key_id = $1 AND lease_owner = $2";

    /// Contract point 3: the age comparison is part of the UPDATE.
    pub(crate) const NEWER_RECEIPT: &str = "UPDATE receipt_refresh SET \
         receipt_created_at = $2, receipt_not_before = $3, receipt_expires_at = $4, \
         risk_metric = $5, risk_metric_at = $6, last_refreshed_at = $6, \
         refreshes = refreshes + 1 \
         WHERE key_id = $1 AND (receipt_created_at IS NULL OR receipt_created_at <= $2)";

    pub(crate) const KEY_RECEIPT: &str =
        "UPDATE device_key_receipts SET receipt = $2 WHERE key_id = $1";

    pub(crate) const KEY_RISK_METRIC: &str =
        "UPDATE device_keys SET receipt_risk_metric = $2 WHERE key_id = $1";

    pub(crate) const HAS_STATE: &str = "SELECT COUNT(*) FROM receipt_refresh WHERE key_id = $1";

    pub(crate) const RELEASE: &str = "UPDATE receipt_refresh SET lease_until = NULL \
         WHERE lease_owner = $1 AND lease_until IS NOT NULL";

    pub(crate) const STATE: &str = concat!(
        "SELECT ",
        refresh_columns!(),
        " FROM receipt_refresh WHERE key_id = $1"
    );

    pub(crate) const COUNT_DUE: &str =
        "SELECT COUNT(*) FROM receipt_refresh WHERE next_refresh_at <= $1";
}

#[derive(sqlx::FromRow)]
pub(crate) struct RefreshRow {
    key_id: Vec<u8>,
    next_refresh_at: Option<i64>,
    attempts: i64,
    last_attempt_at: Option<i64>,
    last_status: Option<String>,
    refreshes: i64,
    last_refreshed_at: Option<i64>,
    receipt_created_at: Option<i64>,
    receipt_not_before: Option<i64>,
    receipt_expires_at: Option<i64>,
    risk_metric: Option<i64>,
    risk_metric_at: Option<i64>,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    enrolled_at: i64,
}

impl TryFrom<RefreshRow> for ReceiptRefreshState {
    type Error = StoreError;
    fn try_from(row: RefreshRow) -> Result<Self, StoreError> {
        Ok(Self {
            key_id: key_id(row.key_id)?,
            next_refresh_at: optional_time(row.next_refresh_at)?,
            attempts: u32::try_from(row.attempts).map_err(|_| {
                StoreError::Corrupt(format!("attempts {} out of range", row.attempts))
            })?,
            last_attempt_at: optional_time(row.last_attempt_at)?,
            last_status: row.last_status,
            refreshes: u64::try_from(row.refreshes).map_err(|_| {
                StoreError::Corrupt(format!("refreshes {} out of range", row.refreshes))
            })?,
            last_refreshed_at: optional_time(row.last_refreshed_at)?,
            receipt_created_at: optional_time(row.receipt_created_at)?,
            receipt_not_before: optional_time(row.receipt_not_before)?,
            receipt_expires_at: optional_time(row.receipt_expires_at)?,
            risk_metric: row.risk_metric,
            risk_metric_at: optional_time(row.risk_metric_at)?,
            lease_owner: row.lease_owner,
            lease_until: optional_time(row.lease_until)?,
            enrolled_at: time(row.enrolled_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CandidateRow {
    key_id: Vec<u8>,
    created_at: i64,
    receipt: Vec<u8>,
}

impl TryFrom<CandidateRow> for RefreshCandidate {
    type Error = StoreError;
    fn try_from(row: CandidateRow) -> Result<Self, StoreError> {
        Ok(Self {
            key_id: key_id(row.key_id)?,
            created_at: time(row.created_at)?,
            receipt: row.receipt,
        })
    }
}

fn key_id(bytes: Vec<u8>) -> Result<KeyId, StoreError> {
    let length = bytes.len();
    KeyId::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("key id of {length} bytes, expected 32")))
}

fn time(seconds: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| StoreError::Corrupt(format!("time {seconds} out of range")))
}

fn optional_time(seconds: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    seconds.map(time).transpose()
}

pub(crate) fn unix(at: OffsetDateTime) -> i64 {
    at.unix_timestamp()
}

pub(crate) fn page_limit(limit: u32) -> i64 {
    i64::from(limit.min(MAX_PAGE_SIZE))
}

/// Refuses an owner or status that is empty or longer than [`MAX_REFRESH_LABEL_LEN`].
pub(crate) fn check_label(what: &str, text: &str) -> Result<(), StoreError> {
    if text.is_empty() || text.len() > MAX_REFRESH_LABEL_LEN {
        return Err(StoreError::Invalid(format!(
            "{what} must be 1 to {MAX_REFRESH_LABEL_LEN} bytes"
        )));
    }
    Ok(())
}

pub(crate) fn check_metric(metric: Option<i64>) -> Result<(), StoreError> {
    match metric {
        Some(metric) if metric < 0 => Err(StoreError::Invalid(format!(
            "risk metric {metric} is negative"
        ))),
        _ => Ok(()),
    }
}

pub(crate) fn convert<R, T: TryFrom<R, Error = StoreError>>(
    rows: Vec<R>,
) -> Result<Vec<T>, StoreError> {
    rows.into_iter().map(T::try_from).collect()
}

/// Writes out [`RefreshStore`] for a store type with a `pool` field, with its claim statement.
macro_rules! impl_refresh_store_for {
    ($store:ty, $claim:expr) => {
        impl $crate::refresh::RefreshStore for $store {
            async fn unenrolled_device_keys(
                &self,
                created_since: time::OffsetDateTime,
                limit: u32,
            ) -> Result<Vec<$crate::refresh::RefreshCandidate>, $crate::StoreError> {
                let rows = sqlx::query_as::<_, $crate::refresh::CandidateRow>(
                    $crate::refresh::sql::UNENROLLED,
                )
                .bind($crate::refresh::unix(created_since))
                .bind($crate::refresh::page_limit(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::StoreError::from_sqlx)?;
                $crate::refresh::convert(rows)
            }

            async fn enroll_refresh(
                &self,
                enrollment: &$crate::refresh::RefreshEnrollment,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query($crate::refresh::sql::ENROLL)
                    .bind(enrollment.key_id.as_slice())
                    .bind(enrollment.next_refresh_at.map($crate::refresh::unix))
                    .bind(enrollment.receipt_created_at.map($crate::refresh::unix))
                    .bind(enrollment.receipt_not_before.map($crate::refresh::unix))
                    .bind(enrollment.receipt_expires_at.map($crate::refresh::unix))
                    .bind($crate::refresh::unix(enrollment.enrolled_at))
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(done.rows_affected() > 0)
            }

            async fn claim_due_refreshes(
                &self,
                now: time::OffsetDateTime,
                limit: u32,
                lease_until: time::OffsetDateTime,
                owner: &str,
            ) -> Result<Vec<$crate::refresh::ReceiptRefreshState>, $crate::StoreError> {
                $crate::refresh::check_label("lease owner", owner)?;
                if $crate::refresh::unix(lease_until) <= $crate::refresh::unix(now) {
                    return Err($crate::StoreError::Invalid(
                        "a lease must end after now".to_owned(),
                    ));
                }
                let rows = sqlx::query_as::<_, $crate::refresh::RefreshRow>($claim)
                    .bind($crate::refresh::unix(now))
                    .bind($crate::refresh::unix(lease_until))
                    .bind(owner)
                    .bind($crate::refresh::page_limit(limit))
                    .fetch_all(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                let mut claimed: Vec<$crate::refresh::ReceiptRefreshState> =
                    $crate::refresh::convert(rows)?;
                // RETURNING gives no order; hand out the most overdue first.
                claimed.sort_by(|a, b| {
                    (a.next_refresh_at, a.key_id).cmp(&(b.next_refresh_at, b.key_id))
                });
                Ok(claimed)
            }

            async fn record_refresh(
                &self,
                key_id: $crate::KeyId,
                owner: &str,
                attempt: &$crate::refresh::RefreshAttempt,
                next_at: Option<time::OffsetDateTime>,
            ) -> Result<bool, $crate::StoreError> {
                $crate::refresh::check_label("lease owner", owner)?;
                $crate::refresh::check_label("refresh status", &attempt.status)?;
                let done = sqlx::query($crate::refresh::sql::RECORD)
                    .bind(key_id.as_slice())
                    .bind(owner)
                    .bind(next_at.map($crate::refresh::unix))
                    .bind($crate::refresh::unix(attempt.at))
                    .bind(attempt.status.as_str())
                    .bind(attempt.succeeded)
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(done.rows_affected() > 0)
            }

            async fn store_refreshed_receipt(
                &self,
                key_id: $crate::KeyId,
                receipt: &$crate::refresh::RefreshedReceipt,
            ) -> Result<$crate::refresh::ReceiptUpdate, $crate::StoreError> {
                $crate::refresh::check_metric(receipt.risk_metric)?;
                let mut transaction = self
                    .writer
                    .begin()
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                let newer = sqlx::query($crate::refresh::sql::NEWER_RECEIPT)
                    .bind(key_id.as_slice())
                    .bind($crate::refresh::unix(receipt.created_at))
                    .bind(receipt.not_before.map($crate::refresh::unix))
                    .bind(receipt.expires_at.map($crate::refresh::unix))
                    .bind(receipt.risk_metric)
                    .bind($crate::refresh::unix(receipt.received_at))
                    .execute(&mut *transaction)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                if newer.rows_affected() == 0 {
                    let known: i64 = sqlx::query_scalar($crate::refresh::sql::HAS_STATE)
                        .bind(key_id.as_slice())
                        .fetch_one(&mut *transaction)
                        .await
                        .map_err($crate::StoreError::from_sqlx)?;
                    transaction
                        .rollback()
                        .await
                        .map_err($crate::StoreError::from_sqlx)?;
                    return if known == 0 {
                        Err($crate::StoreError::NotFound)
                    } else {
                        Ok($crate::refresh::ReceiptUpdate::Stale)
                    };
                }
                let stored = sqlx::query($crate::refresh::sql::KEY_RECEIPT)
                    .bind(key_id.as_slice())
                    .bind(receipt.receipt.as_slice())
                    .execute(&mut *transaction)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                let key = sqlx::query($crate::refresh::sql::KEY_RISK_METRIC)
                    .bind(key_id.as_slice())
                    .bind(receipt.risk_metric)
                    .execute(&mut *transaction)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                if stored.rows_affected() == 0 || key.rows_affected() == 0 {
                    // Unreachable through the foreign key; never leave a half update.
                    transaction
                        .rollback()
                        .await
                        .map_err($crate::StoreError::from_sqlx)?;
                    return Err($crate::StoreError::NotFound);
                }
                transaction
                    .commit()
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok($crate::refresh::ReceiptUpdate::Stored)
            }

            async fn release_refresh_claims(&self, owner: &str) -> Result<u64, $crate::StoreError> {
                $crate::refresh::check_label("lease owner", owner)?;
                let done = sqlx::query($crate::refresh::sql::RELEASE)
                    .bind(owner)
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(done.rows_affected())
            }

            async fn refresh_state(
                &self,
                key_id: $crate::KeyId,
            ) -> Result<Option<$crate::refresh::ReceiptRefreshState>, $crate::StoreError> {
                sqlx::query_as::<_, $crate::refresh::RefreshRow>($crate::refresh::sql::STATE)
                    .bind(key_id.as_slice())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?
                    .map($crate::refresh::ReceiptRefreshState::try_from)
                    .transpose()
            }

            async fn count_due_refreshes(
                &self,
                now: time::OffsetDateTime,
            ) -> Result<u64, $crate::StoreError> {
                let count: i64 = sqlx::query_scalar($crate::refresh::sql::COUNT_DUE)
                    .bind($crate::refresh::unix(now))
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                u64::try_from(count)
                    .map_err(|_| $crate::StoreError::Corrupt(format!("count {count}")))
            }
        }
    };
}

impl_refresh_store_for!(crate::SqliteStore, sql::CLAIM_SQLITE);
impl_refresh_store_for!(crate::PostgresStore, sql::CLAIM_POSTGRES);

/// Calls the same method on whichever backend the [`crate::AnyStore`] holds.
macro_rules! dispatch {
    ($self:ident.$method:ident($($argument:expr),*)) => {
        match $self {
            crate::AnyStore::Sqlite(store) => store.$method($($argument),*).await,
            crate::AnyStore::Postgres(store) => store.$method($($argument),*).await,
        }
    };
}

impl RefreshStore for crate::AnyStore {
    async fn unenrolled_device_keys(
        &self,
        created_since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<RefreshCandidate>, StoreError> {
        dispatch!(self.unenrolled_device_keys(created_since, limit))
    }

    async fn enroll_refresh(&self, enrollment: &RefreshEnrollment) -> Result<bool, StoreError> {
        dispatch!(self.enroll_refresh(enrollment))
    }

    async fn claim_due_refreshes(
        &self,
        now: OffsetDateTime,
        limit: u32,
        lease_until: OffsetDateTime,
        owner: &str,
    ) -> Result<Vec<ReceiptRefreshState>, StoreError> {
        dispatch!(self.claim_due_refreshes(now, limit, lease_until, owner))
    }

    async fn record_refresh(
        &self,
        key_id: KeyId,
        owner: &str,
        attempt: &RefreshAttempt,
        next_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        dispatch!(self.record_refresh(key_id, owner, attempt, next_at))
    }

    async fn store_refreshed_receipt(
        &self,
        key_id: KeyId,
        receipt: &RefreshedReceipt,
    ) -> Result<ReceiptUpdate, StoreError> {
        dispatch!(self.store_refreshed_receipt(key_id, receipt))
    }

    async fn release_refresh_claims(&self, owner: &str) -> Result<u64, StoreError> {
        dispatch!(self.release_refresh_claims(owner))
    }

    async fn refresh_state(
        &self,
        key_id: KeyId,
    ) -> Result<Option<ReceiptRefreshState>, StoreError> {
        dispatch!(self.refresh_state(key_id))
    }

    async fn count_due_refreshes(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        dispatch!(self.count_due_refreshes(now))
    }
}
