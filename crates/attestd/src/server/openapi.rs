//! The OpenAPI document served at `/openapi.json`, generated from the handlers and bodies.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::dto;
use super::error::ErrorBody;
use super::routes::{admin, hosted, insights, ops, v1};

/// The attestd API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "attestd",
        description = "Self-hostable Apple App Attest verification server. Every error is \
                       {code, message, details} with a stable snake_case code (see docs/api.md); \
                       the /api/v1/attestation routes use the hosted {error, message, code: \
                       ATT_00x, details} shape instead."
    ),
    paths(
        v1::create_challenge,
        v1::create_attestation,
        v1::create_assertion,
        v1::create_token,
        v1::create_device_check,
        hosted::challenge,
        hosted::validate,
        admin::list_devices,
        admin::device,
        admin::revoke_device,
        admin::link_device,
        admin::rotate_signing_key,
        super::apple::admin::receipt_refresh,
        super::apple::device_check::validate,
        super::apple::device_check::query,
        super::apple::device_check::update,
        insights::decisions,
        insights::app_summary,
        admin::sender,
        admin::app_senders,
        insights::webhook_deliveries,
        ops::jwks,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi,
    ),
    components(schemas(
        ErrorBody,
        hosted::HostedErrorBody,
        dto::ChallengeRequest,
        dto::ChallengeResponse,
        dto::AttestationBody,
        dto::AttestationResponse,
        dto::LinkView,
        super::link::LinkStatus,
        dto::DeviceIntelligence,
        dto::DeviceCheckView,
        dto::DeviceCheckBody,
        dto::DeviceCheckResponse,
        dto::RiskView,
        dto::FactorView,
        dto::DecisionView,
        dto::ReasonView,
        dto::DeviceDetail,
        dto::DecisionLogView,
        dto::DecisionList,
        dto::SummaryView,
        dto::SenderList,
        dto::SenderView,
        dto::OutcomeCountView,
        dto::ReasonCountView,
        dto::DeliveryView,
        dto::DeliveryList,
        dto::AssertionBody,
        dto::AssertionResponse,
        dto::TokenResponse,
        dto::DeviceView,
        dto::DeviceList,
        dto::LinkKeyBody,
        dto::LinkedKeyView,
        dto::RotatedKey,
        dto::Health,
        super::apple::AppleHealthView,
        super::apple::admin::ReceiptRefreshView,
        super::apple::device_check::DeviceTokenBody,
        super::apple::device_check::UpdateBitsBody,
        super::apple::device_check::ValidateResponse,
        super::apple::device_check::QueryResponse,
        super::apple::device_check::UpdateResponse,
        super::apple::device_check::DeviceCheckEnvironment,
        hosted::ValidateBody,
        hosted::ValidateResponse,
        hosted::HostedDeviceIntelligence,
    )),
    modifiers(&AdminToken),
    tags(
        (name = "app-attest", description = "Challenges, attestations and assertions"),
        (name = "hosted-compatible", description = "The hosted-service API shape, for migrations"),
        (name = "admin", description = "Devices, decisions, policy summaries, webhook deliveries; bearer token"),
        (name = "tokens", description = "JWT verification keys"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// Declares the `admin_token` bearer scheme the admin routes name.
#[derive(Debug)]
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
