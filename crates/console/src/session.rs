//! Who is signed in, and the checks around it: the session cookie (HttpOnly, SameSite=Strict,
//! `Secure` when the request came over HTTPS or a proxy says it did), the CSRF checks of every
//! state-changing request (same-origin by `Sec-Fetch-Site` or `Origin`, and the session's
//! synchronizer token), and the security headers every console response carries.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use runtime::web_users::SessionUser;

use crate::i18n::Lang;
use crate::pages::ConsoleError;
use crate::state::ConsoleState;

pub const SESSION_COOKIE: &str = "nexus_session";
/// The browser's chosen theme (`light` or `dark`); absent: the system's.
pub const THEME_COOKIE: &str = "nexus_theme";

/// The theme a request asked for with its cookie: `light`, `dark`, or empty (follow the system).
pub fn theme(headers: &HeaderMap) -> &'static str {
    match cookie(headers, THEME_COOKIE) {
        Some("light") => "light",
        Some("dark") => "dark",
        _ => "",
    }
}

/// `Set-Cookie` remembering `theme` (`light`, `dark`; anything else follows the system again)
/// in this browser for a year.
pub fn theme_cookie(headers: &HeaderMap, theme: &str) -> HeaderValue {
    let secure = if secure(headers) { "; Secure" } else { "" };
    let value = match theme {
        "light" | "dark" => format!("{THEME_COOKIE}={theme}; Path=/; SameSite=Strict; Max-Age=31536000{secure}"),
        _ => format!("{THEME_COOKIE}=; Path=/; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("nexus_theme=; Path=/; Max-Age=0"))
}

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether the browser reached us over HTTPS (directly or through a proxy that says so).
fn secure(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// `Set-Cookie` for a new session token.
pub fn session_cookie(headers: &HeaderMap, token: &str) -> HeaderValue {
    let max_age = runtime::web_users::SESSION_IDLE.as_secs();
    let secure = if secure(headers) { "; Secure" } else { "" };
    let value = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("nexus_session=; Path=/"))
}

/// `Set-Cookie` that removes the session cookie.
pub fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_static("nexus_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The language of a request without a session (the login page).
pub fn browser_lang(headers: &HeaderMap) -> Lang {
    Lang::choose(None, headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
}

/// Refuses a state-changing request that did not come from one of our own pages: the browser
/// says where it came from (`Sec-Fetch-Site`, or `Origin` against `Host`).
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (Some(origin), Some(host)) => {
            let origin = origin.to_str().unwrap_or_default();
            let host = host.to_str().unwrap_or_default();
            origin.split_once("://").is_some_and(|(_, rest)| rest == host)
        }
        // Neither header (an old browser, or a script): the token check below still applies.
        (None, _) => true,
        (Some(_), None) => false,
    }
}

/// The address a request came from: the socket's peer, or the client a trusted proxy names
/// (`crate::proxies`); `unknown` when the server was not started with connection info.
pub struct ClientAddress(pub String);

impl FromRequestParts<ConsoleState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let Some(peer) = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>() else {
            return Ok(ClientAddress("unknown".to_owned()));
        };
        let forwarded = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let client = crate::proxies::client_address(peer.0.ip(), forwarded, &state.settings.trusted_proxies);
        Ok(ClientAddress(client.to_string()))
    }
}

/// A signed-in person, with the language they read.
pub struct Signed {
    pub user: SessionUser,
    pub token: String,
    pub lang: Lang,
    /// `light`, `dark`, or empty (the system's).
    pub theme: &'static str,
}

impl Signed {
    /// The CSRF checks of a state-changing request: same origin, and the form's token is the
    /// session's.
    pub fn check_csrf(&self, headers: &HeaderMap, token: &str) -> Result<(), ConsoleError> {
        let matches = token.len() == self.user.csrf.len()
            && token.bytes().zip(self.user.csrf.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if matches && same_origin(headers) { Ok(()) } else { Err(ConsoleError::Csrf(self.lang)) }
    }

    /// Refuses members on admin pages.
    pub fn require_admin(&self) -> Result<(), ConsoleError> {
        if self.user.principal.is_admin() { Ok(()) } else { Err(ConsoleError::AdminsOnly(self.lang)) }
    }
}

impl FromRequestParts<ConsoleState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to("/login").into_response();
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).filter(|t| !t.is_empty()).map(str::to_owned) else {
            return Err(to_login());
        };
        match state.runtime.session_user(&token).await {
            Ok(Some(user)) => {
                let accept = parts.headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
                let lang = Lang::choose(user.locale.as_deref(), accept);
                // A person's requests count against the same limits as an API key's: per
                // person, and for the tenant.
                if let Err(limited) = state.runtime.limits().request(&user.principal).await {
                    let error = gateway::ApiError::new(
                        axum::http::StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        limited.to_string(),
                    )
                    .with_retry_after(limited.retry_after_secs);
                    return Err(ConsoleError::Api(lang, error).into_response());
                }
                Ok(Signed { user, token, lang, theme: theme(&parts.headers) })
            }
            Ok(None) => {
                let mut response = to_login();
                response.headers_mut().insert(header::SET_COOKIE, cleared_cookie());
                Err(response)
            }
            Err(error) => {
                Err(ConsoleError::Unavailable(browser_lang(&parts.headers), error.to_string()).into_response())
            }
        }
    }
}

/// Security headers on every console response.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = headers(&[("cookie", "a=1; nexus_session=abc; b=2")]);
        assert_eq!(cookie(&h, "nexus_session"), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn cross_site_posts_are_refused() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(same_origin(&headers(&[("origin", "http://h:1"), ("host", "h:1")])));
        assert!(!same_origin(&headers(&[("origin", "http://evil"), ("host", "h:1")])));
    }

    #[test]
    fn the_cookie_is_secure_only_over_https() {
        let plain = session_cookie(&HeaderMap::new(), "t");
        assert!(plain.to_str().expect("ascii").contains("HttpOnly; SameSite=Strict"));
        assert!(!plain.to_str().expect("ascii").contains("Secure"));
        let proxied = session_cookie(&headers(&[("x-forwarded-proto", "https")]), "t");
        assert!(proxied.to_str().expect("ascii").ends_with("; Secure"));
    }
}
