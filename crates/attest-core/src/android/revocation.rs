//! Google's attestation certificate status list, as data: parsing and lookup only. Fetching it
//! on a schedule and storing it is the server's job; the verifier takes the list and its fetch
//! time and fails closed when it is older than the caller allows.
//!
//! ```text
//! GET https://android.googleapis.com/attestation/status
//! { "entries": { "<hex serial>": { "status": "REVOKED" | "SUSPENDED",
//!                                  "expires"?: "YYYY-MM-DD", "reason"?: "...", "comment"?: "..." } } }
//! ```
//!
//! Keys are serial numbers in hex, which often look decimal (`16580768335559031605` is the hex
//! serial of a real Sony intermediate): never read them as decimal. Both sides are normalised to
//! lowercase hex without leading zeros, so an entry written `00388266760658996859E` matches, and
//! a DER serial whose first content byte is a `00` sign byte is looked up without it. Every
//! listed status blocks: REVOKED, SUSPENDED (Google's own helper ignores SUSPENDED; warden-supreme
//! and attestd do not), and any status Google may add later.

use std::collections::HashMap;
use std::time::Duration;

use rustls_pki_types::UnixTime;

/// Upper bound on the status list document (the live list is a few hundred KB).
pub const MAX_STATUS_LIST_LEN: usize = 64 * 1024 * 1024;

/// A listed certificate's status.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RevocationStatus {
    /// `REVOKED`.
    Revoked,
    /// `SUSPENDED`.
    Suspended,
    /// A status this version does not know; it blocks too.
    Other(String),
}

impl RevocationStatus {
    fn parse(text: &str) -> Self {
        match text {
            "REVOKED" => Self::Revoked,
            "SUSPENDED" => Self::Suspended,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The status as the list spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Revoked => "REVOKED",
            Self::Suspended => "SUSPENDED",
            Self::Other(other) => other,
        }
    }
}

impl std::fmt::Display for RevocationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationEntry {
    /// `status`.
    pub status: RevocationStatus,
    /// `reason` (`KEY_COMPROMISE`, `CA_COMPROMISE`, `SUPERSEDED`, `SOFTWARE_FLAW`,
    /// `UNSPECIFIED`), if given.
    pub reason: Option<String>,
    /// `expires` (`YYYY-MM-DD`: when the entry may leave the list), if given.
    pub expires: Option<String>,
    /// `comment`, if given.
    pub comment: Option<String>,
}

impl RevocationEntry {
    /// An entry with only a status.
    pub fn new(status: RevocationStatus) -> Self {
        Self {
            status,
            reason: None,
            expires: None,
            comment: None,
        }
    }
}

/// The status list document is not what Google serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationListError {
    /// Larger than [`MAX_STATUS_LIST_LEN`].
    #[error("status list larger than 64 MiB")]
    TooLarge,
    /// Not JSON.
    #[error("status list is not JSON")]
    NotJson,
    /// JSON of the wrong shape.
    #[error("status list: {0}")]
    Shape(&'static str),
}

/// A status list and when it was fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationList {
    entries: HashMap<String, RevocationEntry>,
    fetched_at: UnixTime,
}

impl RevocationList {
    /// Parses Google's status JSON, fetched at `fetched_at`. Strict about the shape (an
    /// `entries` object of objects with a string `status`): a list that cannot be read must
    /// not pass for an empty one.
    pub fn parse(json: &[u8], fetched_at: UnixTime) -> Result<Self, RevocationListError> {
        if json.len() > MAX_STATUS_LIST_LEN {
            return Err(RevocationListError::TooLarge);
        }
        let document: serde_json::Value =
            serde_json::from_slice(json).map_err(|_| RevocationListError::NotJson)?;
        let entries = document
            .get("entries")
            .and_then(serde_json::Value::as_object)
            .ok_or(RevocationListError::Shape("no \"entries\" object"))?;
        let text = |entry: &serde_json::Value, key: &str| {
            entry
                .get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let mut out = HashMap::with_capacity(entries.len());
        for (serial, entry) in entries {
            if !entry.is_object() {
                return Err(RevocationListError::Shape("an entry is not an object"));
            }
            let status = entry
                .get("status")
                .and_then(serde_json::Value::as_str)
                .ok_or(RevocationListError::Shape(
                    "an entry has no string \"status\"",
                ))?;
            out.insert(
                normalize_serial(serial),
                RevocationEntry {
                    status: RevocationStatus::parse(status),
                    reason: text(entry, "reason"),
                    expires: text(entry, "expires"),
                    comment: text(entry, "comment"),
                },
            );
        }
        Ok(Self {
            entries: out,
            fetched_at,
        })
    }

    /// A list from entries the caller stored (keys are normalised here).
    pub fn from_entries(
        entries: impl IntoIterator<Item = (String, RevocationEntry)>,
        fetched_at: UnixTime,
    ) -> Self {
        Self {
            entries: entries
                .into_iter()
                .map(|(serial, entry)| (normalize_serial(&serial), entry))
                .collect(),
            fetched_at,
        }
    }

    /// The entry for a serial (any spelling: it is normalised).
    pub fn lookup(&self, serial_hex: &str) -> Option<&RevocationEntry> {
        self.entries.get(&normalize_serial(serial_hex))
    }

    /// When the list was fetched.
    pub fn fetched_at(&self) -> UnixTime {
        self.fetched_at
    }

    /// How old the list is at `time` (zero if fetched after it).
    pub fn age_at(&self, time: UnixTime) -> Duration {
        Duration::from_secs(time.as_secs().saturating_sub(self.fetched_at.as_secs()))
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, keys normalised (for storing the list).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &RevocationEntry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// Whether and how the verifier consults the status list.
#[derive(Debug, Clone, Copy)]
pub enum Revocation<'a> {
    /// Look every certificate of the path up in `list`; fail closed
    /// (`revocation_list_stale`) when the list is older than `max_age` at the verification
    /// time.
    Check {
        /// The list.
        list: &'a RevocationList,
        /// The oldest list accepted.
        max_age: Duration,
    },
    /// Do not consult a list (the CLI without `--revocation-list`; tests). Chains that end at
    /// an extra root are never looked up, whatever this says: the list is Google's.
    Skip,
}

/// A status-list key (or any hex serial) as lowercase hex without leading zeros (`0` for zero).
pub fn normalize_serial(serial: &str) -> String {
    let lower = serial.trim().to_ascii_lowercase();
    let trimmed = lower.trim_start_matches('0');
    if trimmed.is_empty() && !lower.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// A certificate serial (the DER INTEGER's content bytes) as the list keys it: lowercase hex of
/// the magnitude without leading zeros (Java's `BigInteger.toString(16)` of a positive serial).
pub fn serial_hex(raw: &[u8]) -> String {
    let digit = |nibble: u8| char::from_digit(u32::from(nibble), 16).unwrap_or('0');
    let mut hex = String::with_capacity(raw.len() * 2);
    for byte in raw.iter().skip_while(|b| **b == 0) {
        hex.push(digit(byte >> 4));
        hex.push(digit(byte & 0x0f));
    }
    match hex.strip_prefix('0') {
        Some(rest) => rest.to_owned(),
        None if hex.is_empty() => "0".to_owned(),
        None => hex,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    fn data(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/data/android/revocation")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn normalises_both_sides() {
        assert_eq!(
            normalize_serial("00388266760658996859E"),
            "388266760658996859e"
        );
        assert_eq!(normalize_serial("0"), "0");
        assert_eq!(normalize_serial("000"), "0");
        assert_eq!(serial_hex(&[0x00, 0xcc, 0x66]), "cc66");
        assert_eq!(serial_hex(&[0x01]), "1");
        assert_eq!(serial_hex(&[0x00]), "0");
    }

    #[test]
    fn parses_googles_test_list_and_the_documented_example() {
        let list =
            RevocationList::parse(&data("google-android-key-attestation-status.json"), at(1))
                .unwrap();
        assert_eq!(list.len(), 5);
        // A key that looks decimal is hex.
        assert_eq!(
            list.lookup("6681152659205225093").unwrap().status,
            RevocationStatus::Revoked
        );
        let testdpc = list.lookup("00CC66E9A93713B6E643B26C15879786F7").unwrap();
        assert_eq!(testdpc.status, RevocationStatus::Suspended);
        assert_eq!(testdpc.reason.as_deref(), Some("KEY_COMPROMISE"));
        assert!(list.lookup("1234").is_none());

        let doc = RevocationList::parse(&data("doc-example-status.json"), at(1)).unwrap();
        let entry = doc.lookup("2c8cdddfd5e03bfc").unwrap();
        assert_eq!(entry.expires.as_deref(), Some("2020-11-13"));
        assert_eq!(
            entry.comment.as_deref(),
            Some("Key stored on unsecure system")
        );
        assert_eq!(doc.lookup("1").unwrap().status, RevocationStatus::Revoked);
        assert_eq!(
            doc.lookup("c8966fcb2fbb0d7a").unwrap().status,
            RevocationStatus::Suspended
        );
    }

    #[test]
    fn refuses_documents_that_are_not_a_status_list() {
        for (json, error) in [
            (&b"nope"[..], RevocationListError::NotJson),
            (b"{}", RevocationListError::Shape("no \"entries\" object")),
            (
                b"{\"entries\": []}",
                RevocationListError::Shape("no \"entries\" object"),
            ),
            (
                b"{\"entries\": {\"1\": \"REVOKED\"}}",
                RevocationListError::Shape("an entry is not an object"),
            ),
            (
                b"{\"entries\": {\"1\": {\"reason\": \"KEY_COMPROMISE\"}}}",
                RevocationListError::Shape("an entry has no string \"status\""),
            ),
        ] {
            assert_eq!(RevocationList::parse(json, at(0)), Err(error), "{json:?}");
        }
        let empty = RevocationList::parse(b"{\"entries\": {}}", at(0)).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn age_is_measured_from_the_fetch_time() {
        let list = RevocationList::from_entries(
            [(
                "ABC".to_owned(),
                RevocationEntry::new(RevocationStatus::Revoked),
            )],
            at(1000),
        );
        assert_eq!(list.age_at(at(1600)), Duration::from_secs(600));
        assert_eq!(list.age_at(at(10)), Duration::ZERO);
        assert!(list.lookup("0abc").is_some());
        assert_eq!(list.fetched_at(), at(1000));
        assert_eq!(list.entries().count(), 1);
    }
}
