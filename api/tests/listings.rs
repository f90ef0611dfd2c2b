//! The committed listings `api/<crate>.txt` are the public API the sources define: a change to
//! a public item fails here until its listing is regenerated, so the change shows in review.

use discoverable_public_api::{CRATES, REGENERATE, diff, listing, listing_path, workspace_root};

#[test]
fn the_committed_listings_are_the_public_api_of_the_sources() {
    let root = workspace_root();
    let mut stale = Vec::new();
    for (package, dir) in CRATES {
        let now = listing(package, &root.join(dir)).unwrap_or_else(|e| panic!("{package}: {e}"));
        let path = listing_path(package);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != now {
            stale.push(format!(
                "{} is stale:\n{}",
                path.display(),
                diff(&committed, &now)
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "{}\nThe public API changed; if that is intended, run `{REGENERATE}` and commit the listings.",
        stale.join("\n")
    );
}

#[test]
fn the_listing_follows_re_exports_and_leaves_out_what_is_not_public() {
    let dir = std::env::temp_dir().join(format!("discoverable-api-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("outer")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        r#"
        mod outer;
        pub mod open;
        pub use outer::{Thing, make as build};
        #[doc(hidden)]
        pub mod hidden { pub fn secret() {} }
        #[cfg(test)]
        pub fn only_in_tests() {}
        "#,
    )
    .unwrap();
    std::fs::write(
        src.join("outer/mod.rs"),
        r#"
        use std::time::Duration;
        mod inner;
        pub use inner::Thing;
        pub fn make(wait: Duration) -> Thing { Thing::default() }
        pub(crate) fn internal() {}
        "#,
    )
    .unwrap();
    std::fs::write(
        src.join("outer/inner.rs"),
        r#"
        use std::fmt;
        #[derive(Default, Debug)]
        #[non_exhaustive]
        pub struct Thing { pub count: u8, kept: bool }
        impl Thing {
            pub fn new<'a>(name: &'a str, mut n: Option<Vec<u8>>) -> Self { todo!() }
            fn private(&self) {}
        }
        impl fmt::Display for Thing {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { Ok(()) }
        }
        "#,
    )
    .unwrap();
    std::fs::write(
        src.join("open.rs"),
        "pub const LIMIT: std::time::Duration = std::time::Duration::from_secs(5 * 60);\n",
    )
    .unwrap();
    let text = listing("demo", &dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "#[derive(Debug, Default)] #[non_exhaustive] pub struct demo::Thing { /* private fields */ }",
            "pub demo::Thing::count: u8",
            "pub fn demo::Thing::new<'a>(name: &'a str, n: Option<Vec<u8>>) -> Self",
            "impl std::fmt::Display for demo::Thing",
            "pub fn demo::build(wait: std::time::Duration) -> demo::Thing",
            "pub mod demo::open",
            "pub const demo::open::LIMIT: std::time::Duration = std::time::Duration::from_secs(5 * 60)",
        ],
        "{text}"
    );
}
