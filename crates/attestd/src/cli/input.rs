//! Reading INPUT arguments: a file path, `-` for stdin, or inline base64.

use std::io::Read;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// The largest input read (stdin or file). Attestations are ~10 KB; this bounds a mistake
/// such as piping a disk image.
const MAX_INPUT: u64 = 1024 * 1024;

/// An input that could not be read or decoded: a usage error (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("input is larger than 1 MiB")]
    TooLarge,
    #[error("{0} is neither an existing file nor base64")]
    NotFileOrBase64(String),
    #[error("invalid {what}: {reason}")]
    Argument { what: &'static str, reason: String },
}

/// Reads INPUT and returns the object's bytes.
///
/// Files and stdin may hold raw bytes, base64 text, or a JSON record (as in
/// `tests/data/apple`) whose `attestation`, `assertion`, `receipt`, `authdata` or `token` field
/// holds base64.
pub fn read(input: &str) -> Result<Vec<u8>, InputError> {
    match read_file_or_stdin(input)? {
        Some(bytes) => Ok(unwrap_text(bytes)),
        None => decode_base64(input.trim()).ok_or_else(|| {
            let shown: String = input.chars().take(40).collect();
            InputError::NotFileOrBase64(shown)
        }),
    }
}

/// The bytes of INPUT as they are when it is `-` or an existing file (at most 1 MiB); `None`
/// when it names neither (inline base64 for [`read`]).
pub fn read_file_or_stdin(input: &str) -> Result<Option<Vec<u8>>, InputError> {
    let bytes = if input == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut buf)
            .map_err(|e| InputError::Read("stdin".into(), e))?;
        buf
    } else if Path::new(input).is_file() {
        let file = std::fs::File::open(input).map_err(|e| InputError::Read(input.into(), e))?;
        let mut buf = Vec::new();
        file.take(MAX_INPUT + 1)
            .read_to_end(&mut buf)
            .map_err(|e| InputError::Read(input.into(), e))?;
        buf
    } else {
        return Ok(None);
    };
    if bytes.len() as u64 > MAX_INPUT {
        return Err(InputError::TooLarge);
    }
    Ok(Some(bytes))
}

/// Decodes text content (base64 or a JSON record) if the bytes are text; raw bytes otherwise.
pub fn unwrap_text(bytes: Vec<u8>) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return bytes;
    };
    let trimmed = text.trim();
    if trimmed.starts_with('{')
        && let Ok(serde_json::Value::Object(record)) = serde_json::from_str(trimmed)
    {
        for field in ["attestation", "assertion", "receipt", "authdata", "token"] {
            if let Some(decoded) = record
                .get(field)
                .and_then(serde_json::Value::as_str)
                .and_then(decode_base64)
            {
                return decoded;
            }
        }
    }
    decode_base64(trimmed).unwrap_or(bytes)
}

/// Decodes standard or URL-safe base64, padded or not, ignoring whitespace.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return None;
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(&compact).ok())
}

/// Decodes a base64 argument (key id, public key, client data).
pub fn base64_arg(what: &'static str, text: &str) -> Result<Vec<u8>, InputError> {
    decode_base64(text).ok_or_else(|| InputError::Argument {
        what,
        reason: "not base64".into(),
    })
}

/// Decodes a hex argument (client data hash).
pub fn hex_arg(what: &'static str, text: &str) -> Result<Vec<u8>, InputError> {
    hex::decode(text.trim()).map_err(|e| InputError::Argument {
        what,
        reason: e.to_string(),
    })
}

/// Reads a PEM (or DER) certificate file, returning DER.
pub fn certificate_file(path: &Path) -> Result<Vec<u8>, InputError> {
    let display = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| InputError::Read(display.clone(), e))?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(bytes);
    };
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    decode_base64(&body).ok_or(InputError::Argument {
        what: "certificate",
        reason: format!("{display} holds no PEM certificate"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_base64_in_any_alphabet_decodes() {
        assert_eq!(read("AAEC").unwrap(), vec![0, 1, 2]);
        assert_eq!(read("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(read("+/8=").unwrap(), vec![0xfb, 0xff]);
    }

    #[test]
    fn text_that_is_neither_file_nor_base64_is_a_usage_error() {
        assert!(matches!(
            read("no such file!"),
            Err(InputError::NotFileOrBase64(_))
        ));
    }

    #[test]
    fn files_may_hold_raw_bytes_base64_or_a_json_record() {
        let dir = std::env::temp_dir().join(format!("attestd-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let raw = dir.join("raw");
        std::fs::write(&raw, [0xa3, 0x00, 0xff]).unwrap();
        assert_eq!(read(raw.to_str().unwrap()).unwrap(), vec![0xa3, 0x00, 0xff]);
        let text = dir.join("b64");
        std::fs::write(&text, "o2Nm\n").unwrap();
        assert_eq!(
            read(text.to_str().unwrap()).unwrap(),
            vec![0xa3, 0x63, 0x66]
        );
        let json = dir.join("record.json");
        std::fs::write(&json, r#"{"id": "x", "assertion": "AAEC"}"#).unwrap();
        assert_eq!(read(json.to_str().unwrap()).unwrap(), vec![0, 1, 2]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
