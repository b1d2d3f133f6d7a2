#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod any;
mod backend;
mod backend_ext;
mod backend_tally;
mod error;
mod postgres;
mod queries;
mod records;
mod refresh;
mod revocation_list;
mod rows;
mod sealing;
mod sql;
mod sqlite;
mod sqlite_commit;
mod sqlite_files;
mod store;
mod tally;
mod text;
mod webhook;

pub use any::{AnyStore, SqliteLocking, StoreOptions};
pub use error::{BackendError, StoreError};
pub use postgres::PostgresStore;
pub use queries::{
    ContextQuery, DecisionSummary, FailureCount, FailureScope, KeyContext, KeyFilter, OutcomeCount,
    ReasonCount, SummaryFilter,
};
pub use records::{
    AndroidEvidence, AppleEvidence, AssertionCommit, AssertionCommitted, CounterAdvance,
    CounterAnomaly, Decision, DecisionFactor, DecisionFilter, DecisionKind, DecisionReason,
    DeviceHistory, DeviceKey, Environment, Evidence, KeyId, LoggedDecision, MAX_PAGE_SIZE, Outcome,
    Platform, PolicyMode, RevocationReason, SigningKey, SpentChallenge, UnknownValue,
    whole_seconds,
};
pub use refresh::{
    MAX_REFRESH_LABEL_LEN, ReceiptRefreshState, ReceiptUpdate, RefreshAttempt, RefreshCandidate,
    RefreshEnrollment, RefreshStore, RefreshedReceipt,
};
pub use revocation_list::{
    MAX_REVOCATION_STATUS_LEN, MAX_VALIDATOR_LEN, NewRevocationList, RevocationListAttempt,
    RevocationListSaved, RevocationListState, StoredRevocationList,
};
pub use sealing::{InvalidKeyEncryptionKey, KeyEncryptionKey, SEALED_PREFIX, SealError};
pub use sqlite::SqliteStore;
pub use sqlite_files::ReadableFile;
pub use store::Store;
pub use tally::{
    FailureSubject, Refusal, RefusalRecorded, SenderFailures, SenderFilter, window_start,
};
pub use webhook::{
    DeliveryAttempt, DeliveryFilter, DeliveryStatus, NewWebhookDelivery, NextAttempt,
    WebhookDelivery,
};
