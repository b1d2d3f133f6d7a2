//! Admin routes that show what the policy did and what enforcing would do: the decision log,
//! per-app summaries, and the webhook delivery log.

use std::sync::Arc;

use attest_store::{DecisionFilter, DeliveryFilter, DeliveryStatus, Outcome, Store, SummaryFilter};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::admin::page_size;
use crate::server::dto::{
    DecisionList, DecisionLogView, DecisionQuery, DeliveryList, DeliveryQuery, DeliveryView,
    SummaryQuery, SummaryView, rfc3339,
};
use crate::server::error::{ApiError, ErrorBody};
use crate::server::extract::{ApiPath, decode_key_id};
use crate::server::state::AppState;

/// Logged decisions, newest first. `?wouldDeny=true&outcome=allow_monitored` lists exactly what
/// switching the app to enforce would block, with the reasons.
#[utoipa::path(
    get,
    path = "/admin/v1/decisions",
    tag = "admin",
    params(DecisionQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of decisions", body = DecisionList),
        (status = 400, description = "malformed_request", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "not_found: the admin API is disabled", body = ErrorBody),
    )
)]
pub async fn decisions(
    State(state): State<Arc<AppState>>,
    query: Result<Query<DecisionQuery>, QueryRejection>,
) -> Result<Json<DecisionList>, ApiError> {
    let Query(query) = query.map_err(malformed_query)?;
    query.check_text()?;
    let outcome = query
        .outcome
        .as_deref()
        .map(|text| {
            text.parse::<Outcome>().map_err(|_| {
                ApiError::field("outcome", "outcome must be allow, allow_monitored or deny")
            })
        })
        .transpose()?;
    let key_id = query
        .key_id
        .as_deref()
        .map(|text| decode_key_id("keyId", text))
        .transpose()?;
    let filter = DecisionFilter {
        app_id: query.app_id,
        key_id,
        outcome,
        since: parse_since(query.since.as_deref())?,
        before_id: query.before_id,
        would_deny: query.would_deny,
        device_id: query.device_id,
    };
    let limit = page_size(query.limit)?;
    let logged = state.store.list_decisions(&filter, limit).await?;
    let next_before_id = (logged.len() == limit as usize)
        .then(|| logged.last().map(|l| l.id))
        .flatten();
    Ok(Json(DecisionList {
        decisions: logged.iter().map(DecisionLogView::from).collect(),
        next_before_id,
    }))
}

/// What an app's policy did, by outcome and by failed rule, and what enforcing would block.
#[utoipa::path(
    get,
    path = "/admin/v1/apps/{appId}/summary",
    tag = "admin",
    params(("appId" = crate::server::dto::wire::FilterText, Path, description = "A configured App ID", example = "QUICKSTART.dev.attestd.demo"), SummaryQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Counts", body = SummaryView),
        (status = 400, description = "malformed_request", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "unknown_app, or not_found when the admin API is disabled", body = ErrorBody),
    )
)]
pub async fn app_summary(
    State(state): State<Arc<AppState>>,
    ApiPath(app_id): ApiPath<String>,
    query: Result<Query<SummaryQuery>, QueryRejection>,
) -> Result<Json<SummaryView>, ApiError> {
    let Query(query) = query.map_err(malformed_query)?;
    crate::server::dto::check_text(&[("appId", Some(&app_id)), ("since", query.since.as_deref())])?;
    let app = state
        .apps
        .get(&app_id)
        .ok_or_else(|| ApiError::UnknownApp(app_id.clone()))?;
    let since = parse_since(query.since.as_deref())?;
    let filter = SummaryFilter {
        app_id: Some(app_id.clone()),
        since,
    };
    let summary = state.store.decision_summary(&filter).await?;
    Ok(Json(SummaryView::new(
        app_id,
        &app.config.policy,
        since.map(rfc3339),
        &summary,
    )))
}

/// The webhook delivery log, newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/webhooks/deliveries",
    tag = "admin",
    params(DeliveryQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryList),
        (status = 400, description = "malformed_request", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "not_found: the admin API is disabled", body = ErrorBody),
    )
)]
pub async fn webhook_deliveries(
    State(state): State<Arc<AppState>>,
    query: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<DeliveryList>, ApiError> {
    let Query(query) = query.map_err(malformed_query)?;
    query.check_text()?;
    let status = query
        .status
        .as_deref()
        .map(|text| {
            text.parse::<DeliveryStatus>().map_err(|_| {
                ApiError::field("status", "status must be pending, delivered or failed")
            })
        })
        .transpose()?;
    let filter = DeliveryFilter {
        status,
        event: query.event,
        before_id: query.before_id,
    };
    let limit = page_size(query.limit)?;
    let deliveries = state.store.list_webhook_deliveries(&filter, limit).await?;
    let next_before_id = (deliveries.len() == limit as usize)
        .then(|| deliveries.last().map(|d| d.id))
        .flatten();
    Ok(Json(DeliveryList {
        deliveries: deliveries.iter().map(DeliveryView::from).collect(),
        next_before_id,
    }))
}

fn malformed_query(rejection: QueryRejection) -> ApiError {
    ApiError::MalformedRequest {
        message: rejection.body_text(),
        field: None,
    }
}

/// `since`: RFC 3339, or unix seconds as 1 to 11 digits (`wire::Since`: nothing else, not
/// even surrounding whitespace).
pub(super) fn parse_since(text: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let digits = !text.is_empty() && text.len() <= 11 && text.bytes().all(|b| b.is_ascii_digit());
    let parsed = if digits {
        text.parse::<i64>()
            .ok()
            .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
    } else {
        OffsetDateTime::parse(text, &Rfc3339).ok()
    };
    parsed
        .map(Some)
        .ok_or_else(|| ApiError::field("since", "since must be RFC 3339 or unix seconds"))
}

#[cfg(test)]
mod tests {
    use attest_store::MAX_PAGE_SIZE;

    use super::*;

    #[test]
    fn since_is_rfc3339_or_unix_seconds() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(parse_since(Some("1800000000")).unwrap(), Some(at));
        assert_eq!(parse_since(Some(&rfc3339(at))).unwrap(), Some(at));
        assert_eq!(parse_since(None).unwrap(), None);
        for bad in [
            "yesterday",
            "99999999999999999",
            "",
            " 1800000000",
            "-1",
            "+5",
        ] {
            assert!(parse_since(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(page_size(None).unwrap(), 100);
        assert_eq!(page_size(Some(MAX_PAGE_SIZE)).unwrap(), MAX_PAGE_SIZE);
        for bad in [0, MAX_PAGE_SIZE + 1, u32::MAX] {
            assert_eq!(
                page_size(Some(bad)).unwrap_err().code(),
                "malformed_request"
            );
        }
    }
}
