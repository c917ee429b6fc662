//! The browser pages, GraphiQL (GET /graphql from a browser) and GraphQL Playground
//! (/playground), and everything they load, served from the binary under /assets: they work
//! on a cluster with no internet. build.rs embeds the assets (npm packages pinned by
//! web/package-lock.json, and the pages' own scripts in src/http/pages) and names each after
//! its content's hash, so browsers may keep them for a year.
//!
//! Each page carries a Content-Security-Policy that lets it load nothing but this server's
//! scripts, styles and images and talk to nothing but this server. Styles may be inline:
//! Playground's styled-components and GraphiQL's editor write them at run time.

use axum::{
    extract::Path,
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// One file the pages load.
pub struct Asset {
    /// Its name under /assets: the content's hash, then the file's own name.
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

const GRAPHIQL_PAGE: &str = include_str!(concat!(env!("OUT_DIR"), "/graphiql.html"));
const PLAYGROUND_PAGE: &str = include_str!(concat!(env!("OUT_DIR"), "/playground.html"));

/// `'self'` covers this server's websocket URL too (CSP level 3).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// GraphiQL, signed in by a `#token=…` fragment, with graphql-ws for subscriptions.
pub fn graphiql() -> Response {
    page(GRAPHIQL_PAGE)
}

/// GraphQL Playground, signed in with the same stored token.
pub async fn playground() -> Response {
    page(PLAYGROUND_PAGE)
}

fn page(html: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        // The page names its assets by hash, so it must be asked for again to see new ones.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
    ];
    (headers, html).into_response()
}

/// GET /assets/{name}: an embedded file, to be kept for a year (its name changes with it).
pub async fn asset(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    (headers, asset.bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `/assets/…` a page names, in `src="…"` or `href="…"`.
    fn asset_links(html: &str) -> Vec<&str> {
        html.split(['"', '\''])
            .filter(|part| part.starts_with("/assets/"))
            .map(|part| part.trim_start_matches("/assets/"))
            .collect()
    }

    #[test]
    fn every_asset_a_page_names_is_embedded_and_nothing_comes_from_elsewhere() {
        for html in [GRAPHIQL_PAGE, PLAYGROUND_PAGE] {
            let links = asset_links(html);
            assert!(links.len() >= 4, "{html}");
            for link in links {
                assert!(ASSETS.iter().any(|asset| asset.name == link), "{link} is not embedded");
            }
            assert!(!html.contains("//"), "a page names another origin:\n{html}");
            assert!(!html.contains("<script>"), "inline script would need the CSP to allow it:\n{html}");
        }
    }

    #[test]
    fn assets_are_not_empty_and_their_names_differ() {
        for asset in ASSETS {
            assert!(!asset.bytes.is_empty(), "{} is empty", asset.name);
            assert_eq!(ASSETS.iter().filter(|other| other.name == asset.name).count(), 1);
        }
    }
}
