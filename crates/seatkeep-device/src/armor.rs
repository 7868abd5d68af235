//! The text envelope of every Seatkeep file (DESIGN §3, §7, §11): a `-----BEGIN <label>-----`
//! line, base64url text, a `-----END <label>-----` line.
//!
//! Two bodies exist: one compact JWS wrapped at any width ([`dearmor`], key files), or one
//! compact JWS per line ([`dearmor_lines`], federation batches and acks, offline requests and
//! responses). A byte-order mark, surrounding white space and CRLF line ends are tolerated.

/// Largest armored file read, in bytes; real key files are a few KiB. Callers with a lower
/// cap (offline request files: 16 KiB) check it before.
pub const MAX_ARMOR_BYTES: usize = 64 * 1024;
/// Width [`armor`] wraps a JWS at.
const WRAP: usize = 64;

/// What an armored file holds; the label is the text between `BEGIN`/`END` and the dashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// `SEATKEEP KEY FILE`: one key file JWS, wrapped.
    KeyFile,
    /// `SEATKEEP FEDERATION`: federation batches, one per line.
    Federation,
    /// `SEATKEEP FEDERATION ACKS`: the provider's acks, one per line.
    FederationAcks,
    /// `SEATKEEP REQUEST`: an offline request file, one JWS per line.
    Request,
    /// `SEATKEEP RESPONSE`: an offline response file, one JWS per line.
    Response,
}

impl Label {
    /// The label text, e.g. `SEATKEEP KEY FILE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyFile => "SEATKEEP KEY FILE",
            Self::Federation => "SEATKEEP FEDERATION",
            Self::FederationAcks => "SEATKEEP FEDERATION ACKS",
            Self::Request => "SEATKEEP REQUEST",
            Self::Response => "SEATKEEP RESPONSE",
        }
    }

    /// What such a file is called in messages, e.g. `key file`.
    pub fn noun(self) -> &'static str {
        match self {
            Self::KeyFile => "key file",
            Self::Federation => "federation file",
            Self::FederationAcks => "federation acks file",
            Self::Request => "request file",
            Self::Response => "response file",
        }
    }

    /// The first line.
    pub fn begin(self) -> String {
        format!("-----BEGIN {}-----", self.as_str())
    }

    /// The last line.
    pub fn end(self) -> String {
        format!("-----END {}-----", self.as_str())
    }
}

/// Why armored text could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArmorError {
    /// Over [`MAX_ARMOR_BYTES`].
    TooLarge {
        /// Cap in bytes.
        limit: usize,
    },
    /// Not UTF-8 text.
    NotUtf8,
    /// Armor lines missing, misplaced or for another label; the reason is one line.
    Malformed(String),
}

impl std::fmt::Display for ArmorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(f, "larger than {limit} bytes"),
            Self::NotUtf8 => f.write_str("not UTF-8 text"),
            Self::Malformed(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for ArmorError {}

fn malformed(reason: impl Into<String>) -> ArmorError {
    ArmorError::Malformed(reason.into())
}

/// The text with the size cap, UTF-8, a byte-order mark and outer white space dealt with.
fn text_of(bytes: &[u8]) -> Result<&str, ArmorError> {
    if bytes.len() > MAX_ARMOR_BYTES {
        return Err(ArmorError::TooLarge {
            limit: MAX_ARMOR_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ArmorError::NotUtf8)?;
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err(malformed("the file is empty"));
    }
    Ok(text)
}

/// The non-empty lines between the armor lines, trimmed. Blank lines after `END` are fine;
/// anything else after it, or another armor line inside, is refused.
fn body_lines(label: Label, text: &str) -> Result<Vec<&str>, ArmorError> {
    let (begin, end) = (label.begin(), label.end());
    let mut lines = text.lines().map(str::trim);
    if lines.next() != Some(begin.as_str()) {
        return Err(malformed(format!("the first line must be '{begin}'")));
    }
    let mut body = Vec::new();
    let mut ended = false;
    for line in lines {
        if ended {
            if !line.is_empty() {
                return Err(malformed(format!("unexpected data after '{end}'")));
            }
        } else if line == end {
            ended = true;
        } else if line.starts_with("-----") {
            return Err(malformed(format!("unexpected armor line '{line}'")));
        } else if !line.is_empty() {
            body.push(line);
        }
    }
    if !ended {
        return Err(malformed(format!("the '{end}' line is missing")));
    }
    if body.is_empty() {
        return Err(malformed("no JWS between the armor lines"));
    }
    if body.iter().any(|line| line.contains(char::is_whitespace)) {
        return Err(malformed("white space inside a JWS line"));
    }
    Ok(body)
}

/// Takes the one compact JWS out of armored text (lines joined), or returns a bare compact
/// JWS as it is. Checks the envelope only, not the JWS.
pub fn dearmor(label: Label, bytes: &[u8]) -> Result<String, ArmorError> {
    let text = text_of(bytes)?;
    if !text.starts_with("-----") {
        // A bare compact JWS: one token, no inner white space.
        if text.contains(char::is_whitespace) {
            return Err(malformed(format!(
                "a bare {} must be a single compact JWS without white space",
                label.noun()
            )));
        }
        return Ok(text.to_owned());
    }
    Ok(body_lines(label, text)?.concat())
}

/// Takes the compact JWS lines out of armored text, one token per line (armor required).
pub fn dearmor_lines(label: Label, bytes: &[u8]) -> Result<Vec<String>, ArmorError> {
    let text = text_of(bytes)?;
    Ok(body_lines(label, text)?
        .into_iter()
        .map(str::to_owned)
        .collect())
}

/// Wraps one compact JWS in armor lines, 64 characters a line.
pub fn armor(label: Label, compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() + compact.len() / WRAP + 80);
    out.push_str(&label.begin());
    out.push('\n');
    let mut rest = compact;
    while !rest.is_empty() {
        // A compact JWS is ASCII; for anything else, cut at the next char boundary.
        let mut cut = rest.len().min(WRAP);
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (line, tail) = rest.split_at(cut);
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&label.end());
    out.push('\n');
    out
}

/// Armors several compact JWS, one per line.
pub fn armor_lines<'a>(label: Label, tokens: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = label.begin();
    out.push('\n');
    for token in tokens {
        out.push_str(token);
        out.push('\n');
    }
    out.push_str(&label.end());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Label = Label::KeyFile;

    #[test]
    fn armor_round_trip() {
        let compact = "a".repeat(150) + "." + &"b".repeat(70) + ".c";
        let armored = armor(KEY, &compact);
        assert!(armored.starts_with("-----BEGIN SEATKEEP KEY FILE-----\n"));
        assert!(armored.ends_with("\n-----END SEATKEEP KEY FILE-----\n"));
        assert!(
            armored
                .lines()
                .all(|l| l.len() <= 64 || l.starts_with("-----"))
        );
        assert_eq!(dearmor(KEY, armored.as_bytes()).unwrap(), compact);
        assert_eq!(dearmor(KEY, compact.as_bytes()).unwrap(), compact);
        let crlf = armored.replace('\n', "\r\n");
        assert_eq!(dearmor(KEY, crlf.as_bytes()).unwrap(), compact);
        let bom = format!("\u{feff}{armored}");
        assert_eq!(dearmor(KEY, bom.as_bytes()).unwrap(), compact);
    }

    #[test]
    fn refuses_broken_armor() {
        let good = armor(KEY, "a.b.c");
        assert!(dearmor(KEY, format!("{good}garbage").as_bytes()).is_err());
        assert!(dearmor(KEY, good.replace(&KEY.end(), "").as_bytes()).is_err());
        assert!(dearmor(KEY, b"").is_err());
        assert_eq!(dearmor(KEY, &[0xff, 0xfe]), Err(ArmorError::NotUtf8));
        assert_eq!(
            dearmor(KEY, &vec![b'a'; MAX_ARMOR_BYTES + 1]),
            Err(ArmorError::TooLarge {
                limit: MAX_ARMOR_BYTES
            })
        );
        assert!(dearmor(KEY, b"a.b .c").is_err());
        let inner_space = good.replace("a.b.c", "a.b c");
        assert!(dearmor(KEY, inner_space.as_bytes()).is_err());
        let nothing = format!("{}\n{}\n", KEY.begin(), KEY.end());
        assert!(dearmor(KEY, nothing.as_bytes()).is_err());
    }

    #[test]
    fn label_must_match() {
        let federation = armor_lines(Label::Federation, ["a.b.c"]);
        let err = dearmor(KEY, federation.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the first line must be '-----BEGIN SEATKEEP KEY FILE-----'"
        );
        // The ACKS label is not mistaken for its prefix.
        let acks = armor_lines(Label::FederationAcks, ["a.b.c"]);
        assert!(dearmor_lines(Label::Federation, acks.as_bytes()).is_err());
        assert_eq!(
            dearmor_lines(Label::FederationAcks, acks.as_bytes()).unwrap(),
            ["a.b.c"]
        );
    }

    #[test]
    fn one_token_per_line() {
        let text = armor_lines(Label::Request, ["a.b.c", "d.e.f"]);
        assert_eq!(
            text.lines().next(),
            Some("-----BEGIN SEATKEEP REQUEST-----")
        );
        assert_eq!(
            dearmor_lines(Label::Request, text.as_bytes()).unwrap(),
            ["a.b.c", "d.e.f"]
        );
        assert!(dearmor_lines(Label::Request, b"a.b.c").is_err());
        let response = armor_lines(Label::Response, ["x.y.z"]);
        assert!(response.starts_with("-----BEGIN SEATKEEP RESPONSE-----\n"));
    }
}
