//! Assertion objects: `{"signature": ECDSA(nonce), "authenticatorData": rpIdHash ‖ flags ‖
//! counter}` with nonce = SHA256(authenticatorData ‖ SHA256(clientData)).

use std::fmt;

use crate::cbor::{Cbor, CborTweaks, cbor_tweak_methods};
use crate::device::Device;
use crate::keys::{Hex, sha256};

/// Apple's assertion flags byte, as every real assertion carries it (0x40).
const ASSERTION_FLAGS: u8 = 0x40;

/// A built assertion and its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assertion {
    /// The CBOR assertion object, as the app sends it.
    pub object: Vec<u8>,
    /// The authenticator data inside it.
    pub auth_data: Vec<u8>,
    /// The signature inside it.
    pub signature: Vec<u8>,
    /// The nonce that was signed: SHA256(authData ‖ SHA256(clientData)) unless overridden.
    pub nonce: Vec<u8>,
    /// SHA256(clientData) of the client data the assertion was made for.
    pub client_data_hash: [u8; 32],
}

/// Builds an assertion; every field can be overridden for negative tests.
pub struct AssertionBuilder<'a> {
    device: &'a Device,
    app_id: String,
    client_data: Vec<u8>,
    counter: u32,
    rp_id_hash: Option<Vec<u8>>,
    flags: u8,
    extensions: Vec<u8>,
    auth_data: Option<Vec<u8>>,
    signing_device: Option<&'a Device>,
    signed_client_data: Option<Vec<u8>>,
    signed_message: Option<Vec<u8>>,
    signature: Option<Vec<u8>>,
    corrupt_signature: bool,
    tweaks: CborTweaks<'a>,
}

impl fmt::Debug for AssertionBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionBuilder")
            .field("device", &self.device)
            .field("app_id", &self.app_id)
            .field("client_data", &Hex(&self.client_data))
            .field("counter", &self.counter)
            .field("flags", &self.flags)
            .field("tweaks", &self.tweaks)
            .finish_non_exhaustive()
    }
}

impl<'a> AssertionBuilder<'a> {
    pub(crate) fn new(
        device: &'a Device,
        app_id: &str,
        client_data: &[u8],
        counter: u32,
    ) -> AssertionBuilder<'a> {
        AssertionBuilder {
            device,
            app_id: app_id.to_owned(),
            client_data: client_data.to_vec(),
            counter,
            rp_id_hash: None,
            flags: ASSERTION_FLAGS,
            extensions: Vec::new(),
            auth_data: None,
            signing_device: None,
            signed_client_data: None,
            signed_message: None,
            signature: None,
            corrupt_signature: false,
            tweaks: CborTweaks::default(),
        }
    }

    cbor_tweak_methods!('a);

    /// Sign count.
    pub fn counter(mut self, counter: u32) -> Self {
        self.counter = counter;
        self
    }

    /// rpIdHash (default SHA256(app_id)).
    pub fn rp_id_hash(mut self, hash: impl Into<Vec<u8>>) -> Self {
        self.rp_id_hash = Some(hash.into());
        self
    }

    /// rpIdHash of another App ID.
    pub fn rp_id_for(self, app_id: &str) -> Self {
        self.rp_id_hash(sha256(&[app_id.as_bytes()]).to_vec())
    }

    /// Flags byte (default 0x40, as in every real assertion).
    pub fn flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }

    /// Bytes appended after the counter (an extension map, or trailing garbage); signed over.
    pub fn auth_data_extensions(mut self, bytes: &[u8]) -> Self {
        self.extensions.extend_from_slice(bytes);
        self
    }

    /// The whole authenticatorData verbatim (still signed correctly unless overridden).
    pub fn auth_data(mut self, auth_data: impl Into<Vec<u8>>) -> Self {
        self.auth_data = Some(auth_data.into());
        self
    }

    /// Sign with another device's key.
    pub fn signed_by(mut self, other: &'a Device) -> Self {
        self.signing_device = Some(other);
        self
    }

    /// Sign over other client data than the one the assertion claims (the nonce then differs).
    pub fn sign_client_data(mut self, client_data: &[u8]) -> Self {
        self.signed_client_data = Some(client_data.to_vec());
        self
    }

    /// Sign exactly this message instead of the nonce (e.g. `authData ‖ clientDataHash` without
    /// the outer hash, or the clientDataHash alone).
    pub fn sign_message(mut self, message: &[u8]) -> Self {
        self.signed_message = Some(message.to_vec());
        self
    }

    /// The signature bytes verbatim.
    pub fn signature(mut self, signature: impl Into<Vec<u8>>) -> Self {
        self.signature = Some(signature.into());
        self
    }

    /// Flip a bit in the signature's last byte.
    pub fn corrupt_signature(mut self) -> Self {
        self.corrupt_signature = true;
        self
    }

    /// Builds the assertion.
    pub fn build(self) -> Assertion {
        let auth_data = self.auth_data.clone().unwrap_or_else(|| {
            let rp_id_hash = self
                .rp_id_hash
                .clone()
                .unwrap_or_else(|| sha256(&[self.app_id.as_bytes()]).to_vec());
            let mut out = rp_id_hash;
            out.push(self.flags);
            out.extend_from_slice(&self.counter.to_be_bytes());
            out.extend_from_slice(&self.extensions);
            out
        });
        let client_data_hash = sha256(&[&self.client_data]);
        let signed_hash = match &self.signed_client_data {
            Some(other) => sha256(&[other]),
            None => client_data_hash,
        };
        let nonce = sha256(&[&auth_data, &signed_hash]).to_vec();
        let message = self.signed_message.clone().unwrap_or_else(|| nonce.clone());
        let mut signature = self
            .signature
            .clone()
            .unwrap_or_else(|| self.signing_device.unwrap_or(self.device).sign(&message));
        if self.corrupt_signature
            && let Some(last) = signature.last_mut()
        {
            *last ^= 0x01;
        }
        let object = Cbor::Map(vec![
            (Cbor::text("signature"), Cbor::bytes(signature.clone())),
            (
                Cbor::text("authenticatorData"),
                Cbor::bytes(auth_data.clone()),
            ),
        ]);
        Assertion {
            object: self.tweaks.apply(object),
            auth_data,
            signature,
            nonce: if self.signed_message.is_some() {
                message
            } else {
                nonce
            },
            client_data_hash,
        }
    }
}
