//! The account console: a single-page app served at `/` and at every path
//! Custos puts in a mail, so each emailed link opens the matching view.
//!
//! The page is plain ES modules under `assets/console/`, compiled into the
//! binary and served from [`ASSETS_PATH`]; it talks only to `/graphql` on
//! the same origin with the session cookie. Why embedded and with no build
//! step: `cargo run` and `cargo test` need no Node, the console works
//! offline, and with nothing from another origin the page carries a strict
//! Content-Security-Policy (no inline script or style at all).
//!
//! With `CUSTOS_ACCOUNT_CONSOLE` off, the same paths answer a short static
//! page saying where to go, never a bare 404: a person holding a link from
//! a mail learns that the link was not used and who can help.

use poem::http::{StatusCode, header};
use poem::{Response, Route, get};

/// Where [`assets`] must be nested: `index.html` loads its files from here.
pub const ASSETS_PATH: &str = "/console";

/// Paths that open the console. The emailed ones come first; the rest are
/// the console's own views, so a reload or a bookmark lands on the same view.
pub const PAGE_PATHS: &[&str] = &[
    "/verify-email",
    "/reset-password",
    "/confirm-deletion",
    "/cancel-deletion",
    "/guardian-consent",
    "/privacy",
    "/settings/privacy",
    "/",
    "/signup",
    "/signin",
    "/forgot-password",
    "/my-data",
    "/profile",
    "/delete-account",
    "/support",
    "/announcements",
];

/// The Content-Security-Policy of the console: scripts, styles and images
/// from our origin only, requests only to our origin, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The policy of the page shown with the console off: no script at all.
const OFF_CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// Modules change with a release while their names stay: browsers must ask
// again each time (answers are small and come from the same origin).
const ASSET_CACHE_CONTROL: &str = "no-cache";

const INDEX_HTML: &str = include_str!("../../assets/console/index.html");
const OFF_HTML: &str = include_str!("../../assets/console/off.html");

/// One file compiled into the binary and served under [`ASSETS_PATH`].
struct EmbeddedAsset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

macro_rules! module {
    ($name:literal) => {
        EmbeddedAsset {
            name: $name,
            content_type: JAVASCRIPT,
            body: include_bytes!(concat!("../../assets/console/", $name)),
        }
    };
}

/// Every file the page loads.
const EMBEDDED_ASSETS: &[EmbeddedAsset] = &[
    EmbeddedAsset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/console/console.css"),
    },
    EmbeddedAsset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../assets/console/icon.svg"),
    },
    module!("main.js"),
    module!("api.js"),
    module!("documents.js"),
    module!("dom.js"),
    module!("forms.js"),
    module!("i18n.js"),
    module!("strings-en.js"),
    module!("strings-zh-CN.js"),
    module!("views/home.js"),
    module!("views/signup.js"),
    module!("views/signin.js"),
    module!("views/links.js"),
    module!("views/privacy.js"),
    module!("views/data.js"),
    module!("views/profile.js"),
    module!("views/deletion.js"),
    module!("views/support.js"),
    module!("views/announcements.js"),
];

/// The console's page, the same for every path in [`PAGE_PATHS`]: the
/// script picks the view from the address.
pub fn page() -> Response {
    html(INDEX_HTML, CONTENT_SECURITY_POLICY)
}

/// The page the console's paths answer while the console is off.
pub fn off_page() -> Response {
    html(OFF_HTML, OFF_CONTENT_SECURITY_POLICY)
}

fn html(body: &'static str, policy: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, policy)
        // The address may hold a token: never cache the page, never send it on.
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .body(body)
}

/// Adds the console's routes: every page path, and the assets when on.
pub fn mount(route: Route, enabled: bool) -> Route {
    let route = PAGE_PATHS.iter().fold(route, |route, path| {
        if enabled {
            route.at(*path, get(poem::endpoint::make_sync(|_| page())))
        } else {
            route.at(*path, get(poem::endpoint::make_sync(|_| off_page())))
        }
    });
    if enabled {
        route.nest(ASSETS_PATH, assets())
    } else {
        route
    }
}

/// The embedded console files, one route per file name; any other name is
/// a 404, and no path from a request reaches the file system.
fn assets() -> Route {
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

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        // A module imported but not listed would fail only in a browser.
        let names: Vec<&str> = EMBEDDED_ASSETS.iter().map(|a| a.name).collect();
        let mut checked = 0;
        for asset in EMBEDDED_ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = String::from_utf8_lossy(asset.body);
            for (_, rest) in text
                .match_indices(" from '")
                .map(|(at, _)| text.split_at(at + 7))
            {
                let Some((spec, _)) = rest.split_once('\'') else {
                    continue;
                };
                let base = asset.name.rsplit_once('/').map_or("", |(dir, _)| dir);
                let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
                for part in spec.split('/') {
                    match part {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        other => parts.push(other),
                    }
                }
                let resolved = parts.join("/");
                checked += 1;
                assert!(
                    names.contains(&resolved.as_str()),
                    "{} imports {spec}, which is not embedded",
                    asset.name
                );
            }
        }
        assert!(checked > 40, "only {checked} imports seen");
        assert!(INDEX_HTML.contains("/console/main.js"));
    }

    #[test]
    fn both_languages_have_every_string() {
        // Keys are the quoted names before `:` at the start of a line.
        let keys = |name: &str| -> std::collections::BTreeSet<String> {
            let asset = EMBEDDED_ASSETS.iter().find(|a| a.name == name);
            let text = asset.map_or(String::new(), |a| {
                String::from_utf8_lossy(a.body).into_owned()
            });
            text.lines()
                .filter_map(|line| {
                    let line = line.trim_start();
                    let (key, _) = line.split_once(": ")?;
                    Some(key.trim_matches('\'').to_owned())
                })
                .filter(|key| !key.starts_with("//") && !key.starts_with("data.key."))
                .collect()
        };
        let (en, zh) = (keys("strings-en.js"), keys("strings-zh-CN.js"));
        assert!(en.len() > 200, "only {} English strings read", en.len());
        assert_eq!(
            en.symmetric_difference(&zh).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "strings in one language only"
        );
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        for page in [INDEX_HTML, OFF_HTML] {
            assert!(!page.contains("<script>"), "inline script");
            assert!(!page.contains("<style"), "inline style");
            assert!(!page.contains("style="), "style attribute");
        }
    }
}
