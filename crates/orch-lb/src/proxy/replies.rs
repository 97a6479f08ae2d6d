//! Responses the proxy writes itself, with HAProxy's bodies: 408 (the client stopped
//! sending its request body for `timeout client`), 502 (no server could be connected, or
//! it failed the request), 503 (no server for the request), 504 (the server did not answer
//! in `timeout server`), and the 301 of `REDIRECT_TO_HTTPS`.
//!
//! May depend on: hyper, bytes, [`super::body`].

use super::body::ResponseBody;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use hyper::{Response, StatusCode};

/// HAProxy's 408 page.
const REQUEST_TIMEOUT: &str = "<html><body><h1>408 Request Time-out</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n";
/// HAProxy's 502 page.
const BAD_GATEWAY: &str = "<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete response.\n</body></html>\n";
/// HAProxy's 503 page.
const UNAVAILABLE: &str = "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n";
/// HAProxy's 504 page.
const GATEWAY_TIMEOUT: &str = "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n";

/// An error page: `status` is 408, 502, 503 or 504 (anything else gets the 503 page's
/// text).
pub(crate) fn error(status: StatusCode) -> Response<ResponseBody> {
    let body = match status {
        StatusCode::REQUEST_TIMEOUT => REQUEST_TIMEOUT,
        StatusCode::BAD_GATEWAY => BAD_GATEWAY,
        StatusCode::GATEWAY_TIMEOUT => GATEWAY_TIMEOUT,
        _ => UNAVAILABLE,
    };
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

/// A 301 to `location`.
pub(crate) fn redirect(location: HeaderValue) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    response.headers_mut().insert(LOCATION, location);
    response
}
