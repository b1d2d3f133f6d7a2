//! PEM armour (RFC 7468) for saving and loading CAs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::SimError;

/// Label of a certificate block.
pub(crate) const CERTIFICATE: &str = "CERTIFICATE";
/// Label of a PKCS#8 private key block.
pub(crate) const PRIVATE_KEY: &str = "PRIVATE KEY";

/// Encodes one block, 64 characters per line.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Decodes every block in `text`, in order, as `(label, der)`. Text outside blocks is ignored.
pub(crate) fn decode_all(text: &str) -> Result<Vec<(String, Vec<u8>)>, SimError> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if current.is_some() {
                return Err(SimError::InvalidPem("nested BEGIN line"));
            }
            current = Some((label.to_owned(), String::new()));
        } else if let Some(label) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            let (open, body) = current
                .take()
                .ok_or(SimError::InvalidPem("END without BEGIN"))?;
            if open != label {
                return Err(SimError::InvalidPem("END label differs from BEGIN label"));
            }
            let der = STANDARD
                .decode(body.as_bytes())
                .map_err(|_| SimError::InvalidPem("invalid base64"))?;
            blocks.push((open, der));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
        }
    }
    if current.is_some() {
        return Err(SimError::InvalidPem("BEGIN without END"));
    }
    Ok(blocks)
}

/// Takes the next block, which must carry `label`.
pub(crate) fn expect_block(
    blocks: &mut impl Iterator<Item = (String, Vec<u8>)>,
    label: &str,
    what: &'static str,
) -> Result<Vec<u8>, SimError> {
    match blocks.next() {
        Some((found, der)) if found == label => Ok(der),
        _ => Err(SimError::InvalidPem(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let der: Vec<u8> = (0..=255).collect();
        let text = format!(
            "comment\n{}{}",
            encode(CERTIFICATE, &der),
            encode(PRIVATE_KEY, b"k")
        );
        let blocks = decode_all(&text).unwrap();
        assert_eq!(
            blocks,
            vec![
                (CERTIFICATE.to_owned(), der),
                (PRIVATE_KEY.to_owned(), b"k".to_vec())
            ]
        );
    }

    #[test]
    fn rejects_unterminated_block() {
        assert!(decode_all("-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
    }
}
