//! The receipt payload (the CMS eContent): a DER `SET OF ReceiptAttribute`.
//!
//! ```text
//! ReceiptAttribute ::= SEQUENCE { type INTEGER, version INTEGER, value OCTET STRING }
//! ```

use rasn::prelude::*;
use rasn::types::SetOf;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Receipt, ReceiptError, ReceiptType};

/// One payload attribute.
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq, Hash)]
pub(super) struct ReceiptAttribute {
    pub(super) field: Integer,
    pub(super) version: Integer,
    pub(super) value: OctetString,
}

/// Field numbers (Apple, "Assessing fraud risk"; 7 observed, undocumented).
mod field {
    pub(super) const APP_ID: u32 = 2;
    pub(super) const ATTESTED_CERTIFICATE: u32 = 3;
    pub(super) const CLIENT_HASH: u32 = 4;
    pub(super) const TOKEN: u32 = 5;
    pub(super) const TYPE: u32 = 6;
    pub(super) const ENVIRONMENT: u32 = 7;
    pub(super) const CREATION_TIME: u32 = 12;
    pub(super) const RISK_METRIC: u32 = 17;
    pub(super) const NOT_BEFORE: u32 = 19;
    pub(super) const EXPIRATION_TIME: u32 = 21;
}

/// Decodes the payload. Fields 2, 3, 6 and 12 are mandatory; a field number that appears twice
/// makes the payload malformed; fields this code does not know are skipped (Apple may add some).
pub(super) fn decode(payload: &[u8]) -> Result<Receipt, ReceiptError> {
    let malformed = ReceiptError::Malformed;
    let (attributes, rest) =
        rasn::der::decode_with_remainder::<SetOf<ReceiptAttribute>>(payload)
            .map_err(|_| malformed("payload is not a DER SET OF receipt attributes"))?;
    if !rest.is_empty() {
        return Err(malformed("trailing bytes after the receipt payload"));
    }

    let mut seen: Vec<u32> = Vec::with_capacity(attributes.len());
    let mut app_id = None;
    let mut attested_certificate = None;
    let mut client_hash = None;
    let mut token = None;
    let mut receipt_type = None;
    let mut environment = None;
    let mut creation_time = None;
    let mut risk_metric = None;
    let mut not_before = None;
    let mut expiration_time = None;

    for attribute in attributes.into_vec() {
        // Numbers outside u32 are no field Apple defines: skip them like any unknown field.
        let Ok(number) = u32::try_from(&attribute.field) else {
            continue;
        };
        if seen.contains(&number) {
            return Err(malformed("payload field appears twice"));
        }
        seen.push(number);
        let value = attribute.value;
        match number {
            field::APP_ID => app_id = Some(utf8(&value, "App ID (field 2) is not UTF-8")?),
            field::ATTESTED_CERTIFICATE => attested_certificate = Some(value.to_vec()),
            field::CLIENT_HASH => client_hash = Some(value.to_vec()),
            field::TOKEN => token = Some(utf8(&value, "token (field 5) is not UTF-8")?),
            field::TYPE => {
                receipt_type = Some(match utf8(&value, "type (field 6) is not UTF-8")? {
                    t if t == "ATTEST" => ReceiptType::Attest,
                    t if t == "RECEIPT" => ReceiptType::Receipt,
                    other => ReceiptType::Other(other),
                });
            }
            field::ENVIRONMENT => {
                environment = Some(utf8(&value, "environment (field 7) is not UTF-8")?);
            }
            field::CREATION_TIME => creation_time = Some(timestamp(&value)?),
            field::RISK_METRIC => {
                let text = std::str::from_utf8(&value)
                    .map_err(|_| malformed("risk metric (field 17) is not UTF-8"))?;
                // `u32::from_str` also accepts a leading '+'; Apple writes plain digits.
                if !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(malformed("risk metric (field 17) is not a decimal number"));
                }
                risk_metric =
                    Some(text.parse::<u32>().map_err(|_| {
                        malformed("risk metric (field 17) is not a decimal number")
                    })?);
            }
            field::NOT_BEFORE => not_before = Some(timestamp(&value)?),
            field::EXPIRATION_TIME => expiration_time = Some(timestamp(&value)?),
            _ => {}
        }
    }

    Ok(Receipt {
        app_id: app_id.ok_or(malformed("payload has no App ID (field 2)"))?,
        attested_certificate: attested_certificate
            .ok_or(malformed("payload has no attested certificate (field 3)"))?,
        client_hash: client_hash.unwrap_or_default(),
        token: token.unwrap_or_default(),
        receipt_type: receipt_type.ok_or(malformed("payload has no type (field 6)"))?,
        environment,
        creation_time: creation_time.ok_or(malformed("payload has no creation time (field 12)"))?,
        risk_metric,
        not_before,
        expiration_time,
    })
}

fn utf8(value: &[u8], error: &'static str) -> Result<String, ReceiptError> {
    String::from_utf8(value.to_vec()).map_err(|_| ReceiptError::Malformed(error))
}

/// Apple writes times as RFC 3339 in UTC with 0-3 fractional digits (`2021-01-23T12:26:41.564Z`).
fn timestamp(value: &[u8]) -> Result<OffsetDateTime, ReceiptError> {
    let malformed = ReceiptError::Malformed("a payload time is not RFC 3339");
    let text = std::str::from_utf8(value).map_err(|_| malformed.clone())?;
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| malformed)
}
