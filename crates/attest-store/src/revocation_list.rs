//! Google's Android attestation status list (revocation), as the server stored it last
//! (migration 0112): plain data, the statements and the bodies of the
//! [`Store`](crate::Store) methods, shared by both backends like [`crate::backend_tally`].
//!
//! The store keeps the raw JSON and does not parse it: the server parses a list before saving
//! it (a list that does not parse is never saved) and again when loading it.

use time::OffsetDateTime;

use crate::StoreError;

/// Longest ETag or Last-Modified value kept (Google's are a few dozen bytes; HTTP servers
/// commonly cap a header at 8 KiB).
pub const MAX_VALIDATOR_LEN: usize = 1024;

/// Longest fetch status kept (a code such as `fetched` or `http_500`).
pub const MAX_REVOCATION_STATUS_LEN: usize = 128;

/// A status list to save (see [`Store::save_revocation_list`](crate::Store::save_revocation_list)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRevocationList<'a> {
    /// The JSON exactly as served; the caller has parsed it.
    pub body: &'a [u8],
    /// When it was fetched, or confirmed by a 304 answer to a conditional request.
    pub fetched_at: OffsetDateTime,
    /// The answer's `ETag`, if any.
    pub etag: Option<&'a str>,
    /// The answer's `Last-Modified`, if any.
    pub last_modified: Option<&'a str>,
}

/// The stored status list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRevocationList {
    /// The JSON exactly as served.
    pub body: Vec<u8>,
    /// When it was fetched or last confirmed.
    pub fetched_at: OffsetDateTime,
    /// Its `ETag`, if the answer had one.
    pub etag: Option<String>,
    /// Its `Last-Modified`, if the answer had one.
    pub last_modified: Option<String>,
}

/// How a fetch of the list ended, whichever instance made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationListAttempt {
    /// When it ended.
    pub at: OffsetDateTime,
    /// `fetched`, `not_modified` or an error code (1 to [`MAX_REVOCATION_STATUS_LEN`] bytes).
    pub status: String,
}

/// What the store holds about the list: the latest accepted one and the last attempt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevocationListState {
    /// The latest list accepted, if any was.
    pub list: Option<StoredRevocationList>,
    /// The last fetch attempt, if any was recorded.
    pub last_attempt: Option<RevocationListAttempt>,
}

/// What [`Store::save_revocation_list`](crate::Store::save_revocation_list) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum RevocationListSaved {
    /// The list replaced the stored one (or was the first).
    Stored,
    /// A list fetched at the same time or later is stored; nothing changed.
    Stale,
}

pub(crate) mod sql {
    /// Contract point 10: the fetch-time comparison is the upsert's WHERE, evaluated under
    /// the row lock, so of concurrent saves the newest wins whatever their order.
    pub(crate) const SAVE: &str = "INSERT INTO android_revocation_list \
         (id, body, fetched_at, etag, last_modified) VALUES (1, $1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET body = excluded.body, fetched_at = excluded.fetched_at, \
         etag = excluded.etag, last_modified = excluded.last_modified \
         WHERE android_revocation_list.fetched_at IS NULL \
            OR android_revocation_list.fetched_at < excluded.fetched_at";

    /// The last attempt of any instance; an older report does not replace a newer one.
    pub(crate) const ATTEMPT: &str = "INSERT INTO android_revocation_list \
         (id, last_attempt_at, last_status) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET last_attempt_at = excluded.last_attempt_at, \
         last_status = excluded.last_status \
         WHERE android_revocation_list.last_attempt_at IS NULL \
            OR android_revocation_list.last_attempt_at <= excluded.last_attempt_at";

    pub(crate) const LOAD: &str = "SELECT body, fetched_at, etag, last_modified, \
         last_attempt_at, last_status FROM android_revocation_list WHERE id = 1";
}

#[derive(sqlx::FromRow)]
pub(crate) struct RevocationListRow {
    body: Option<Vec<u8>>,
    fetched_at: Option<i64>,
    etag: Option<String>,
    last_modified: Option<String>,
    last_attempt_at: Option<i64>,
    last_status: Option<String>,
}

impl TryFrom<RevocationListRow> for RevocationListState {
    type Error = StoreError;
    fn try_from(row: RevocationListRow) -> Result<Self, StoreError> {
        let list = match (row.body, row.fetched_at) {
            (Some(body), Some(fetched_at)) => Some(StoredRevocationList {
                body,
                fetched_at: time(fetched_at)?,
                etag: row.etag,
                last_modified: row.last_modified,
            }),
            (None, None) => None,
            _ => {
                return Err(StoreError::Corrupt(
                    "revocation list without its fetch time".to_owned(),
                ));
            }
        };
        let last_attempt = match (row.last_attempt_at, row.last_status) {
            (Some(at), Some(status)) => Some(RevocationListAttempt {
                at: time(at)?,
                status,
            }),
            (None, None) => None,
            _ => {
                return Err(StoreError::Corrupt(
                    "revocation list attempt without its status".to_owned(),
                ));
            }
        };
        Ok(Self { list, last_attempt })
    }
}

fn time(seconds: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| StoreError::Corrupt(format!("time {seconds} out of range")))
}

/// Refuses what the table must not hold (contract point 5): an empty body, validators that
/// are empty, too long or hold a NUL.
pub(crate) fn check_list(list: &NewRevocationList<'_>) -> Result<(), StoreError> {
    if list.body.is_empty() {
        return Err(StoreError::Invalid("an empty revocation list".to_owned()));
    }
    for (what, value) in [("ETag", list.etag), ("Last-Modified", list.last_modified)] {
        if let Some(value) = value {
            check_text(what, value, MAX_VALIDATOR_LEN)?;
        }
    }
    Ok(())
}

pub(crate) fn check_text(what: &str, text: &str, max: usize) -> Result<(), StoreError> {
    if text.is_empty() || text.len() > max || text.contains('\0') {
        return Err(StoreError::Invalid(format!(
            "{what} must be 1 to {max} bytes without NUL"
        )));
    }
    Ok(())
}

/// Writes the inherent `*_impl` bodies of the revocation-list methods for a store type with
/// `pool` and `writer` fields.
macro_rules! impl_revocation_list_for {
    ($store:ty) => {
        impl $store {
            async fn save_revocation_list_impl(
                &self,
                list: &$crate::NewRevocationList<'_>,
            ) -> Result<$crate::RevocationListSaved, $crate::StoreError> {
                $crate::revocation_list::check_list(list)?;
                let done = sqlx::query($crate::revocation_list::sql::SAVE)
                    .bind(list.body)
                    .bind(list.fetched_at.unix_timestamp())
                    .bind(list.etag)
                    .bind(list.last_modified)
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(if done.rows_affected() > 0 {
                    $crate::RevocationListSaved::Stored
                } else {
                    $crate::RevocationListSaved::Stale
                })
            }

            async fn record_revocation_list_attempt_impl(
                &self,
                attempt: &$crate::RevocationListAttempt,
            ) -> Result<(), $crate::StoreError> {
                $crate::revocation_list::check_text(
                    "revocation list status",
                    &attempt.status,
                    $crate::revocation_list::MAX_REVOCATION_STATUS_LEN,
                )?;
                sqlx::query($crate::revocation_list::sql::ATTEMPT)
                    .bind(attempt.at.unix_timestamp())
                    .bind(attempt.status.as_str())
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                Ok(())
            }

            async fn revocation_list_impl(
                &self,
            ) -> Result<$crate::RevocationListState, $crate::StoreError> {
                sqlx::query_as::<_, $crate::revocation_list::RevocationListRow>(
                    $crate::revocation_list::sql::LOAD,
                )
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::StoreError::from_sqlx)?
                .map($crate::RevocationListState::try_from)
                .transpose()
                .map(Option::unwrap_or_default)
            }
        }
    };
}

pub(crate) use impl_revocation_list_for;
