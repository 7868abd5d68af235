//! The email templates (`templates/email/<kind>/{subject.txt, body.txt, body.html}`), rendered
//! with askama when the row is queued. `.html` escapes every value (names come from key files
//! and devices); `.txt` does not. Subjects are folded to one line, so nothing from a key file
//! or a device can reach a header as CR/LF.

use askama::Template;

use crate::db::models::License;

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The facts of a `seats_exhausted` email.
pub struct Exhausted<'a> {
    pub product: &'a str,
    pub customer: &'a str,
    pub license: &'a str,
    pub in_use: i64,
    pub seats: i64,
    pub refused: i64,
    /// 0 for the first email of an episode, N for the digest N days in.
    pub day: i64,
    pub url: &'a str,
}

/// The facts of a `threshold` email.
pub struct Threshold<'a> {
    pub product: &'a str,
    pub customer: &'a str,
    pub license: &'a str,
    pub in_use: i64,
    pub seats: i64,
    pub percent: i64,
    pub user: &'a str,
    pub device: &'a str,
    pub url: &'a str,
}

/// The facts of an `expiring` email.
pub struct Expiring<'a> {
    pub product: &'a str,
    pub customer: &'a str,
    pub license: &'a str,
    pub expired: bool,
    /// Days left before `exp`, rounded up (not the milestone that made the email due).
    pub days: u32,
    /// `exp` as an RFC 3339 UTC time.
    pub expires: String,
    pub url: &'a str,
}

/// The facts of a `clock_untrusted` email.
pub struct ClockUntrusted<'a> {
    pub behind_secs: i64,
    pub url: &'a str,
}

/// The facts of a `federation_overdue` email.
pub struct FederationOverdue<'a> {
    pub license: &'a str,
    pub pending: i64,
    /// Age of the oldest unacknowledged event, seconds.
    pub age_secs: i64,
    pub provider_url: &'a str,
    pub url: &'a str,
}

/// The facts of a `usage_state_invalid` email (to the operators).
pub struct UsageStateInvalid<'a> {
    pub license: &'a str,
    pub seat: &'a str,
    pub device_id: &'a str,
    pub reason: &'a str,
    pub url: &'a str,
}

/// The facts of a `usage_exhausted` or `usage_threshold` email.
pub struct UsagePool<'a> {
    /// The pool is spent (else: the threshold was crossed).
    pub exhausted: bool,
    pub product: &'a str,
    pub customer: &'a str,
    pub license: &'a str,
    pub issued: i64,
    pub cap: i64,
    pub unit: &'a str,
    pub percent: i64,
    pub url: &'a str,
}

/// The facts of `seatkeep notify test`.
pub struct TestEmail<'a> {
    pub url: &'a str,
}

macro_rules! email_templates {
    ($($data:ident: $subject:ident $text:ident $html:ident = $s:literal $t:literal $h:literal;)+) => {$(
        #[derive(Template)]
        #[template(path = $s)]
        struct $subject<'a> { d: &'a $data<'a> }
        #[derive(Template)]
        #[template(path = $t)]
        struct $text<'a> { d: &'a $data<'a> }
        #[derive(Template)]
        #[template(path = $h)]
        struct $html<'a> { d: &'a $data<'a> }

        impl $data<'_> {
            /// Renders the three parts.
            pub fn render(&self) -> Rendered {
                Rendered {
                    subject: one_line(&or_error($subject { d: self }.render())),
                    text: or_error($text { d: self }.render()),
                    html: or_error($html { d: self }.render()),
                }
            }
        }
    )+};
}

email_templates! {
    Exhausted: ExhaustedSubject ExhaustedText ExhaustedHtml = "email/seats_exhausted/subject.txt" "email/seats_exhausted/body.txt" "email/seats_exhausted/body.html";
    Threshold: ThresholdSubject ThresholdText ThresholdHtml = "email/threshold/subject.txt" "email/threshold/body.txt" "email/threshold/body.html";
    Expiring: ExpiringSubject ExpiringText ExpiringHtml = "email/expiring/subject.txt" "email/expiring/body.txt" "email/expiring/body.html";
    ClockUntrusted: ClockSubject ClockText ClockHtml = "email/clock_untrusted/subject.txt" "email/clock_untrusted/body.txt" "email/clock_untrusted/body.html";
    FederationOverdue: FederationSubject FederationText FederationHtml = "email/federation_overdue/subject.txt" "email/federation_overdue/body.txt" "email/federation_overdue/body.html";
    UsageStateInvalid: UsageStateSubject UsageStateText UsageStateHtml = "email/usage_state_invalid/subject.txt" "email/usage_state_invalid/body.txt" "email/usage_state_invalid/body.html";
    UsagePool: UsagePoolSubject UsagePoolText UsagePoolHtml = "email/usage_pool/subject.txt" "email/usage_pool/body.txt" "email/usage_pool/body.html";
    TestEmail: TestSubject TestText TestHtml = "email/test/subject.txt" "email/test/body.txt" "email/test/body.html";
}

/// The templates are compiled in and take only strings and numbers: rendering cannot fail
/// in practice, but a failure must not lose the notification.
fn or_error(rendered: askama::Result<String>) -> String {
    rendered.unwrap_or_else(|e| format!("(this email could not be rendered: {e})"))
}

/// Folds every run of whitespace and control characters (CR, LF included) into one space.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.chars().take(200).collect()
}

pub(super) fn seats_exhausted(license: &License, refused: i64, day: i64, url: &str) -> Rendered {
    Exhausted {
        product: &license.product_name,
        customer: &license.customer_name,
        license: &license.id,
        in_use: license.in_use,
        seats: license.seats,
        refused,
        day,
        url,
    }
    .render()
}

pub(super) fn threshold(
    license: &License,
    in_use: i64,
    percent: i64,
    user: &str,
    device: &str,
    url: &str,
) -> Rendered {
    Threshold {
        product: &license.product_name,
        customer: &license.customer_name,
        license: &license.id,
        in_use,
        seats: license.seats,
        percent,
        user,
        device,
        url,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_the_subject_is_one_line() {
        let r = Threshold {
            product: "Word<b>Smith</b>",
            customer: "Acme\r\nBcc: evil@x.example",
            license: "lic-1",
            in_use: 9,
            seats: 10,
            percent: 90,
            user: "<script>alert(1)</script>",
            device: "d1",
            url: "http://x",
        }
        .render();
        assert!(
            !r.subject.contains('\n') && !r.subject.contains('\r'),
            "{r:?}"
        );
        assert!(
            !r.html.contains("<script>") && !r.html.contains("<b>Smith"),
            "{}",
            r.html
        );
        assert!(r.text.contains("<script>"), "text is not escaped");
    }
}
