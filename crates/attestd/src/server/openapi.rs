//! The OpenAPI document served at `/openapi.json`, generated from the handlers and bodies.

use utoipa::openapi::content::Content;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Required};
use utoipa::{Modify, OpenApi, ToSchema};

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
        super::android::admin::revocation_list,
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
        super::android::admin::RevocationListView,
        super::apple::device_check::DeviceTokenBody,
        super::apple::device_check::UpdateBitsBody,
        super::apple::device_check::ValidateResponse,
        super::apple::device_check::QueryResponse,
        super::apple::device_check::UpdateResponse,
        hosted::ValidateBody,
        hosted::ValidateResponse,
        hosted::HostedDeviceIntelligence,
        dto::wire::Platform,
        dto::wire::AttestationFormat,
        dto::wire::DeviceCheckFormat,
        dto::wire::DeviceCheckEnvironment,
        dto::wire::KeyId,
        dto::wire::Base64,
        dto::wire::DeviceToken,
        dto::wire::Challenge,
        dto::wire::ClientId,
        dto::wire::LinkToken,
        dto::wire::FilterText,
        dto::wire::Outcome,
        dto::wire::DeliveryStatus,
        dto::wire::Since,
    )),
    modifiers(&AdminToken, &CommonResponses),
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
            ADMIN_TOKEN_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <admin_token>` (the server's `admin_token` \
                         setting, compared in constant time). Without the setting every \
                         /admin route answers 404 `not_found`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The security scheme of the admin routes.
const ADMIN_TOKEN_SCHEME: &str = "admin_token";

/// Routes answered from memory: no database, no Apple, nothing that can time out.
const IN_MEMORY_ROUTES: [&str; 4] = [
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/.well-known/jwks.json",
];

/// Adds the statuses that come from the layers around the handlers rather than from the
/// handlers themselves, to every operation they apply to, unless its own list already names
/// them (with a more precise description):
///
/// - 400 `malformed_request`: a body, query or path the extractors refuse;
/// - 401 `unauthorized` (with `WWW-Authenticate: Bearer`) and 404 `not_found` (admin API off):
///   the admin middleware, on every route with the `admin_token` scheme;
/// - 413 `body_too_large`: the body limit, on every route with a body;
/// - 415 `unsupported_media_type`: the JSON extractor, on every route with a required body;
/// - 429 `rate_limited` (with `Retry-After`): the per-address limit, on every route but the
///   probes and the scrape ([`limits::EXEMPT`](super::limits::EXEMPT)); the admin routes too;
/// - 503 `unavailable` / `timeout`: the database, and the request timeout around everything
///   that waits on it (all routes but [`IN_MEMORY_ROUTES`]).
///
/// The hosted-compatible routes (`/api/v1/...`) answer their own error shape.
/// `tests/it/openapi_contract.rs` checks the result route by route.
#[derive(Debug)]
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_common_responses(path, operation);
            }
        }
    }
}

fn add_common_responses(path: &str, operation: &mut Operation) {
    let error_body = if path.starts_with("/api/v1/") {
        hosted::HostedErrorBody::name()
    } else {
        ErrorBody::name()
    };
    let has_body = operation.request_body.is_some();
    let body_required = matches!(
        &operation.request_body,
        Some(RefOr::T(RequestBody {
            required: Some(Required::True),
            ..
        }))
    );
    let has_parameters = operation.parameters.iter().flatten().any(|parameter| {
        matches!(
            parameter,
            RefOr::T(parameter)
                if matches!(parameter.parameter_in, ParameterIn::Query | ParameterIn::Path)
        )
    });
    let admin = operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement)
            .ok()
            .and_then(|value| {
                value
                    .as_object()
                    .map(|o| o.contains_key(ADMIN_TOKEN_SCHEME))
            })
            .unwrap_or(false)
    });
    let mut common = Vec::new();
    if has_body || has_parameters {
        common.push(&MALFORMED_REQUEST);
    }
    if admin {
        common.extend([&UNAUTHORIZED, &ADMIN_DISABLED]);
    }
    if has_body {
        common.push(&BODY_TOO_LARGE);
    }
    if body_required {
        common.push(&UNSUPPORTED_MEDIA_TYPE);
    }
    if !super::limits::EXEMPT.contains(&path) {
        common.push(&RATE_LIMITED);
    }
    if !IN_MEMORY_ROUTES.contains(&path) {
        common.push(&UNAVAILABLE);
    }
    for status in common {
        let response = operation
            .responses
            .responses
            .entry(status.status.to_owned())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(status.description)
                        .content(
                            "application/json",
                            Content::new(Some(Ref::from_schema_name(error_body.clone()))),
                        )
                        .build(),
                )
            });
        // A route's own description of the status is kept; the header is the layer's.
        if let (RefOr::T(response), Some((name, schema_type, description))) =
            (response, &status.header)
        {
            response
                .headers
                .entry((*name).to_owned())
                .or_insert_with(|| {
                    RefOr::T(
                        HeaderBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(schema_type.clone())))
                            .description(Some(*description))
                            .build(),
                    )
                });
        }
    }
}

/// A status that a layer around the handlers answers.
struct CommonStatus {
    status: &'static str,
    description: &'static str,
    /// A header the answer carries: name, type, meaning.
    header: Option<(&'static str, Type, &'static str)>,
}

const MALFORMED_REQUEST: CommonStatus = CommonStatus {
    status: "400",
    description: "malformed_request: the body, a query or a path parameter is not what this \
                  document describes (`details.field` names it when known)",
    header: None,
};

const UNAUTHORIZED: CommonStatus = CommonStatus {
    status: "401",
    description: "unauthorized: no bearer token, or not the admin token",
    header: Some(("WWW-Authenticate", Type::String, "`Bearer`")),
};

const ADMIN_DISABLED: CommonStatus = CommonStatus {
    status: "404",
    description: "not_found: the admin API is disabled (no admin token configured)",
    header: None,
};

const BODY_TOO_LARGE: CommonStatus = CommonStatus {
    status: "413",
    description: "body_too_large: the body is over `body_limit_bytes` (64 KiB by default; \
                  `details.limitBytes`)",
    header: None,
};

const UNSUPPORTED_MEDIA_TYPE: CommonStatus = CommonStatus {
    status: "415",
    description: "unsupported_media_type: the body is not sent as `Content-Type: application/json`",
    header: None,
};

const RATE_LIMITED: CommonStatus = CommonStatus {
    status: "429",
    description: "rate_limited: too many requests from this address or for this key; retry \
                  after `Retry-After` seconds",
    header: Some((
        "Retry-After",
        Type::Integer,
        "Seconds to wait before retrying",
    )),
};

const UNAVAILABLE: CommonStatus = CommonStatus {
    status: "503",
    description: "unavailable: the database does not answer; timeout: the request took longer \
                  than `request_timeout_secs`. Retry later.",
    header: None,
};
