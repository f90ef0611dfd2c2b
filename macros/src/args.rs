//! The attribute's arguments as written: typed values, each kept with its keyword so that a
//! later rule can point at the argument (thiserror `attr.rs`).
//!
//! Parsing goes on after a bad argument: the error is recorded and the parser skips to the next
//! top-level `,`, so every mistake in the list is reported at once.

use proc_macro2::{TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, ExprLit, Ident, Lit, LitBool, LitStr, Path, Token, token};

use crate::errors::Errors;

/// Every argument keyword, in the order the documentation gives them: the one list the
/// parser, its errors and the tests read.
pub(crate) const KEYWORDS: [&str; 14] = [
    "name",
    "prefix",
    "tags",
    "meta",
    "health",
    "interval",
    "timeout",
    "deregister_after",
    "ttl",
    "strip",
    "checks",
    "fail_fast",
    "grpc",
    "crate",
];

/// The keywords as an error lists them: `` `name`, `prefix`, ... ``.
fn keywords() -> String {
    KEYWORDS.map(|k| format!("`{k}`")).join(", ")
}

/// One argument: its keyword as written (errors about the argument point at it) and its value.
pub(crate) struct Arg<V> {
    pub(crate) keyword: Ident,
    pub(crate) value: V,
}

/// One `key = "value"` of `meta(..)`; a key written as an identifier becomes a string spanned
/// at the identifier.
pub(crate) struct MetaPair {
    pub(crate) key: LitStr,
    pub(crate) value: LitStr,
}

/// The arguments that parsed; an argument with a syntax error is left out (its error is
/// recorded).
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) name: Option<Arg<LitStr>>,
    pub(crate) prefix: Option<Arg<LitStr>>,
    pub(crate) tags: Option<Arg<Vec<LitStr>>>,
    pub(crate) meta: Option<Arg<Vec<MetaPair>>>,
    pub(crate) health: Option<Arg<LitStr>>,
    pub(crate) interval: Option<Arg<LitStr>>,
    pub(crate) timeout: Option<Arg<LitStr>>,
    pub(crate) deregister_after: Option<Arg<LitStr>>,
    pub(crate) ttl: Option<Arg<LitStr>>,
    pub(crate) strip: Option<Arg<LitBool>>,
    pub(crate) checks: Option<Arg<Vec<Path>>>,
    pub(crate) fail_fast: Option<Arg<LitBool>>,
    /// `grpc`, a flag: the function serves tonic services.
    pub(crate) grpc: Option<Ident>,
    pub(crate) krate: Option<Arg<Path>>,
    /// Every keyword written, including those whose value did not parse.
    pub(crate) given: Vec<String>,
}

impl Args {
    /// Whether the argument was written, whether or not its value parsed.
    pub(crate) fn given(&self, keyword: &str) -> bool {
        self.given.iter().any(|given| given == keyword)
    }
}

/// Parses the attribute's arguments, recording every error.
pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Args {
    let mut args = Args::default();
    let parser = |input: ParseStream<'_>| {
        comma_separated(input, errors, |input, errors| {
            argument(input, &mut args, errors)
        })
    };
    if let Err(error) = parser.parse2(tokens) {
        errors.push(error);
    }
    args
}

/// Runs `item` for each entry of a comma-separated list. A failed entry's error is recorded and
/// the rest of the entry skipped.
fn comma_separated(
    input: ParseStream<'_>,
    errors: &mut Errors,
    mut item: impl FnMut(ParseStream<'_>, &mut Errors) -> syn::Result<()>,
) -> syn::Result<()> {
    while !input.is_empty() {
        let parsed = item(input, errors).and_then(|()| {
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
            Ok(())
        });
        if let Err(error) = parsed {
            errors.push(error);
            skip_past_comma(input)?;
        }
    }
    Ok(())
}

fn skip_past_comma(input: ParseStream<'_>) -> syn::Result<()> {
    input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tree, next)) = rest.token_tree() {
            rest = next;
            if matches!(&tree, TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
        }
        Ok(((), rest))
    })
}

fn argument(input: ParseStream<'_>, args: &mut Args, errors: &mut Errors) -> syn::Result<()> {
    if !input.peek(Ident::peek_any) {
        return Err(input.error(format!("expected one of: {}", keywords())));
    }
    if let Ok(word) = input.fork().call(Ident::parse_any) {
        if !KEYWORDS.contains(&word.to_string().as_str()) {
            return Err(syn::Error::new(
                word.span(),
                format!("unknown argument `{word}`; expected one of {}", keywords()),
            ));
        }
    }

    let keyword = input.call(Ident::parse_any)?;
    let text = keyword.to_string();
    if args.given(&text) {
        return Err(syn::Error::new(
            keyword.span(),
            format!("`{keyword}` specified more than once"),
        ));
    }
    args.given.push(text.clone());

    let k = &keyword;
    match text.as_str() {
        "name" => args.name = arg(k, string(input, k, r#""cool_app""#)?),
        "prefix" => args.prefix = arg(k, string(input, k, r#""/oops""#)?),
        "health" => args.health = arg(k, string(input, k, r#""/health""#)?),
        "interval" => args.interval = arg(k, string(input, k, r#""10s""#)?),
        "timeout" => args.timeout = arg(k, string(input, k, r#""5s""#)?),
        "deregister_after" => args.deregister_after = arg(k, string(input, k, r#""1m""#)?),
        "ttl" => args.ttl = arg(k, string(input, k, r#""15s""#)?),
        "strip" => args.strip = arg(k, boolean(input, k)?),
        "fail_fast" => args.fail_fast = arg(k, boolean(input, k)?),
        "tags" => args.tags = arg(k, tags(input, k, errors)?),
        "checks" => args.checks = arg(k, checks(input, k, errors)?),
        "meta" => args.meta = arg(k, meta(input, k, errors)?),
        "crate" => args.krate = arg(k, crate_path(input, k)?),
        "grpc" => {
            if input.peek(Token![=]) {
                return Err(syn::Error::new(
                    k.span(),
                    "`grpc` is a flag and takes no value: write `grpc`",
                ));
            }
            args.grpc = Some(k.clone());
        }
        _ => unreachable!("KEYWORDS lists every keyword matched here"),
    }
    Ok(())
}

fn arg<V>(keyword: &Ident, value: V) -> Option<Arg<V>> {
    Some(Arg {
        keyword: keyword.clone(),
        value,
    })
}

/// The `=` after a keyword, with the argument's syntax as the fix when it is missing.
fn equals(input: ParseStream<'_>, keyword: &Ident, example: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        return Ok(());
    }
    Err(syn::Error::new(
        keyword.span(),
        format!("`{keyword}` takes a value: `{keyword} = {example}`"),
    ))
}

fn literal(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(ExprLit { attrs, lit }) if attrs.is_empty() => Some(lit),
        _ => None,
    }
}

/// `keyword = "text"`.
fn string(input: ParseStream<'_>, keyword: &Ident, example: &str) -> syn::Result<LitStr> {
    equals(input, keyword, example)?;
    let value: Expr = input.parse()?;
    match literal(&value) {
        Some(Lit::Str(text)) => Ok(text.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{keyword}` expects a string literal: `{keyword} = {example}`"),
        )),
    }
}

/// `keyword = true` or `keyword = false`.
fn boolean(input: ParseStream<'_>, keyword: &Ident) -> syn::Result<LitBool> {
    equals(input, keyword, "true")?;
    let value: Expr = input.parse()?;
    match literal(&value) {
        Some(Lit::Bool(flag)) => Ok(flag.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{keyword}` expects `true` or `false`: `{keyword} = true`"),
        )),
    }
}

/// `keyword = [a, b]`: the elements, or an error at the value when it is not in brackets.
fn array(input: ParseStream<'_>, keyword: &Ident, example: &str) -> syn::Result<Vec<Expr>> {
    equals(input, keyword, example)?;
    match input.parse::<Expr>()? {
        Expr::Array(array) if array.attrs.is_empty() => Ok(array.elems.into_iter().collect()),
        value => Err(syn::Error::new_spanned(
            value,
            format!("`{keyword}` expects a list in brackets: `{keyword} = {example}`"),
        )),
    }
}

/// `tags = ["a", "b"]`.
fn tags(input: ParseStream<'_>, keyword: &Ident, errors: &mut Errors) -> syn::Result<Vec<LitStr>> {
    const EXAMPLE: &str = r#"["primary", "v2"]"#;
    let mut tags = Vec::new();
    for element in array(input, keyword, EXAMPLE)? {
        match literal(&element) {
            Some(Lit::Str(tag)) => tags.push(tag.clone()),
            _ => errors.spanned(
                element,
                format!("a tag is a string literal: `tags = {EXAMPLE}`"),
            ),
        }
    }
    Ok(tags)
}

/// `checks = [path::to::async_fn, other]`.
fn checks(input: ParseStream<'_>, keyword: &Ident, errors: &mut Errors) -> syn::Result<Vec<Path>> {
    const EXAMPLE: &str = "[database_ready, queue::connected]";
    let mut checks = Vec::new();
    for element in array(input, keyword, EXAMPLE)? {
        match element {
            Expr::Path(path) if path.attrs.is_empty() && path.qself.is_none() => {
                checks.push(path.path);
            }
            other => errors.spanned(
                other,
                format!(
                    "`checks` lists health indicators by the path of their async fn, named after \
                     its last segment: `checks = {EXAMPLE}`"
                ),
            ),
        }
    }
    Ok(checks)
}

/// `meta(key = "value", "key-with-dash" = "value")`.
fn meta(
    input: ParseStream<'_>,
    keyword: &Ident,
    errors: &mut Errors,
) -> syn::Result<Vec<MetaPair>> {
    if !input.peek(token::Paren) {
        return Err(syn::Error::new(
            keyword.span(),
            r#"`meta` takes key-value pairs in parentheses: `meta(version = "1.2.0", "build-id" = "abc")`"#,
        ));
    }
    let content;
    syn::parenthesized!(content in input);
    let mut pairs = Vec::new();
    comma_separated(&content, errors, |input, _| {
        pairs.push(meta_pair(input)?);
        Ok(())
    })?;
    Ok(pairs)
}

fn meta_pair(input: ParseStream<'_>) -> syn::Result<MetaPair> {
    let key = if input.peek(LitStr) {
        input.parse::<LitStr>()?
    } else if input.peek(Ident::peek_any) {
        let ident = input.call(Ident::parse_any)?;
        LitStr::new(&ident.unraw().to_string(), ident.span())
    } else {
        return Err(input.error(
            r#"expected a meta key: `version = "1.2.0"`, or in quotes when it has a `-`: `"build-id" = "abc"`"#,
        ));
    };
    if !input.peek(Token![=]) {
        let hint = if input.peek(Token![-]) {
            format!(
                "; a key with `-` goes in quotes: `\"{}-...\" = \"...\"`",
                key.value()
            )
        } else {
            String::new()
        };
        return Err(input.error(format!(
            "expected `=` after the meta key `{}`{hint}",
            key.value()
        )));
    }
    input.parse::<Token![=]>()?;
    let value: Expr = input.parse()?;
    match literal(&value) {
        Some(Lit::Str(value)) => Ok(MetaPair {
            key,
            value: value.clone(),
        }),
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                "a meta value is a string literal: `{} = \"...\"`",
                key.value()
            ),
        )),
    }
}

/// `crate = "path::to::discoverable"`.
fn crate_path(input: ParseStream<'_>, keyword: &Ident) -> syn::Result<Path> {
    let text = string(input, keyword, r#""::discoverable""#)?;
    text.parse::<Path>().map_err(|_| {
        syn::Error::new(
            text.span(),
            format!(
                "`{}` is not a path; `crate` names the discoverable crate, e.g. `crate = \"::discoverable\"`",
                text.value()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn parse_ok(tokens: TokenStream) -> Args {
        let mut errors = Errors::default();
        let args = parse(tokens, &mut errors);
        assert!(errors.is_empty(), "{:?}", errors.messages());
        args
    }

    fn messages(tokens: TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        parse(tokens, &mut errors);
        errors.messages()
    }

    #[test]
    fn every_argument() {
        let args = parse_ok(quote! {
            name = "cool_app", prefix = "/oops", tags = ["a", "b"],
            meta(version = "1", "build-id" = "x", r#type = "web"),
            health = "/up", interval = "10s", timeout = "5s", deregister_after = "1m",
            strip = true, checks = [db::ready, cache], fail_fast = false, crate = "::other",
        });
        assert_eq!(args.name.unwrap().value.value(), "cool_app");
        assert_eq!(args.prefix.unwrap().value.value(), "/oops");
        let tags: Vec<_> = args.tags.unwrap().value.iter().map(LitStr::value).collect();
        assert_eq!(tags, ["a", "b"]);
        let meta: Vec<_> = args
            .meta
            .unwrap()
            .value
            .iter()
            .map(|pair| (pair.key.value(), pair.value.value()))
            .collect();
        assert_eq!(
            meta,
            [
                ("version".into(), "1".into()),
                ("build-id".into(), "x".into()),
                ("type".into(), "web".into())
            ]
        );
        assert_eq!(args.health.unwrap().value.value(), "/up");
        assert_eq!(args.interval.unwrap().value.value(), "10s");
        assert_eq!(args.timeout.unwrap().keyword, "timeout");
        assert_eq!(args.deregister_after.unwrap().value.value(), "1m");
        assert!(args.strip.unwrap().value.value);
        assert_eq!(args.checks.unwrap().value.len(), 2);
        assert!(!args.fail_fast.unwrap().value.value);
        let krate = args.krate.unwrap().value;
        assert_eq!(quote!(#krate).to_string(), ":: other");
    }

    #[test]
    fn empty() {
        assert!(parse_ok(TokenStream::new()).name.is_none());
    }

    #[test]
    fn duplicate() {
        assert_eq!(
            messages(quote!(name = "a", timeout = "1s", timeout = "2s")),
            ["`timeout` specified more than once"]
        );
    }

    #[test]
    fn unknown() {
        let messages = messages(quote!(name = "a", port = 80));
        assert_eq!(messages.len(), 1);
        assert!(
            messages[0].starts_with("unknown argument `port`; expected one of `name`, `prefix`,"),
            "{}",
            messages[0]
        );
        assert!(messages[0].ends_with("`fail_fast`, `grpc`, `crate`"));
    }

    #[test]
    fn not_an_identifier() {
        let messages = messages(quote!("name" = "a"));
        assert_eq!(messages.len(), 1);
        assert!(
            messages[0].starts_with("expected one of: `name`"),
            "{messages:?}"
        );
    }

    #[test]
    fn wrong_types() {
        assert_eq!(
            messages(quote!(
                name = 5,
                strip = "yes",
                tags = "a",
                checks = ["x"],
                meta = 1
            )),
            [
                r#"`name` expects a string literal: `name = "cool_app"`"#,
                "`strip` expects `true` or `false`: `strip = true`",
                r#"`tags` expects a list in brackets: `tags = ["primary", "v2"]`"#,
                "`checks` lists health indicators by the path of their async fn, named after its \
                 last segment: `checks = [database_ready, queue::connected]`",
                r#"`meta` takes key-value pairs in parentheses: `meta(version = "1.2.0", "build-id" = "abc")`"#,
            ]
        );
    }

    #[test]
    fn missing_value() {
        assert_eq!(
            messages(quote!(name = "a", strip)),
            ["`strip` takes a value: `strip = true`"]
        );
    }

    #[test]
    fn keeps_going_after_an_error() {
        let mut errors = Errors::default();
        let args = parse(
            quote!(name = 1 + 2, tags = ["a", 3, "b"], prefix = "/p"),
            &mut errors,
        );
        assert_eq!(errors.messages().len(), 2);
        assert!(args.name.is_none());
        assert_eq!(args.tags.unwrap().value.len(), 2);
        assert_eq!(args.prefix.unwrap().value.value(), "/p");
    }

    #[test]
    fn meta_errors() {
        assert_eq!(
            messages(quote!(meta(build - id = "x", ok = "y", n = 1))),
            [
                r#"expected `=` after the meta key `build`; a key with `-` goes in quotes: `"build-..." = "..."`"#,
                r#"a meta value is a string literal: `n = "..."`"#,
            ]
        );
    }

    #[test]
    fn missing_comma() {
        assert_eq!(messages(quote!(name = "a" prefix = "/p")), ["expected `,`"]);
    }

    #[test]
    fn bad_crate_path() {
        assert_eq!(
            messages(quote!(crate = "not a path")),
            [
                "`not a path` is not a path; `crate` names the discoverable crate, e.g. `crate = \"::discoverable\"`"
            ]
        );
    }
}
