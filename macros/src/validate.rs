//! The rules of `discoverable_rules`, applied to the parsed arguments by the one walk the
//! builder also uses. Each broken rule becomes an error at the offending token; all of them
//! are collected.

use std::time::Duration;

use discoverable_rules::{self as rules, Description, Field, Given, Place, Timed};
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{LitBool, LitStr, Path};

use crate::args::{Arg, Args, MetaPair};
use crate::errors::Errors;

/// The service as the expansion describes it. A value that broke a rule is left out, except the
/// name, which the builder needs (the errors stop the build anyway).
pub(crate) struct Service {
    pub(crate) krate: Path,
    pub(crate) name: LitStr,
    pub(crate) prefix: Option<Arg<LitStr>>,
    pub(crate) strip: Option<Arg<LitBool>>,
    pub(crate) tags: Vec<LitStr>,
    pub(crate) meta: Vec<MetaPair>,
    pub(crate) health: Option<Arg<LitStr>>,
    pub(crate) interval: Option<Arg<Duration>>,
    pub(crate) timeout: Option<Arg<Duration>>,
    pub(crate) deregister_after: Option<Arg<Duration>>,
    pub(crate) ttl: Option<Arg<Duration>>,
    pub(crate) checks: Vec<Check>,
    pub(crate) fail_fast: Option<Arg<LitBool>>,
    /// Serves tonic services (`grpc`): serve calls go to the gRPC entry.
    pub(crate) grpc: bool,
}

/// A health indicator: `.check(name, path)`.
pub(crate) struct Check {
    pub(crate) name: LitStr,
    pub(crate) path: Path,
}

/// Checks the arguments against the rules, recording every broken one.
pub(crate) fn validate(args: Args, errors: &mut Errors) -> Service {
    if args.name.is_none() && !args.given("name") {
        errors.push(syn::Error::new(
            Span::call_site(),
            r#"missing `name`: the service needs the name clients find it by, e.g. `#[discoverable(name = "cool_app")]`"#,
        ));
    }

    // What was written, as text the walk can borrow.
    let text = |arg: &Option<Arg<LitStr>>| arg.as_ref().map(|arg| arg.value.value());
    let [
        name,
        prefix,
        health,
        interval,
        timeout,
        deregister_after,
        ttl,
    ] = [
        &args.name,
        &args.prefix,
        &args.health,
        &args.interval,
        &args.timeout,
        &args.deregister_after,
        &args.ttl,
    ]
    .map(text);
    let tags: Vec<String> = args.tags.as_ref().map_or_else(Vec::new, |arg| {
        arg.value.iter().map(LitStr::value).collect()
    });
    let meta: Vec<(String, String)> = args.meta.as_ref().map_or_else(Vec::new, |arg| {
        arg.value
            .iter()
            .map(|pair| (pair.key.value(), pair.value.value()))
            .collect()
    });
    let checks = args
        .checks
        .as_ref()
        .map_or_else(Vec::new, |arg| indicators(&arg.value));
    let check_names: Vec<String> = checks.iter().map(|check| check.name.value()).collect();

    // An argument written with a value that did not parse is not missing: its syntax error is
    // reported already.
    fn given<'a>(value: &'a Option<String>, args: &Args, field: Field) -> Given<&'a str> {
        match value {
            Some(value) => Given::Value(value.as_str()),
            None if args.given(field.as_str()) => Given::Unreadable,
            None => Given::Absent,
        }
    }
    fn timed<'a>(value: &'a Option<String>, args: &Args, field: Field) -> Given<Timed<'a>> {
        match given(value, args, field) {
            Given::Value(text) => Given::Value(Timed::Text(text)),
            Given::Unreadable => Given::Unreadable,
            Given::Absent => Given::Absent,
        }
    }
    let description = Description {
        name: given(&name, &args, Field::Name),
        prefix: given(&prefix, &args, Field::Prefix),
        strip: args.strip.as_ref().map(|arg| arg.value.value).into(),
        tags: tags.iter().map(String::as_str).collect(),
        meta: meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        health: given(&health, &args, Field::Health),
        interval: timed(&interval, &args, Field::Interval),
        timeout: timed(&timeout, &args, Field::Timeout),
        deregister_after: timed(&deregister_after, &args, Field::DeregisterAfter),
        ttl: timed(&ttl, &args, Field::Ttl),
        checks: check_names.iter().map(String::as_str).collect(),
        grpc: args.grpc.is_some(),
    };
    let mut broken = Vec::new();
    let read = rules::check_service(&description, |place, error| {
        errors.spanned(tokens(&args, &checks, place), error);
        broken.push(place);
    });
    let holds = |place| !broken.contains(&place);

    let duration = |arg: Option<Arg<LitStr>>, value: Option<Duration>| {
        Some(Arg {
            keyword: arg?.keyword,
            value: value?,
        })
    };
    Service {
        krate: args
            .krate
            .map_or_else(|| syn::parse_quote!(::discoverable), |arg| arg.value),
        name: args
            .name
            .map_or_else(|| LitStr::new("", Span::call_site()), |arg| arg.value),
        prefix: args.prefix.filter(|_| holds(Place::Value(Field::Prefix))),
        strip: args.strip,
        tags: enumerated(args.tags.map(|arg| arg.value), |i| holds(Place::Tag(i))),
        meta: enumerated(args.meta.map(|arg| arg.value), |i| {
            holds(Place::MetaKey(i)) && holds(Place::MetaValue(i))
        }),
        health: args
            .health
            .filter(|_| holds(Place::Keyword(Field::Health)) && holds(Place::Value(Field::Health))),
        interval: duration(args.interval, read.interval),
        timeout: duration(args.timeout, read.timeout),
        deregister_after: duration(args.deregister_after, read.deregister_after),
        ttl: duration(args.ttl, read.ttl),
        checks: enumerated(Some(checks), |i| holds(Place::Check(i))),
        fail_fast: args.fail_fast,
        grpc: args.grpc.is_some(),
    }
}

/// The items whose index `keep` accepts.
fn enumerated<T>(items: Option<Vec<T>>, keep: impl Fn(usize) -> bool) -> Vec<T> {
    items
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, item)| item)
        .collect()
}

/// The tokens a broken rule's error points at.
fn tokens(args: &Args, checks: &[Check], place: Place) -> TokenStream {
    let keyword_and_value = |field| -> Option<(TokenStream, TokenStream)> {
        fn lit(arg: &Option<Arg<LitStr>>) -> Option<(TokenStream, TokenStream)> {
            let arg = arg.as_ref()?;
            Some((arg.keyword.to_token_stream(), arg.value.to_token_stream()))
        }
        match field {
            Field::Name => lit(&args.name),
            Field::Prefix => lit(&args.prefix),
            Field::Health => lit(&args.health),
            Field::Interval => lit(&args.interval),
            Field::Timeout => lit(&args.timeout),
            Field::DeregisterAfter => lit(&args.deregister_after),
            Field::Ttl => lit(&args.ttl),
            Field::Strip => args
                .strip
                .as_ref()
                .map(|arg| (arg.keyword.to_token_stream(), arg.value.to_token_stream())),
            Field::Meta => args
                .meta
                .as_ref()
                .map(|arg| (arg.keyword.to_token_stream(), TokenStream::new())),
            Field::Tags => args
                .tags
                .as_ref()
                .map(|arg| (arg.keyword.to_token_stream(), TokenStream::new())),
            _ => args
                .checks
                .as_ref()
                .map(|arg| (arg.keyword.to_token_stream(), TokenStream::new())),
        }
    };
    let meta = |i: usize| args.meta.as_ref().and_then(|arg| arg.value.get(i));
    let tokens = match place {
        Place::Keyword(field) => keyword_and_value(field).map(|(k, _)| k),
        Place::Value(field) => keyword_and_value(field).map(|(_, v)| v),
        Place::Tag(i) => args
            .tags
            .as_ref()
            .and_then(|arg| arg.value.get(i))
            .map(ToTokens::to_token_stream),
        Place::MetaKey(i) => meta(i).map(|pair| pair.key.to_token_stream()),
        Place::MetaValue(i) => meta(i).map(|pair| pair.value.to_token_stream()),
        Place::Check(i) => checks.get(i).map(|check| check.path.to_token_stream()),
    };
    // A place the arguments lack cannot come from the walk; the whole attribute is the
    // fallback.
    tokens.unwrap_or_default()
}

/// Health indicators, each named after the last segment of its path.
fn indicators(paths: &[Path]) -> Vec<Check> {
    paths
        .iter()
        .filter_map(|path| {
            let last = &path.segments.last()?.ident;
            let name = LitStr::new(&last.unraw().to_string(), last.span());
            Some(Check {
                name,
                path: path.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::*;
    use crate::args;

    fn run(tokens: TokenStream) -> (Service, Vec<String>) {
        let mut errors = Errors::default();
        let args = args::parse(tokens, &mut errors);
        let service = validate(args, &mut errors);
        (service, errors.messages())
    }

    fn messages(tokens: TokenStream) -> Vec<String> {
        run(tokens).1
    }

    #[test]
    fn grpc_excludes_the_http_route_strip_and_ttl() {
        let (service, errors) = run(quote!(
            name = "greeter",
            grpc,
            prefix = "/g",
            interval = "20s"
        ));
        assert!(errors.is_empty() && service.grpc, "{errors:?}");
        let errors = messages(quote!(
            name = "greeter",
            grpc,
            health = "/h",
            prefix = "/g",
            strip = true,
            ttl = "10s"
        ));
        assert_eq!(
            errors,
            [
                "`health`: `health` sets the HTTP health route's path, but with `grpc` Consul \
                 calls the gRPC health service (`grpc.health.v1.Health/Check`); remove `health`",
                "`strip`: `strip` is Fabio's option for HTTP routes; a gRPC service is routed by \
                 its full name (`urlprefix-/<package.Service> proto=grpc`); remove `strip`",
                "`ttl`: `ttl` replaces Consul's check of the instance, but with `grpc` Consul \
                 calls its gRPC health service; remove `ttl`",
            ]
        );
        assert_eq!(
            messages(quote!(name = "greeter", grpc = true)),
            ["`grpc` is a flag and takes no value: write `grpc`"]
        );
    }

    #[test]
    fn valid() {
        let (service, errors) = run(quote! {
            name = "cool_app", prefix = "/oops", strip = true, tags = ["a"],
            meta(version = "1"), interval = "2s", timeout = "500ms",
            deregister_after = "90s", checks = [db::ready],
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(service.timeout.unwrap().value, Duration::from_millis(500));
        assert_eq!(service.checks[0].name.value(), "ready");
    }

    #[test]
    fn name() {
        assert_eq!(
            messages(quote!(prefix = "/p")),
            [
                r#"missing `name`: the service needs the name clients find it by, e.g. `#[discoverable(name = "cool_app")]`"#
            ]
        );
        assert!(messages(quote!(name = ""))[0].starts_with("`name`: the service name is empty"));
        // A name that does not parse is not also missing.
        assert_eq!(messages(quote!(name = 5)).len(), 1);
        assert!(messages(quote!(name = "a b"))[0].contains("' '"));
    }

    #[test]
    fn rule_errors_are_all_reported() {
        let errors = messages(quote! {
            name = "a.b", prefix = "oops", tags = [""], health = "up",
            meta(ok = "1", ok = "2", "consul-x" = "3"), interval = "ten",
        });
        let starts = [
            "`name`",
            "`prefix`",
            "`tags`",
            "the meta key `ok`",
            "`meta`",
            "`health`",
        ];
        assert_eq!(errors.len(), 7, "{errors:#?}");
        for (error, start) in errors.iter().zip(starts) {
            assert!(error.starts_with(start), "{error}");
        }
        assert!(errors[6].starts_with("`interval`: `ten` is not a duration"));
    }

    #[test]
    fn duplicate_meta_key() {
        assert_eq!(
            messages(quote!(name = "a", meta(k = "1", "k" = "2"))),
            ["the meta key `k` is given more than once; keep one"]
        );
    }

    #[test]
    fn too_many_meta_pairs() {
        let pairs = (0..65).map(|i| {
            let key = syn::Ident::new(&format!("k{i}"), Span::call_site());
            quote!(#key = "v")
        });
        assert_eq!(
            messages(quote!(name = "a", meta(#(#pairs),*))),
            ["`meta`: 65 meta pairs given; Consul accepts at most 64"]
        );
    }

    #[test]
    fn timing() {
        assert_eq!(
            messages(quote!(name = "a", interval = "5s", timeout = "5s")),
            [
                "`timeout`: the timeout (5s) must be shorter than the interval (5s), or checks overlap"
            ]
        );
        assert_eq!(
            messages(quote!(name = "a", interval = "3s")),
            [
                "`timeout`: the timeout (5s) must be shorter than the interval (3s), or checks overlap; `timeout` defaults to 5s, so give a shorter one"
            ]
        );
        assert_eq!(
            messages(quote!(name = "a", timeout = "30s")),
            [
                "`timeout`: the timeout (30s) must be shorter than the interval (10s), or checks overlap; `interval` defaults to 10s"
            ]
        );
        assert_eq!(
            messages(quote!(
                name = "a",
                interval = "5s",
                timeout = "6s",
                deregister_after = "30s"
            ))
            .len(),
            2
        );
        assert!(
            messages(quote!(name = "a", deregister_after = "30s"))[0]
                .starts_with("`deregister_after`: 30s is below Consul's minimum")
        );
        assert!(messages(quote!(name = "a", ttl = "0s"))[0].contains("zero"));
        // A duration that does not parse is reported alone, not compared with defaults.
        assert_eq!(
            messages(quote!(name = "a", interval = "x", timeout = "20s")).len(),
            1
        );
        // Go's units only, as Consul reads durations; Go's longest is about 292 years.
        assert!(messages(quote!(name = "a", ttl = "1000000y"))[0].contains("is not a duration"));
        assert!(
            messages(quote!(name = "a", ttl = "9999999999h"))[0]
                .contains("longer than the longest duration Consul reads")
        );
    }

    #[test]
    fn ttl_excludes_the_http_check() {
        let errors = messages(quote!(
            name = "a",
            ttl = "15s",
            health = "/h",
            interval = "1s",
            timeout = "9s"
        ));
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert_eq!(
            errors[0],
            "`health`: `health` configures the HTTP check, but `ttl` selects a TTL check instead; remove one of them"
        );
    }

    #[test]
    fn strip_needs_prefix() {
        assert_eq!(messages(quote!(name = "a", strip = true)).len(), 1);
        assert_eq!(
            messages(quote!(name = "a", prefix = 1, strip = true)).len(),
            1
        );
        assert!(messages(quote!(name = "a", strip = false)).is_empty());
    }

    #[test]
    fn checks_named_alike() {
        assert_eq!(
            messages(quote!(name = "a", checks = [a::ready, b::ready])),
            [
                "a check named `ready` is already listed; checks are named after the last segment of their path, so give each function a different name"
            ]
        );
    }
}
