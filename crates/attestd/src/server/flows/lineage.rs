//! Which device a new key belongs to, and which keys it replaces.
//!
//! The lineage of a key is its app, its environment and its device. The context's ids are the
//! ones the app's backend vouched for with a link token (`server::link`); ids a client merely
//! names never reach here. With a device id, the device is the one named. With only a user id,
//! it is the device of the user's newest active key in the same environment (a re-attestation
//! of the same installation), or a new device. Without either, every attestation is a new
//! device: a re-installed app that lost its key is a new device unless its backend vouches. Once stored, the new key supersedes the active
//! keys of its device **in its environment** (`Store::settle_lineage`: the key stored last wins,
//! so two re-attestations racing for one device leave one active key): development and
//! production keys of one device are separate lineages.

use attest_store::{AnyStore, DeviceKey, Environment, KeyFilter, MAX_PAGE_SIZE, Store};

use super::new_device_id;
use crate::server::context::RequestContext;
use crate::server::error::ApiError;

/// The device a new key joins.
#[derive(Debug)]
pub struct Lineage {
    /// The device id the new key gets.
    pub device_id: String,
    /// Every stored key of the device, oldest first (any environment).
    pub device_keys: Vec<DeviceKey>,
}

impl Lineage {
    /// Resolves the lineage of a key of `environment` attested for `app_id` by `context` (whose
    /// ids are vouched for).
    pub async fn resolve(
        store: &AnyStore,
        app_id: &str,
        context: &RequestContext,
        environment: Environment,
    ) -> Result<Self, ApiError> {
        let device_keys = |device_id: String| KeyFilter {
            app_id: Some(app_id.to_owned()),
            device_id: Some(device_id),
            ..KeyFilter::default()
        };
        if let Some(device_id) = &context.device_id {
            let keys = store
                .find_device_keys(&device_keys(device_id.clone()), MAX_PAGE_SIZE)
                .await?;
            return Ok(Self {
                device_id: device_id.clone(),
                device_keys: keys,
            });
        }
        if let Some(user_id) = &context.user_id {
            let active = store
                .find_device_keys(
                    &KeyFilter {
                        app_id: Some(app_id.to_owned()),
                        user_id: Some(user_id.clone()),
                        environment: Some(environment),
                        active_only: true,
                        ..KeyFilter::default()
                    },
                    MAX_PAGE_SIZE,
                )
                .await?;
            // Oldest first: the last one is the newest.
            if let Some(device_id) = active.last().map(|k| k.device_id.clone()) {
                let keys = store
                    .find_device_keys(&device_keys(device_id.clone()), MAX_PAGE_SIZE)
                    .await?;
                return Ok(Self {
                    device_id,
                    device_keys: keys,
                });
            }
        }
        Ok(Self {
            device_id: new_device_id()?,
            device_keys: Vec::new(),
        })
    }
}
