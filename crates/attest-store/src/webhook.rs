//! The webhook outbox and delivery log: plain data.

use std::str::FromStr;

use time::OffsetDateTime;

use crate::records::UnknownValue;

/// An event to deliver to one endpoint, as [`crate::Store::enqueue_webhook`] takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookDelivery {
    /// The event's id, shared by its deliveries to every endpoint (receivers dedupe on it).
    pub event_id: String,
    /// The event name (`device.new`, ...).
    pub event: String,
    /// The endpoint URL.
    pub endpoint: String,
    /// The exact JSON body to send (and sign).
    pub payload: String,
    /// When the event happened; the first attempt is due then.
    pub created_at: OffsetDateTime,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Not delivered yet; due at `next_attempt_at`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed; no more attempts.
    Failed,
}

impl DeliveryStatus {
    /// `pending`, `delivered` or `failed`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            _ => Err(UnknownValue::new("delivery status")),
        }
    }
}

/// One event for one endpoint, with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The log position: increasing.
    pub id: i64,
    /// The event's id.
    pub event_id: String,
    /// The event name.
    pub event: String,
    /// The endpoint URL.
    pub endpoint: String,
    /// The JSON body.
    pub payload: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (or, while claimed, when the claim lapses).
    pub next_attempt_at: OffsetDateTime,
    /// When the event was enqueued.
    pub created_at: OffsetDateTime,
    /// When the last attempt was made.
    pub last_attempt_at: Option<OffsetDateTime>,
    /// The HTTP status of the last answer, if there was one.
    pub last_http_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<OffsetDateTime>,
}

/// What came of one attempt, for [`crate::Store::record_webhook_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// When the attempt was made.
    pub at: OffsetDateTime,
    /// The HTTP status, if the endpoint answered.
    pub http_status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// What happens next.
    pub next: NextAttempt,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAttempt {
    /// It succeeded: [`DeliveryStatus::Delivered`].
    Delivered,
    /// Try again at this time.
    RetryAt(OffsetDateTime),
    /// No more attempts: [`DeliveryStatus::Failed`].
    GiveUp,
}

/// Which deliveries [`crate::Store::list_webhook_deliveries`] returns; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only this event name.
    pub event: Option<String>,
    /// Only deliveries older than this id (keyset pagination).
    pub before_id: Option<i64>,
}
