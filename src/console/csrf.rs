//! CSRF protection for every state change: the session's token in the form, compared in
//! constant time, and an `Origin` (or, without one, `Referer`) naming this server.

use actix_web::HttpRequest;
use actix_web::http::header::{ORIGIN, REFERER};
use subtle::ConstantTimeEq as _;

use super::ConsoleError;
use super::session::Session;

/// Checks a POST: the origin first (no token needed to refuse another site), then the token.
pub fn check(
    req: &HttpRequest,
    public_url: &str,
    session: &Session,
    token: &str,
) -> Result<(), ConsoleError> {
    check_origin(req, public_url)?;
    let matches: bool = session.csrf.as_bytes().ct_eq(token.as_bytes()).into();
    if !matches {
        return Err(ConsoleError::Csrf);
    }
    Ok(())
}

/// True when the request says it comes from a page of this server: `Origin` equal to the
/// origin the browser used (scheme and `Host`) or to `server.public_url`; without `Origin`,
/// a `Referer` under one of them. Neither header: refused (browsers send `Origin` on POST).
pub fn check_origin(req: &HttpRequest, public_url: &str) -> Result<(), ConsoleError> {
    let info = req.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
    let allowed = |origin: &str| origin == own || origin == public_url;
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let ok = match (header(ORIGIN), header(REFERER)) {
        (Some(origin), _) => allowed(origin),
        (None, Some(referer)) => [own.as_str(), public_url].iter().any(|o| {
            referer
                .strip_prefix(o)
                .is_some_and(|rest| rest.starts_with('/'))
        }),
        (None, None) => false,
    };
    if ok { Ok(()) } else { Err(ConsoleError::Csrf) }
}
