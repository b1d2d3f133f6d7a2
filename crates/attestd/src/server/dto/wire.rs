//! The wire formats of request fields, as `/openapi.json` states them: one named schema per
//! kind of field (`KeyId`, `Base64`, `DeviceToken`, ...), used by the bodies and queries with
//! `#[schema(value_type = ...)]`. Each pattern describes exactly what the decoder beside it
//! accepts (`extract::decode_base64`, `decode_key_id`, `device_check::device_token`,
//! `context::client_id`, ...): the tests below hold every pattern against its decoder, so the
//! document neither promises what the server refuses nor forbids what it accepts. Generated
//! clients and schemathesis (fuzz/schemathesis.sh) rely on that.

use std::borrow::Cow;

use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::server::apple::device_check::MAX_DEVICE_TOKEN_LEN;
use crate::server::challenge::TEXT_LEN as CHALLENGE_TEXT_LEN;
use crate::server::context::MAX_ID_CHARS;

/// The standard base64 alphabet, as a regex class.
const STANDARD: &str = "[A-Za-z0-9+/]";
/// The URL-safe base64 alphabet.
const URL_SAFE: &str = "[A-Za-z0-9_-]";
/// The last character of a final group of three: its two low bits carry no data, and the
/// decoder refuses them set (one spelling per byte string).
const LAST_OF_THREE: &str = "[AEIMQUYcgkosw048]";
/// The last character of a final group of two: its four low bits carry no data.
const LAST_OF_TWO: &str = "[AQgw]";
/// What `device_token` strips before decoding: `char::is_ascii_whitespace`.
const ASCII_WHITESPACE: &str = r"[ \t\n\f\r]*";

/// One alphabet's canonical base64 (padding optional: `=` up to the canonical count), each
/// character followed by `gap`; `nonempty` refuses the empty string.
fn base64_body(alphabet: &str, gap: &str, nonempty: bool) -> String {
    let c = format!("{alphabet}{gap}");
    let group = format!("{c}{c}{c}{c}");
    let rest =
        format!("{c}{c}{LAST_OF_THREE}{gap}(?:={gap})?|{c}{LAST_OF_TWO}{gap}(?:={gap}){{0,2}}");
    if nonempty {
        format!("(?:{group})+(?:{rest})?|{rest}")
    } else {
        format!("(?:{group})*(?:{rest})?")
    }
}

/// `Base64`: what `extract::decode_base64` accepts.
pub fn base64_pattern() -> String {
    format!(
        "^(?:{}|{})$",
        base64_body(STANDARD, "", false),
        base64_body(URL_SAFE, "", false)
    )
}

/// `KeyId`: 32 bytes of base64 (`extract::decode_key_id`): 43 characters and an optional `=`.
pub fn key_id_pattern() -> String {
    format!("^(?:{STANDARD}{{42}}|{URL_SAFE}{{42}}){LAST_OF_THREE}=?$")
}

/// `DeviceToken`: base64 with ASCII whitespace anywhere, not empty (`device_token`).
pub fn device_token_pattern() -> String {
    let gap = ASCII_WHITESPACE;
    format!(
        "^{gap}(?:{}|{})$",
        base64_body(STANDARD, gap, true),
        base64_body(URL_SAFE, gap, true)
    )
}

/// `Challenge`: base64url without padding of a challenge value (`challenge::Challenges::open`).
pub fn challenge_pattern() -> String {
    format!("^{URL_SAFE}{{{CHALLENGE_TEXT_LEN}}}$")
}

/// `ClientId`: no control character (`char::is_control`, general category Cc).
pub const CLIENT_ID_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";

/// `FilterText`: no NUL (`dto::check_text`).
pub const FILTER_TEXT_PATTERN: &str = r"^[^\u0000]*$";

/// `Since`'s unix seconds: 1 to 11 digits (`routes::insights::parse_since`), so every value
/// is a time the server can represent (up to the year 5138).
pub const UNIX_SECONDS_PATTERN: &str = "^[0-9]{1,11}$";

/// Most characters of a `linkToken` (`link::verify_link_token` refuses longer ones).
pub const MAX_LINK_TOKEN_CHARS: usize = 4096;

fn text(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

/// Declares a schema-only type named `$name` in the document.
macro_rules! wire_format {
    ($(#[$doc:meta])* $type:ident, $name:literal, $schema:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $type;

        impl PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                let schema: Schema = $schema.into();
                schema.into()
            }
        }

        impl ToSchema for $type {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

wire_format!(
    /// `platform`: `ios` or `android`.
    Platform,
    "Platform",
    text("The client's platform: `ios` or `android`.").enum_values(Some(["ios", "android"]))
);

wire_format!(
    /// `format` of attestations and assertions.
    AttestationFormat,
    "AttestationFormat",
    text(
        "`apple-app-attest` (with platform `ios`): App Attest; `android-key-attestation` \
         (with platform `android`): Key Attestation and signed requests."
    )
    .enum_values(Some(crate::server::platform::Format::ALL.map(|format| format.as_str())))
);

wire_format!(
    /// `format` of `POST /v1/device-checks`.
    DeviceCheckFormat,
    "DeviceCheckFormat",
    text("`apple-devicecheck`: a DeviceCheck token.")
        .enum_values(Some([crate::server::extract::DEVICE_CHECK_FORMAT]))
);

wire_format!(
    /// `environment` of the DeviceCheck routes.
    DeviceCheckEnvironment,
    "DeviceCheckEnvironment",
    text(
        // The derived schema's text, line break included: the document stays the same.
        "Which DeviceCheck service a token belongs to: apps built for development talk to \
         Apple's\ndevelopment service."
    )
    .enum_values(Some(["production", "development"]))
);

wire_format!(
    /// A key id.
    KeyId,
    "KeyId",
    text(
        "A key id: 32 bytes of base64, standard (as Apple's SDK prints it) or URL-safe \
         alphabet, the final `=` optional. Answers spell it in standard base64."
    )
    .pattern(Some(key_id_pattern()))
    .min_length(Some(43))
    .max_length(Some(44))
    .examples(["eUmD0MKCPdVo1yE1Fm1fCk45hgddRSVxDRPVA2LVHtE="])
);

wire_format!(
    /// Bytes in base64.
    Base64,
    "Base64",
    text(
        "Bytes in base64: standard or URL-safe alphabet (not mixed), padding optional; the \
         unused bits of the last character must be zero."
    )
    .pattern(Some(base64_pattern()))
);

wire_format!(
    /// A DeviceCheck token.
    DeviceToken,
    "DeviceToken",
    text(
        "The token from `DCDevice.generateToken`: base64 as `Base64`, ASCII whitespace (line \
         breaks) allowed anywhere, not empty."
    )
    .pattern(Some(device_token_pattern()))
    .max_length(Some(MAX_DEVICE_TOKEN_LEN))
);

wire_format!(
    /// A challenge as `POST /v1/challenges` issued it.
    Challenge,
    "Challenge",
    text(
        "A challenge as the server issued it: 56 characters of base64url. Anything else, and \
         a challenge that is forged, expired, spent or issued for another app, purpose or key, \
         is 400 `challenge_invalid`."
    )
    .pattern(Some(challenge_pattern()))
);

wire_format!(
    /// `userId` / `deviceId` sent by a client or the admin API.
    ClientId,
    "ClientId",
    text(
        "An opaque id: at most 128 characters, none a control character. Surrounding \
         whitespace is trimmed; an empty or blank id counts as absent."
    )
    .pattern(Some(CLIENT_ID_PATTERN))
    .max_length(Some(MAX_ID_CHARS))
);

wire_format!(
    /// A link token.
    LinkToken,
    "LinkToken",
    text(
        "A link token from the app's backend: a compact HS256 JWS (docs/api.md, \"Linking\"). \
         Empty or blank: no token. One that does not verify is 422 `link_token_invalid`."
    )
    .max_length(Some(MAX_LINK_TOKEN_CHARS))
);

wire_format!(
    /// Text of an admin filter.
    FilterText,
    "FilterText",
    text("Filter text, matched exactly; no NUL character (PostgreSQL cannot store one).")
        .pattern(Some(FILTER_TEXT_PATTERN))
);

/// `outcome` values of the decision log (`attest_store::Outcome`).
pub const OUTCOMES: [&str; 3] = ["allow", "allow_monitored", "deny"];

/// `status` values of the webhook delivery log (`attest_store::DeliveryStatus`).
pub const DELIVERY_STATUSES: [&str; 3] = ["pending", "delivered", "failed"];

wire_format!(
    /// `outcome` of the decision log.
    Outcome,
    "Outcome",
    text("What the policy made of a request.").enum_values(Some(OUTCOMES))
);

wire_format!(
    /// `status` of the webhook delivery log.
    DeliveryStatus,
    "DeliveryStatus",
    text("Where a webhook delivery stands.").enum_values(Some(DELIVERY_STATUSES))
);

wire_format!(
    /// `since` of the admin queries.
    Since,
    "Since",
    AnyOfBuilder::new()
        .description(Some(
            "A time: RFC 3339 (`2026-11-23T17:00:00Z`), or unix seconds (1 to 11 digits)."
        ))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(UNIX_SECONDS_PATTERN)),
        )
);

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use std::sync::LazyLock;

    use proptest::prelude::*;
    use regex::Regex;

    use super::*;
    use crate::server::apple::device_check::device_token;
    use crate::server::context::client_id;
    use crate::server::extract::{decode_base64, decode_key_id};

    fn regex(pattern: &str) -> Regex {
        Regex::new(pattern).expect("the pattern compiles")
    }

    static BASE64: LazyLock<Regex> = LazyLock::new(|| regex(&base64_pattern()));
    static KEY_ID: LazyLock<Regex> = LazyLock::new(|| regex(&key_id_pattern()));
    static DEVICE_TOKEN: LazyLock<Regex> = LazyLock::new(|| regex(&device_token_pattern()));
    static CLIENT_ID: LazyLock<Regex> = LazyLock::new(|| regex(CLIENT_ID_PATTERN));

    /// Ids near the bound, of printable text, Unicode, whitespace and control characters.
    fn id_like() -> impl Strategy<Value = String> {
        let char = prop_oneof![
            8 => prop::char::range('a', 'z'),
            2 => Just(' '),
            1 => prop::sample::select(vec!['\t', '\n', '\u{0}', '\u{7f}', '\u{85}', '\u{9f}']),
            1 => prop::sample::select(vec!['é', '\u{a0}', '\u{2028}', '\u{feff}', '😀']),
        ];
        proptest::collection::vec(char, 0..=MAX_ID_CHARS + 3)
            .prop_map(|chars| chars.into_iter().collect())
    }

    /// Text made of base64 characters of both alphabets, padding and whitespace, biased
    /// towards almost-valid spellings: valid encodings, then one edit.
    fn base64ish(max_bytes: usize) -> impl Strategy<Value = String> {
        let encoded = (
            proptest::collection::vec(any::<u8>(), 0..max_bytes),
            0..4usize,
        )
            .prop_map(|(bytes, engine)| {
                [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD][engine].encode(bytes)
            });
        let edited = (
            encoded.clone(),
            any::<prop::sample::Index>(),
            "[A-Za-z0-9+/_=\\- \n.]",
        )
            .prop_map(|(text, at, replacement)| {
                let mut chars: Vec<char> = text.chars().collect();
                if chars.is_empty() {
                    return replacement;
                }
                let at = at.index(chars.len());
                chars[at] = replacement.chars().next().unwrap_or('A');
                chars.into_iter().collect()
            });
        let random = "[A-Za-z0-9+/_=\\- \t\n]{0,50}";
        prop_oneof![encoded, edited, random]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn base64_pattern_is_the_decoder(text in base64ish(40)) {
            let matches = BASE64.is_match(&text);
            prop_assert_eq!(matches, decode_base64("token", &text).is_ok(), "{:?}", text);
        }

        #[test]
        fn key_id_pattern_is_the_decoder(text in base64ish(34)) {
            let matches = KEY_ID.is_match(&text);
            prop_assert_eq!(matches, decode_key_id("keyId", &text).is_ok(), "{:?}", text);
        }

        #[test]
        fn key_ids_of_32_bytes_match(bytes in proptest::collection::vec(any::<u8>(), 32), engine in 0..4usize) {
            let text = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD][engine].encode(bytes);
            prop_assert!(KEY_ID.is_match(&text), "{:?}", text);
            prop_assert!(decode_key_id("keyId", &text).is_ok());
        }

        #[test]
        fn device_token_pattern_is_the_decoder(text in base64ish(40)) {
            let matches = DEVICE_TOKEN.is_match(&text);
            prop_assert_eq!(matches, device_token("deviceToken", &text).is_ok(), "{:?}", text);
        }

        #[test]
        fn client_id_pattern_is_the_checker(text in id_like()) {
            let documented = CLIENT_ID.is_match(&text) && text.chars().count() <= MAX_ID_CHARS;
            prop_assert_eq!(documented, client_id("userId", Some(&text)).is_ok(), "{:?}", text);
        }
    }

    #[test]
    fn edge_spellings_agree_with_the_decoders() {
        let key_id = STANDARD.encode([0xfb; 32]);
        let cases = [
            "", "=", "A", "AA", "AA=", "AA==", "AA===", "AAA", "AAA=", "AAA==", "AAAA", "AAAA=",
            "AB", "AB==", "AAB", "AAB=", "+/", "-_", "+_AA", "QQ", "QUI", "QUJD\n",
        ];
        for text in cases {
            assert_eq!(
                BASE64.is_match(text),
                decode_base64("t", text).is_ok(),
                "{text:?}"
            );
            assert_eq!(
                DEVICE_TOKEN.is_match(text),
                device_token("t", text).is_ok(),
                "{text:?}"
            );
        }
        for text in [
            key_id.clone(),
            key_id.trim_end_matches('=').to_owned(),
            key_id.replace('+', "-").replace('/', "_"),
            key_id.replace('+', "-"),
            format!("{key_id}="),
            format!(" {key_id}"),
            key_id[1..].to_owned(),
        ] {
            assert_eq!(
                KEY_ID.is_match(&text),
                decode_key_id("keyId", &text).is_ok(),
                "{text:?}"
            );
        }
        let long = "A".repeat(MAX_DEVICE_TOKEN_LEN);
        assert!(device_token("t", &long).is_ok());
        assert!(
            device_token("t", &format!("{long}\n")).is_err(),
            "the raw length counts"
        );
    }

    #[test]
    fn challenges_have_no_spare_bits() {
        // Every string the pattern admits decodes to a challenge value (which then opens or
        // not): 56 characters of base64url carry 42 bytes exactly.
        assert_eq!(CHALLENGE_TEXT_LEN * 6 % 8, 0);
        assert!(regex(&challenge_pattern()).is_match(&"A".repeat(CHALLENGE_TEXT_LEN)));
        assert!(!regex(&challenge_pattern()).is_match(&"A".repeat(CHALLENGE_TEXT_LEN + 1)));
    }

    #[test]
    fn enums_are_what_the_store_parses() {
        for outcome in OUTCOMES {
            assert!(
                outcome.parse::<attest_store::Outcome>().is_ok(),
                "{outcome}"
            );
        }
        for status in DELIVERY_STATUSES {
            assert!(
                status.parse::<attest_store::DeliveryStatus>().is_ok(),
                "{status}"
            );
        }
        assert!("Allow".parse::<attest_store::Outcome>().is_err());
        assert!("".parse::<attest_store::DeliveryStatus>().is_err());
    }

    #[test]
    fn since_seconds_are_representable() {
        let largest: i64 = "99999999999".parse().expect("11 digits");
        assert!(time::OffsetDateTime::from_unix_timestamp(largest).is_ok());
    }
}
