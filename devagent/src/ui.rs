//! The agent's own page, `GET /ui/`: its services, their instances and checks, and the KV keys,
//! kept up to date by the page's blocking queries against this agent's API.
//!
//! The page is three static files compiled into the crate, served as they are: no build step,
//! nothing fetched from anywhere but the agent. They hold no data, so they are served without a
//! token whether ACLs are on or not; the page asks the API for the data, with the token the user
//! gives it. `GET /ui` redirects to `/ui/`; a file the page does not have answers `404`.
//!
//! Every file goes out with a Content-Security-Policy that lets the page load scripts, styles,
//! images and API answers from the agent only, and no inline script or style.

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;

/// Where the page lives.
pub(crate) const PATH: &str = "/ui/";

/// The policy every file of the page is served with.
const CSP: &str = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page's files: name under [`PATH`], content type, content.
const FILES: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("../ui/index.html"),
    ),
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../ui/style.css"),
    ),
    ("icon.svg", "image/svg+xml", include_str!("../ui/icon.svg")),
];

/// The answer to `path` if it is the page's (`/ui` or under `/ui/`), else `None`.
pub(crate) fn serve(method: &Method, path: &str) -> Option<Response> {
    let name = if path == "/ui" {
        None
    } else {
        Some(path.strip_prefix(PATH)?)
    };
    if method != Method::GET && method != Method::HEAD {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(resp);
    }
    let Some(name) = name else {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
        resp.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static(PATH));
        return Some(resp);
    };
    let Some((_, content_type, content)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return Some(plain(StatusCode::NOT_FOUND, "404 page not found\n"));
    };
    let mut resp = Response::new(Body::from(*content));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change with the agent's version: a browser asks again rather than keep an old one.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(resp)
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(method: Method, path: &str) -> Option<(u16, Option<String>)> {
        serve(&method, path).map(|r| {
            let ct = r
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), ct)
        })
    }

    #[test]
    fn only_the_page_paths_are_the_pages() {
        assert!(answer(Method::GET, "/").is_none());
        assert!(answer(Method::GET, "/uix").is_none());
        assert!(answer(Method::GET, "/v1/ui/").is_none());
        assert_eq!(answer(Method::GET, "/ui"), Some((301, None)));
        assert_eq!(answer(Method::GET, "/ui/nope.js").unwrap().0, 404);
        assert_eq!(answer(Method::GET, "/ui/app.js/").unwrap().0, 404);
        assert_eq!(answer(Method::PUT, "/ui/").unwrap().0, 405);
        assert_eq!(answer(Method::HEAD, "/ui/style.css").unwrap().0, 200);
    }

    #[test]
    fn the_page_refers_only_to_its_own_files() {
        let html = include_str!("../ui/index.html");
        for (name, _, _) in FILES.iter().filter(|(n, _, _)| n.contains('.')) {
            if *name != "index.html" {
                assert!(html.contains(&format!("\"{name}\"")), "{name}");
            }
        }
        for file in [
            html,
            include_str!("../ui/app.js"),
            include_str!("../ui/style.css"),
        ] {
            assert!(!file.contains("http://") && !file.contains("https://"));
            assert!(!file.contains("//cdn") && !file.contains("@import"));
        }
        assert!(!html.contains("<script>") && !html.contains("style="));
    }

    #[test]
    fn the_script_declares_each_function_once() {
        // A later declaration silently replaces an earlier one of the same name.
        let mut names: Vec<&str> = include_str!("../ui/app.js")
            .lines()
            .filter_map(|l| {
                let l = l.strip_prefix("async ").unwrap_or(l);
                l.strip_prefix("function ")?.split('(').next()
            })
            .collect();
        let declared = names.len();
        names.sort_unstable();
        names.dedup();
        assert!(declared > 10);
        assert_eq!(names.len(), declared, "{names:?}");
    }
}
