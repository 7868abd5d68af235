//! The one fact `check` needs from an X.509 certificate that rustls does not give: its
//! `notAfter`. A minimal DER walk: Certificate → TBSCertificate → Validity.

/// `notAfter` of a DER certificate, in unix seconds.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (certificate, _) = element(der, 0x30)?;
    let (tbs, _) = element(certificate, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xA0) {
        rest = skip(rest)?; // [0] version
    }
    for _ in 0..3 {
        rest = skip(rest)?; // serial, signature algorithm, issuer
    }
    let (validity, _) = element(rest, 0x30)?;
    let after_start = skip(validity)?;
    let tag = *after_start.first()?;
    let (time, _) = element(after_start, tag)?;
    let text = std::str::from_utf8(time).ok()?;
    match tag {
        0x17 => {
            // UTCTime YYMMDDHHMMSSZ: 50–99 are 19xx (RFC 5280).
            let yy: i64 = text.get(0..2)?.parse().ok()?;
            let year = if yy >= 50 { 1900 + yy } else { 2000 + yy };
            unix(year, text.get(2..)?)
        }
        0x18 => unix(text.get(0..4)?.parse().ok()?, text.get(4..)?),
        _ => None,
    }
}

/// `MMDDHHMMSSZ` of `year` as unix seconds.
fn unix(year: i64, rest: &str) -> Option<i64> {
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// The contents of the element at the start of `der` with `tag`, and what follows it.
fn element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *der.first()? != tag {
        return None;
    }
    let first = *der.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in der.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let body = der.get(header..header.checked_add(len)?)?;
    Some((body, der.get(header + len..)?))
}

/// What follows the element at the start of `der`.
fn skip(der: &[u8]) -> Option<&[u8]> {
    element(der, *der.first()?).map(|(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::unix(1970, "0101000000Z"), Some(0));
        assert_eq!(super::unix(2026, "1202000000Z"), Some(1_796_169_600));
    }
}
