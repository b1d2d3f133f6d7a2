//! Every verdict is logged (the decision log), counted (metrics) and may raise webhook events.

use std::sync::Arc;

use attest_store::{
    Decision, DecisionFactor, DecisionKind, DecisionReason, Refusal, Store, whole_seconds,
};
use serde_json::json;
use time::OffsetDateTime;

use super::Verdict;
use super::gather::Subject;
use crate::server::config::WebhookEvent;
use crate::server::extract::encode_key_id;
use crate::server::state::AppState;
use crate::server::telemetry::{Severity, server_failure};

/// One decided request.
#[derive(Debug)]
pub struct Entry<'a> {
    /// The route that decided.
    pub route: &'static str,
    /// What the request was about.
    pub subject: &'a Subject<'a>,
    /// `ok`, or the failure code.
    pub code: &'a str,
    /// The verdict.
    pub verdict: &'a Verdict,
    /// The request's time.
    pub now: OffsetDateTime,
}

/// Logs, counts and raises events for `entry`. Never fails the request: a failure to log is a
/// warning.
pub async fn record(state: &Arc<AppState>, entry: Entry<'_>) {
    let decision = log_entry(&entry);
    if let Err(error) = state.store.record_decision(&decision).await {
        server_failure(Severity::Dependency, "could not record decision", &error);
    }
    after_logging(state, &entry).await;
}

/// Counts a refusal against its sender (and against `proven_device`, the device whose key the
/// request proved possession of), logs it in full if it is among the first
/// `refusal_log_sample` of its sender, app and code in the counting window, counts it in
/// metrics and raises its webhook events. Never fails the request.
pub async fn record_refusal(state: &Arc<AppState>, entry: Entry<'_>, proven_device: Option<&str>) {
    let decision = log_entry(&entry);
    let refusal = Refusal {
        decision: &decision,
        proven_device,
        window_seconds: super::gather::tally_seconds(&state.config),
        sample: state.config.refusal_log_sample,
    };
    let logged = match state.store.record_refusal(&refusal).await {
        Ok(recorded) => recorded.decision_id.is_some(),
        Err(error) => {
            tracing::warn!(%error, route = entry.route, "could not record a refusal");
            false
        }
    };
    let app = match entry.subject.app_id() {
        "" => "unknown".to_owned(),
        id => id.to_owned(),
    };
    let proof = if proven_device.is_some() {
        "possession"
    } else {
        "none"
    };
    let logged = if logged { "full" } else { "counted" };
    metrics::counter!("attestd_refusals_total", "app" => app, "proof" => proof, "logged" => logged)
        .increment(1);
    after_logging(state, &entry).await;
}

/// What [`record`] does once the decision is logged (by it, or in the caller's transaction):
/// counts it and raises its webhook events.
pub async fn after_logging(state: &Arc<AppState>, entry: &Entry<'_>) {
    count(entry);
    // A failed proof always scores high (verification_failed alone is 60): only verified
    // requests say something about the device.
    if entry.verdict.high_risk() && entry.code == "ok" {
        high_risk_event(state, entry).await;
    }
    if entry.subject.kind == DecisionKind::Attestation && entry.code != "ok" {
        failure_spike_event(state, entry).await;
    }
}

/// The decision as the store logs it.
pub fn log_entry(entry: &Entry<'_>) -> Decision {
    let verdict = entry.verdict;
    let subject = entry.subject;
    let mut decision = Decision::new(
        whole_seconds(entry.now),
        subject.app_id(),
        entry.route,
        verdict.decision.outcome,
        entry.code,
    );
    decision.key_id = subject.key_id;
    decision.risk_score = Some(verdict.assessment.score);
    decision.kind = Some(subject.kind);
    decision.device_id = subject.device_id.map(str::to_owned);
    decision.user_id = subject.user_id.map(str::to_owned);
    decision.client_ip = subject.context.ip_text();
    decision.environment = subject.key.map(|key| key.environment);
    decision.mode = Some(verdict.mode);
    decision.would_deny = verdict.decision.would_deny;
    decision.reasons = verdict
        .decision
        .reasons
        .iter()
        .map(|r| DecisionReason {
            code: r.code.as_str().to_owned(),
            message: r.message.clone(),
        })
        .collect();
    decision.factors = verdict
        .assessment
        .factors
        .iter()
        .map(|f| DecisionFactor {
            name: f.name.as_str().to_owned(),
            points: f.points,
            evidence: f.evidence.clone(),
        })
        .collect();
    decision
}

/// `attestd_decisions_total{app,outcome,reason}` once per failed rule (`reason="none"` when no
/// rule failed), `attestd_risk_score{app,kind}`, `attestd_risk_factors_total{app,factor}`.
fn count(entry: &Entry<'_>) {
    let app = match entry.subject.app_id() {
        "" => "unknown".to_owned(),
        id => id.to_owned(),
    };
    let decision = &entry.verdict.decision;
    let outcome = decision.outcome.as_str();
    if decision.reasons.is_empty() {
        metrics::counter!("attestd_decisions_total", "app" => app.clone(), "outcome" => outcome, "reason" => "none")
            .increment(1);
    }
    for reason in &decision.reasons {
        metrics::counter!("attestd_decisions_total", "app" => app.clone(), "outcome" => outcome, "reason" => reason.code.as_str())
            .increment(1);
    }
    metrics::histogram!("attestd_risk_score", "app" => app.clone(), "kind" => entry.subject.kind.as_str())
        .record(f64::from(entry.verdict.assessment.score));
    for factor in &entry.verdict.assessment.factors {
        metrics::counter!("attestd_risk_factors_total", "app" => app.clone(), "factor" => factor.name.as_str())
            .increment(1);
    }
}

/// `device.high_risk`: a verified request of a known device scored high or critical; once per
/// device per `high_risk_repeat` (per process).
async fn high_risk_event(state: &Arc<AppState>, entry: &Entry<'_>) {
    let hooks = &state.webhooks;
    let subject = entry.subject;
    let Some(device_id) = subject.device_id else {
        return;
    };
    let key = format!("high_risk\u{0}{}\u{0}{device_id}", subject.app_id());
    if !hooks.wants(WebhookEvent::DeviceHighRisk)
        || !hooks.once_per(key, hooks.settings().high_risk_repeat, entry.now)
    {
        return;
    }
    let verdict = entry.verdict;
    let factors: Vec<_> = verdict
        .assessment
        .factors
        .iter()
        .map(|f| json!({ "name": f.name.as_str(), "points": f.points, "evidence": f.evidence }))
        .collect();
    let data = json!({
        "deviceId": device_id,
        "keyId": subject.key_id.as_ref().map(encode_key_id),
        "userId": subject.user_id,
        "kind": subject.kind.as_str(),
        "route": entry.route,
        "riskScore": verdict.assessment.score,
        "riskBand": verdict.assessment.band.as_str(),
        "riskFactors": factors,
        "outcome": verdict.decision.outcome.as_str(),
        "wouldDeny": verdict.decision.would_deny,
    });
    hooks
        .emit(
            &state.store,
            WebhookEvent::DeviceHighRisk,
            subject.app_id(),
            data,
            entry.now,
        )
        .await;
}

/// `attestation.failure_spike`: the app's failed attestations in the window reached the
/// threshold; at most once per window per app. Counted in this process's memory (no database
/// read per refusal), so with several instances each one counts the failures it saw.
async fn failure_spike_event(state: &Arc<AppState>, entry: &Entry<'_>) {
    let hooks = &state.webhooks;
    let Some(app) = entry.subject.app else {
        return;
    };
    if !hooks.wants(WebhookEvent::AttestationFailureSpike) {
        return;
    }
    let settings = hooks.settings();
    let Some(spike) = hooks.count_failure(app.id(), entry.code, entry.now) else {
        return;
    };
    if !hooks.once_per(
        format!("failure_spike\u{0}{}", app.id()),
        settings.failure_spike_window,
        entry.now,
    ) {
        return;
    }
    let by_code: serde_json::Map<String, serde_json::Value> = spike
        .by_code
        .iter()
        .map(|(code, count)| (code.clone(), json!(count)))
        .collect();
    let data = json!({
        "failures": spike.failures,
        "threshold": settings.failure_spike_threshold,
        "windowSeconds": settings.failure_spike_window.as_secs(),
        "byCode": by_code,
    });
    hooks
        .emit(
            &state.store,
            WebhookEvent::AttestationFailureSpike,
            app.id(),
            data,
            entry.now,
        )
        .await;
}
