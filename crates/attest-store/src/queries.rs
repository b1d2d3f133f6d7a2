//! Filters and aggregates for device intelligence and the decision log: plain data.

use time::OffsetDateTime;

use crate::records::{DecisionKind, Environment, KeyId, Outcome};

/// Which keys [`crate::Store::find_device_keys`] and [`crate::Store::count_device_keys`] match.
/// Every field that is set must match (AND); `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    /// Only keys of this App ID.
    pub app_id: Option<String>,
    /// Only keys of this device.
    pub device_id: Option<String>,
    /// Only keys attested for this user id.
    pub user_id: Option<String>,
    /// Only keys attested from this client address.
    pub client_ip: Option<String>,
    /// Only keys of this environment.
    pub environment: Option<Environment>,
    /// Only keys created at or after this time.
    pub created_since: Option<OffsetDateTime>,
    /// Only keys that are not revoked (nor superseded, nor expired).
    pub active_only: bool,
}

/// Whose failures [`crate::Store::failure_counts`] counts: decisions of `app_id` (if set) and
/// `kind` (if set) whose code is not `ok` and that match **any** of `key_id`, `device_id` and
/// `client_ip`; when none of the three is set, every failure of the app (and kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureScope {
    /// Only this App ID.
    pub app_id: Option<String>,
    /// Only attestations or only assertions.
    pub kind: Option<DecisionKind>,
    /// Failures that named this key...
    pub key_id: Option<KeyId>,
    /// ...or concerned this device...
    pub device_id: Option<String>,
    /// ...or came from this address.
    pub client_ip: Option<String>,
}

/// How many logged failures had one code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCount {
    /// The failure code (`nonce_mismatch`, `challenge_invalid`, ...).
    pub code: String,
    /// How many.
    pub count: u64,
}

/// Which decisions [`crate::Store::decision_summary`] counts; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryFilter {
    /// Only this App ID.
    pub app_id: Option<String>,
    /// Only decisions at or after this time.
    pub since: Option<OffsetDateTime>,
}

/// Decisions counted by outcome and by failed rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionSummary {
    /// Decisions by outcome and `would_deny`, each decision counted once; ordered by outcome
    /// text, then `would_deny`.
    pub by_outcome: Vec<OutcomeCount>,
    /// Decisions by outcome and failed rule: a decision with two failed rules is counted under
    /// both; ordered by outcome text, then reason.
    pub by_reason: Vec<ReasonCount>,
    /// Distinct devices with at least one decision that enforcing would deny.
    pub would_deny_devices: u64,
    /// Refusals counted against their sender but not logged in full (beyond the sample of
    /// each window, see [`crate::Refusal::sample`]); not in the counts above. With `since`,
    /// those of windows starting at or after it.
    pub unlogged_refusals: u64,
}

/// One line of [`DecisionSummary::by_outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeCount {
    /// The outcome.
    pub outcome: Outcome,
    /// Whether enforcing would deny these.
    pub would_deny: bool,
    /// How many decisions.
    pub count: u64,
}

/// One line of [`DecisionSummary::by_reason`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonCount {
    /// The outcome.
    pub outcome: Outcome,
    /// The failed rule's code.
    pub reason: String,
    /// How many decisions.
    pub count: u64,
}

/// What [`crate::Store::key_context`] reads besides the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextQuery {
    /// The requester's address: keys created from it are counted if `count_ip_keys`.
    pub client_ip: Option<String>,
    /// The device's tallied failures of windows starting at or after this time are counted.
    pub failures_since: OffsetDateTime,
    /// Keys created from this time on are counted.
    pub keys_since: OffsetDateTime,
    /// Count the app's keys created from `client_ip`.
    pub count_ip_keys: bool,
    /// Count the app's keys created for the key's user (if it has one).
    pub count_user_keys: bool,
}

/// A key with what the risk signals of a request about it need, read in one query.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyContext {
    /// The key.
    pub key: crate::DeviceKey,
    /// Its device's keys in its app.
    pub history: crate::DeviceHistory,
    /// Refusals that proved possession of a key of the key's device, in windows starting at or
    /// after `failures_since`, by code (as [`crate::Store::tallied_failures`] of the device).
    pub failures: Vec<FailureCount>,
    /// The app's keys created from the address since `keys_since`, if asked for.
    pub keys_from_ip: Option<u64>,
    /// The app's keys created for the key's user since `keys_since`, if asked for and the key
    /// has a user.
    pub keys_for_user: Option<u64>,
}
