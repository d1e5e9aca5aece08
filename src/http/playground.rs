//! The GraphiQL playground served at `GET /graphql`.
//!
//! Every file the page needs (React, ReactDOM, GraphiQL and our bootstrap
//! script) is compiled into the binary and served from `/graphql/assets/`.
//! Why not a CDN, as async-graphql's `GraphiQLSource` does:
//!
//! - a browser on the playground would tell a third party who uses Custos and
//!   when, which a privacy service should not do;
//! - a script pulled from elsewhere at run time can change under us; files
//!   pinned by version and sha256 (see `assets/graphiql/README.md`) cannot;
//! - with no outside origin the page can carry a strict Content-Security-Policy
//!   (`'self'` only, no inline script), which limits what an injected script
//!   could do with a developer's session;
//! - the playground keeps working on machines without internet access.
//!
//! The files are served by exact name; there is no directory lookup, so no
//! path from a request ever reaches the file system.

use poem::http::{StatusCode, header};
use poem::{Response, Route, get};

/// Where [`assets`] must be nested: `index.html` loads its files from here.
pub const ASSETS_PATH: &str = "/graphql/assets";

/// The Content-Security-Policy of the playground page.
///
/// Scripts come only from our origin (the bootstrap is a file, not inline).
/// Inline styles stay allowed because GraphiQL's components (Radix UI) insert
/// `<style>` elements at run time. The stylesheet's fonts and icons are
/// `data:` URLs. GraphiQL 4 edits with CodeMirror 5 and starts no web worker,
/// so no `worker-src` is needed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How long browsers may keep an asset: the files change only with a release.
const ASSET_CACHE_CONTROL: &str = "public, max-age=86400";

const INDEX_HTML: &str = include_str!("../../assets/graphiql/index.html");

/// One file compiled into the binary and served under [`ASSETS_PATH`].
struct EmbeddedAsset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

/// The files the page loads, plus the licences of the bundled packages
/// (`graphiql.min.js` carries no licence header of its own).
const EMBEDDED_ASSETS: &[EmbeddedAsset] = &[
    EmbeddedAsset {
        name: "react.production.min.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../../assets/graphiql/react.production.min.js"),
    },
    EmbeddedAsset {
        name: "react-dom.production.min.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    },
    EmbeddedAsset {
        name: "graphiql.min.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../../assets/graphiql/graphiql.min.js"),
    },
    EmbeddedAsset {
        name: "graphiql.min.css",
        content_type: CSS,
        body: include_bytes!("../../assets/graphiql/graphiql.min.css"),
    },
    EmbeddedAsset {
        name: "playground.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../../assets/graphiql/playground.js"),
    },
    EmbeddedAsset {
        name: "LICENSE.react",
        content_type: PLAIN_TEXT,
        body: include_bytes!("../../assets/graphiql/LICENSE.react"),
    },
    EmbeddedAsset {
        name: "LICENSE.react-dom",
        content_type: PLAIN_TEXT,
        body: include_bytes!("../../assets/graphiql/LICENSE.react-dom"),
    },
    EmbeddedAsset {
        name: "LICENSE.graphiql",
        content_type: PLAIN_TEXT,
        body: include_bytes!("../../assets/graphiql/LICENSE.graphiql"),
    },
];

/// The playground page for `GET /graphql`, with its Content-Security-Policy.
///
/// A plain function rather than an endpoint, so the `GET /graphql` handler
/// can first refuse operations sent over GET and honour the setting that
/// turns the playground off, then answer with this.
pub fn page() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        // The page is tiny; never let a stale copy point at old asset names.
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(INDEX_HTML)
}

/// The embedded playground files, one route per file name; any other name is
/// a 404.
///
/// Nest it at [`ASSETS_PATH`]: `.nest(playground::ASSETS_PATH, playground::assets())`.
pub fn assets() -> Route {
    EMBEDDED_ASSETS.iter().fold(Route::new(), |route, asset| {
        let (content_type, body) = (asset.content_type, asset.body);
        route.at(
            format!("/{}", asset.name),
            get(poem::endpoint::make_sync(move |_| {
                Response::builder()
                    .status(StatusCode::OK)
                    .content_type(content_type)
                    .header(header::CACHE_CONTROL, ASSET_CACHE_CONTROL)
                    .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                    .body(body)
            })),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::Method;
    use poem::{Endpoint, Request};

    /// The routes as the server mounts them.
    fn app() -> Route {
        Route::new()
            .at("/graphql", get(poem::endpoint::make_sync(|_| page())))
            .nest(ASSETS_PATH, assets())
    }

    async fn send(method: Method, uri: &str) -> Response {
        app()
            .get_response(Request::builder().method(method).uri_str(uri).finish())
            .await
    }

    fn header_of(response: &Response, name: header::HeaderName) -> Option<&str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn page_is_served_with_a_strict_policy() {
        let response = send(Method::GET, "/graphql").await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(
            header_of(&response, header::CONTENT_SECURITY_POLICY),
            Some(CONTENT_SECURITY_POLICY)
        );
        assert_eq!(
            header_of(&response, header::CACHE_CONTROL),
            Some("no-store")
        );
        assert_eq!(
            header_of(&response, header::REFERRER_POLICY),
            Some("no-referrer")
        );
        assert_eq!(
            header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
            Some("nosniff")
        );

        let html = response.into_body().into_string().await.unwrap();
        assert!(html.contains("<title>Custos GraphQL playground</title>"));
        for script in [
            "react.production.min.js",
            "react-dom.production.min.js",
            "graphiql.min.js",
            "playground.js",
        ] {
            let tag = format!(r#"<script src="/graphql/assets/{script}"></script>"#);
            assert!(html.contains(&tag), "missing {tag}");
        }
        assert!(
            html.contains(r#"<link rel="stylesheet" href="/graphql/assets/graphiql.min.css">"#)
        );
    }

    #[test]
    fn policy_forbids_inline_script_and_other_origins() {
        let script_src = CONTENT_SECURITY_POLICY
            .split(';')
            .map(str::trim)
            .find(|directive| directive.starts_with("script-src"));
        assert_eq!(script_src, Some("script-src 'self'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("http"));
        assert!(!CONTENT_SECURITY_POLICY.contains('*'));
    }

    #[test]
    fn page_loads_nothing_from_elsewhere_and_has_no_inline_script() {
        // Every src/href in the page points into our asset folder.
        for attribute in ["src=\"", "href=\""] {
            for (at, _) in INDEX_HTML.match_indices(attribute) {
                let value = &INDEX_HTML[at + attribute.len()..];
                assert!(
                    value.starts_with("/graphql/assets/"),
                    "page refers elsewhere: {}",
                    &value[..value.find('"').unwrap_or(value.len())]
                );
            }
        }
        assert_eq!(
            INDEX_HTML.matches("<script").count(),
            INDEX_HTML.matches("<script src=").count()
        );
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_content_type() {
        let expected = [
            ("react.production.min.js", JAVASCRIPT),
            ("react-dom.production.min.js", JAVASCRIPT),
            ("graphiql.min.js", JAVASCRIPT),
            ("graphiql.min.css", CSS),
            ("playground.js", JAVASCRIPT),
            ("LICENSE.react", PLAIN_TEXT),
            ("LICENSE.react-dom", PLAIN_TEXT),
            ("LICENSE.graphiql", PLAIN_TEXT),
        ];
        assert_eq!(expected.len(), EMBEDDED_ASSETS.len());

        for (name, content_type) in expected {
            let response = send(Method::GET, &format!("/graphql/assets/{name}")).await;

            assert_eq!(response.status(), StatusCode::OK, "{name}");
            assert_eq!(
                header_of(&response, header::CONTENT_TYPE),
                Some(content_type),
                "{name}"
            );
            assert_eq!(
                header_of(&response, header::CACHE_CONTROL),
                Some(ASSET_CACHE_CONTROL),
                "{name}"
            );
            assert_eq!(
                header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
                Some("nosniff"),
                "{name}"
            );
            let body = response.into_body().into_bytes().await.unwrap();
            assert!(!body.is_empty(), "{name} is empty");
        }
    }

    #[tokio::test]
    async fn bootstrap_uses_the_json_fetcher_against_our_endpoint() {
        let response = send(Method::GET, "/graphql/assets/playground.js").await;
        let script = response.into_body().into_string().await.unwrap();

        assert!(script.contains("GraphiQL.createFetcher({ url: '/graphql' })"));
        assert!(script.contains("policy {"));
    }

    #[tokio::test]
    async fn unknown_or_devious_asset_names_are_not_found() {
        for uri in [
            "/graphql/assets/",
            "/graphql/assets/index.html",
            "/graphql/assets/README.md",
            "/graphql/assets/graphiql.min.js.map",
            "/graphql/assets/GRAPHIQL.MIN.JS",
            "/graphql/assets/../playground.rs",
            "/graphql/assets/%2e%2e/Cargo.toml",
            "/graphql/assets/graphiql.min.js/extra",
        ] {
            let response = send(Method::GET, uri).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
        }
    }

    #[tokio::test]
    async fn assets_answer_get_only() {
        let response = send(Method::POST, "/graphql/assets/playground.js").await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
