//! Contract point 8: text bound to the database holds no NUL character.
//!
//! PostgreSQL cannot store U+0000 in `text` and fails the statement with SQLSTATE 22021, which
//! looked like a database outage (`Unavailable`) to the server: an admin filter with `%00`
//! answered 503 and logged a false alarm. SQLite stores it, and C string APIs then cut it short.
//! So the store refuses such text itself, the same way on both backends, with
//! [`StoreError::Invalid`] naming the field. (JSON columns need no check: `serde_json` writes a
//! NUL as `\u0000`.)

use crate::{
    Decision, DecisionFilter, DeliveryAttempt, DeliveryFilter, DeviceKey, FailureScope, KeyFilter,
    NewWebhookDelivery, SigningKey, StoreError, SummaryFilter,
};

/// [`StoreError::Invalid`] for the first of `fields` with a NUL character.
pub(crate) fn check(fields: &[(&str, Option<&str>)]) -> Result<(), StoreError> {
    match fields
        .iter()
        .find(|(_, value)| value.is_some_and(|value| value.contains('\0')))
    {
        Some((field, _)) => Err(StoreError::Invalid(format!(
            "{field} contains a NUL character"
        ))),
        None => Ok(()),
    }
}

/// A value whose text fields the store binds.
pub(crate) trait BoundText {
    /// [`StoreError::Invalid`] if a text field holds a NUL character.
    fn check_text(&self) -> Result<(), StoreError>;
}

impl BoundText for KeyFilter {
    fn check_text(&self) -> Result<(), StoreError> {
        check(&[
            ("app_id", self.app_id.as_deref()),
            ("device_id", self.device_id.as_deref()),
            ("user_id", self.user_id.as_deref()),
            ("client_ip", self.client_ip.as_deref()),
        ])
    }
}

impl BoundText for FailureScope {
    fn check_text(&self) -> Result<(), StoreError> {
        check(&[
            ("app_id", self.app_id.as_deref()),
            ("device_id", self.device_id.as_deref()),
            ("client_ip", self.client_ip.as_deref()),
        ])
    }
}

impl BoundText for SummaryFilter {
    fn check_text(&self) -> Result<(), StoreError> {
        check(&[("app_id", self.app_id.as_deref())])
    }
}

impl BoundText for DecisionFilter {
    fn check_text(&self) -> Result<(), StoreError> {
        check(&[
            ("app_id", self.app_id.as_deref()),
            ("device_id", self.device_id.as_deref()),
        ])
    }
}

impl BoundText for Decision {
    fn check_text(&self) -> Result<(), StoreError> {
        check(&[
            ("app_id", Some(&self.app_id)),
            ("route", Some(&self.route)),
            ("code", Some(&self.code)),
            ("device_id", self.device_id.as_deref()),
            ("user_id", self.user_id.as_deref()),
            ("client_ip", self.client_ip.as_deref()),
        ])?;
        for reason in &self.reasons {
            check(&[("reason code", Some(&reason.code))])?;
        }
        Ok(())
    }
}

impl BoundText for DeviceKey {
    fn check_text(&self) -> Result<(), StoreError> {
        check(&[
            ("app_id", Some(&self.app_id)),
            ("device_id", Some(&self.device_id)),
            ("user_id", self.user_id.as_deref()),
            ("client_ip", self.client_ip.as_deref()),
        ])
    }
}

impl BoundText for NewWebhookDelivery {
    fn check_text(&self) -> Result<(), StoreError> {
        check(&[
            ("event_id", Some(&self.event_id)),
            ("event", Some(&self.event)),
            ("endpoint", Some(&self.endpoint)),
            ("payload", Some(&self.payload)),
        ])
    }
}

impl BoundText for DeliveryAttempt {
    fn check_text(&self) -> Result<(), StoreError> {
        check(&[("error", self.error.as_deref())])
    }
}

impl BoundText for DeliveryFilter {
    fn check_text(&self) -> Result<(), StoreError> {
        check(&[("event", self.event.as_deref())])
    }
}

impl BoundText for SigningKey {
    fn check_text(&self) -> Result<(), StoreError> {
        check(&[
            ("kid", Some(&self.kid)),
            ("algorithm", Some(&self.algorithm)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_field_with_a_nul_is_named() {
        assert!(check(&[("a", Some("x")), ("b", None)]).is_ok());
        let error = check(&[("a", Some("x")), ("b", Some("y\0z"))]).unwrap_err();
        assert!(
            matches!(&error, StoreError::Invalid(message) if message.starts_with("b ")),
            "{error}"
        );
        let filter = KeyFilter {
            user_id: Some("\0".into()),
            ..KeyFilter::default()
        };
        assert!(matches!(filter.check_text(), Err(StoreError::Invalid(_))));
    }
}
