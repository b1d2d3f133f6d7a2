//! The admin API's view of senders: the refusals counted against a client address.

use std::collections::{BTreeMap, HashMap};

use attest_store::SenderFailures;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Query of the sender routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct SenderQuery {
    /// Refusals of counting windows starting at or after this time: RFC 3339 or unix seconds
    /// (default: the failure window, an hour by default; tallies are kept a day).
    #[param(value_type = Option<super::wire::Since>)]
    pub since: Option<String>,
    /// Most entries listed (senders of an app, or an address's apps): 1 to 1000 (default 100); anything else
    /// is 400 `malformed_request`.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// One sender's refusals.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SenderView {
    /// The client address (`null`: requests whose address was unknown).
    pub address: Option<String>,
    /// The App ID the refusals named (`""`: no configured app, e.g. unknown keys).
    pub app_id: String,
    /// Refusals counted.
    pub failures: u64,
    /// Of those, logged in full in the decision log (the first `refusal_log_sample` of each
    /// code per counting window).
    pub logged: u64,
    /// By code.
    pub failures_by_code: BTreeMap<String, u64>,
}

/// `GET /admin/v1/senders/{address}` and `GET /admin/v1/apps/{appId}/senders`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SenderList {
    /// Counting windows from (RFC 3339).
    pub since: String,
    /// Senders, most refusals first.
    pub senders: Vec<SenderView>,
}

/// Groups the store's (sender, code) lines into senders, most refusals first, keeping the
/// first `limit`.
pub fn senders_of(lines: &[SenderFailures], limit: usize) -> Vec<SenderView> {
    let mut senders: Vec<SenderView> = Vec::new();
    let mut index_of: HashMap<(&Option<String>, &str), usize> = HashMap::new();
    for line in lines {
        let index = *index_of
            .entry((&line.client_ip, line.app_id.as_str()))
            .or_insert_with(|| {
                senders.push(SenderView {
                    address: line.client_ip.clone(),
                    app_id: line.app_id.clone(),
                    failures: 0,
                    logged: 0,
                    failures_by_code: BTreeMap::new(),
                });
                senders.len() - 1
            });
        let sender = &mut senders[index];
        sender.failures += line.failures;
        sender.logged += line.logged;
        *sender
            .failures_by_code
            .entry(line.code.clone())
            .or_default() += line.failures;
    }
    senders.sort_by(|a, b| b.failures.cmp(&a.failures).then(a.address.cmp(&b.address)));
    senders.truncate(limit);
    senders
}
