//! The text envelope of a key file: armor lines around a compact JWS wrapped at any width.

use super::KeyFileError;

/// First line of an armored key file.
pub const BEGIN: &str = "-----BEGIN SEATKEEP KEY FILE-----";
/// Last line of an armored key file.
pub const END: &str = "-----END SEATKEEP KEY FILE-----";
/// Largest key file we read; real ones are a few KiB.
pub const MAX_KEY_FILE_BYTES: usize = 64 * 1024;
/// Width the provider side wraps the JWS at.
const WRAP: usize = 64;

/// Takes the compact JWS out of a key file's bytes, armored or bare.
pub fn dearmor(bytes: &[u8]) -> Result<String, KeyFileError> {
    if bytes.len() > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::TooLarge {
            limit: MAX_KEY_FILE_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| KeyFileError::NotUtf8)?;
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err(KeyFileError::Armor("the file is empty".into()));
    }
    if !text.starts_with("-----") {
        // A bare compact JWS: one token, no inner white space.
        if text.chars().any(char::is_whitespace) {
            return Err(KeyFileError::Armor(
                "a bare key file must be a single compact JWS without white space".into(),
            ));
        }
        return Ok(text.to_owned());
    }
    let mut lines = text.lines().map(str::trim);
    if lines.next() != Some(BEGIN) {
        return Err(KeyFileError::Armor(format!(
            "the first line must be '{BEGIN}'"
        )));
    }
    let mut compact = String::with_capacity(text.len());
    let mut ended = false;
    for line in lines {
        if ended {
            if !line.is_empty() {
                return Err(KeyFileError::Armor(format!(
                    "unexpected data after '{END}'"
                )));
            }
            continue;
        }
        if line == END {
            ended = true;
        } else if line.starts_with("-----") {
            return Err(KeyFileError::Armor(format!(
                "unexpected armor line '{line}'"
            )));
        } else {
            compact.push_str(line);
        }
    }
    if !ended {
        return Err(KeyFileError::Armor(format!("the '{END}' line is missing")));
    }
    if compact.is_empty() {
        return Err(KeyFileError::Armor("no JWS between the armor lines".into()));
    }
    if compact.chars().any(char::is_whitespace) {
        return Err(KeyFileError::Armor("white space inside a JWS line".into()));
    }
    Ok(compact)
}

/// Wraps a compact JWS in armor lines, 64 characters a line.
pub fn armor(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() + compact.len() / WRAP + 80);
    out.push_str(BEGIN);
    out.push('\n');
    let bytes = compact.as_bytes();
    for chunk in bytes.chunks(WRAP) {
        // A compact JWS is ASCII, so every chunk boundary is a char boundary.
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armor_round_trip() {
        let compact = "a".repeat(150) + "." + &"b".repeat(70) + ".c";
        assert_eq!(dearmor(armor(&compact).as_bytes()).unwrap(), compact);
        assert_eq!(dearmor(compact.as_bytes()).unwrap(), compact);
        let crlf = armor(&compact).replace('\n', "\r\n");
        assert_eq!(dearmor(crlf.as_bytes()).unwrap(), compact);
    }

    #[test]
    fn refuses_broken_armor() {
        let good = armor("a.b.c");
        assert!(dearmor(format!("{good}garbage").as_bytes()).is_err());
        assert!(dearmor(good.replace(END, "").as_bytes()).is_err());
        assert!(dearmor(b"").is_err());
        assert!(dearmor(&[0xff, 0xfe]).is_err());
        assert!(dearmor(&vec![b'a'; MAX_KEY_FILE_BYTES + 1]).is_err());
    }
}
