//! The rules of `discoverable_rules`, applied to the parsed arguments. Each broken rule becomes
//! an error at the offending token; all of them are collected.

use std::time::Duration;

use discoverable_rules::{self as rules, CheckTiming, Field, RuleError};
use proc_macro2::Span;
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
    pub(crate) interval: Option<Arg<Timed>>,
    pub(crate) timeout: Option<Arg<Timed>>,
    pub(crate) deregister_after: Option<Arg<Timed>>,
    pub(crate) ttl: Option<Arg<Timed>>,
    pub(crate) checks: Vec<Check>,
    pub(crate) fail_fast: Option<Arg<LitBool>>,
    /// Serves tonic services (`grpc`): serve calls go to the gRPC entry.
    pub(crate) grpc: bool,
}

/// A duration argument: the literal as written (errors point at it) and its value.
pub(crate) struct Timed {
    pub(crate) literal: LitStr,
    pub(crate) duration: Duration,
}

/// A health indicator: `.check(name, path)`.
pub(crate) struct Check {
    pub(crate) name: LitStr,
    pub(crate) path: Path,
}

/// Checks the arguments against the rules, recording every broken one.
pub(crate) fn validate(args: Args, errors: &mut Errors) -> Service {
    // An argument written with a value that did not parse is not missing: its syntax error is
    // reported already.
    let (name_given, prefix_given) = (args.given("name"), args.given("prefix"));
    let krate = args
        .krate
        .map_or_else(|| syn::parse_quote!(::discoverable), |arg| arg.value);

    let name = match args.name {
        Some(arg) => {
            check(errors, &arg.value, rules::check_name(&arg.value.value()));
            arg.value
        }
        None if name_given => LitStr::new("", Span::call_site()),
        None => {
            errors.push(syn::Error::new(
                Span::call_site(),
                r#"missing `name`: the service needs the name clients find it by, e.g. `#[discoverable(name = "cool_app")]`"#,
            ));
            LitStr::new("", Span::call_site())
        }
    };

    if let Some(strip) = &args.strip {
        if let Err(e) = rules::check_strip(strip.value.value, prefix_given) {
            errors.spanned(&strip.keyword, e.message());
        }
    }
    let prefix = args
        .prefix
        .filter(|arg| check(errors, &arg.value, rules::check_prefix(&arg.value.value())));

    let tags = args.tags.map_or_else(Vec::new, |arg| arg.value);
    let tags = tags
        .into_iter()
        .filter(|tag| check(errors, tag, rules::check_tag(&tag.value())))
        .collect();

    let meta = args.meta.map_or_else(Vec::new, |arg| meta(arg, errors));

    // `grpc` has Consul call the gRPC health service: no HTTP health path, no `strip`, no TTL.
    let grpc = args.grpc.is_some();
    let grpc_only = |keyword: Option<&syn::Ident>, field: Field, errors: &mut Errors| {
        keyword.is_none_or(|k| check(errors, k, rules::check_grpc_exclusive(grpc, field)))
    };
    let grpc_ok = grpc_only(
        args.health.as_ref().map(|a| &a.keyword),
        Field::Health,
        errors,
    ) & grpc_only(
        args.strip.as_ref().map(|a| &a.keyword),
        Field::Strip,
        errors,
    ) & grpc_only(args.ttl.as_ref().map(|a| &a.keyword), Field::Ttl, errors);

    // `ttl` replaces the HTTP check; the arguments of the HTTP check then make no sense.
    let ttl_set = args.ttl.is_some() && grpc_ok;
    let conflict =
        ttl_set && (args.health.is_some() || args.interval.is_some() || args.timeout.is_some());
    let http_only = |arg: Option<Arg<LitStr>>, field: Field, errors: &mut Errors| {
        arg.filter(|arg| {
            check(
                errors,
                &arg.keyword,
                rules::check_ttl_exclusive(ttl_set, field),
            )
        })
    };
    let health = http_only(args.health, Field::Health, errors).filter(|arg| {
        check(
            errors,
            &arg.value,
            rules::check_health_path(&arg.value.value()),
        )
    });
    let interval = http_only(args.interval, Field::Interval, errors);
    let timeout = http_only(args.timeout, Field::Timeout, errors);

    let mut parsed_all = true;
    let mut duration = |arg: Option<Arg<LitStr>>, errors: &mut Errors| {
        let arg = arg?;
        let parsed = duration(&arg, errors);
        parsed_all &= parsed.is_some();
        parsed.map(|duration| Arg {
            keyword: arg.keyword,
            value: Timed {
                literal: arg.value,
                duration,
            },
        })
    };
    let interval = duration(interval, errors);
    let timeout = duration(timeout, errors);
    let deregister_after = duration(args.deregister_after, errors);
    let ttl = duration(args.ttl, errors);
    if parsed_all && !conflict {
        timing(&interval, &timeout, &deregister_after, &ttl, errors);
    }

    let checks = args
        .checks
        .map_or_else(Vec::new, |arg| checks(arg.value, errors));

    Service {
        krate,
        name,
        prefix,
        strip: args.strip,
        tags,
        meta,
        health,
        interval,
        timeout,
        deregister_after,
        ttl,
        checks,
        fail_fast: args.fail_fast,
        grpc,
    }
}

/// Records a broken rule at `tokens`; true when the rule holds.
fn check(errors: &mut Errors, tokens: impl ToTokens, result: Result<(), RuleError>) -> bool {
    match result {
        Ok(()) => true,
        Err(error) => {
            errors.spanned(tokens, error);
            false
        }
    }
}

fn meta(arg: Arg<Vec<MetaPair>>, errors: &mut Errors) -> Vec<MetaPair> {
    check(errors, &arg.keyword, rules::check_meta_len(arg.value.len()));
    let mut keys: Vec<String> = Vec::new();
    arg.value
        .into_iter()
        .filter(|pair| {
            let key = pair.key.value();
            if let Err(e) = rules::check_meta_key_unique(&key, keys.iter().map(String::as_str)) {
                errors.spanned(&pair.key, e.message());
                return false;
            }
            keys.push(key.clone());
            check(errors, &pair.key, rules::check_meta_key(&key))
                & check(
                    errors,
                    &pair.value,
                    rules::check_meta_value(&key, &pair.value.value()),
                )
        })
        .collect()
}

/// A duration argument, parsed now so the expansion holds a number.
fn duration(arg: &Arg<LitStr>, errors: &mut Errors) -> Option<Duration> {
    let field = arg.keyword.to_string();
    let Some(kind) = rules::Field::from_name(&field) else {
        errors.spanned(
            &arg.keyword,
            format!("`{field}` is not a duration argument"),
        );
        return None;
    };
    let parsed = rules::parse_duration(kind, &arg.value.value());
    parsed
        .map_err(|error| errors.spanned(&arg.value, error))
        .ok()
}

/// The timing rules, with the defaults standing in for what is not given.
fn timing(
    interval: &Option<Arg<Timed>>,
    timeout: &Option<Arg<Timed>>,
    deregister_after: &Option<Arg<Timed>>,
    ttl: &Option<Arg<Timed>>,
    errors: &mut Errors,
) {
    let value =
        |arg: &Option<Arg<Timed>>, default| arg.as_ref().map_or(default, |a| a.value.duration);
    let default_http = CheckTiming::Http {
        interval: rules::DEFAULT_INTERVAL,
        timeout: rules::DEFAULT_TIMEOUT,
    };
    let timing = match ttl {
        Some(ttl) => CheckTiming::Ttl {
            ttl: ttl.value.duration,
        },
        None => CheckTiming::Http {
            interval: value(interval, rules::DEFAULT_INTERVAL),
            timeout: value(timeout, rules::DEFAULT_TIMEOUT),
        },
    };
    // `check_timing` stops at its first broken rule; checking the check's timing and
    // `deregister_after` separately (each beside valid defaults) reports both.
    if let Err(error) = rules::check_timing(timing, rules::DEFAULT_DEREGISTER_AFTER) {
        let (at, note) = match (error.field(), interval, timeout) {
            (Field::Timeout, _, Some(timeout)) if interval.is_none() => (
                timeout,
                format!(
                    "; `interval` defaults to {}",
                    rules::go_duration(rules::DEFAULT_INTERVAL)
                ),
            ),
            (Field::Timeout, Some(interval), None) => (
                interval,
                format!(
                    "; `timeout` defaults to {}, so give a shorter one",
                    rules::go_duration(rules::DEFAULT_TIMEOUT)
                ),
            ),
            (Field::Timeout, _, Some(timeout)) => (timeout, String::new()),
            (Field::Ttl, ..) => (ttl.as_ref().expect("a TTL check has `ttl`"), String::new()),
            (_, Some(interval), _) => (interval, String::new()),
            _ => unreachable!("the defaults follow the timing rules"),
        };
        errors.spanned(&at.value.literal, format!("{error}{note}"));
    }
    if let Some(arg) = deregister_after {
        let result = rules::check_timing(default_http, arg.value.duration);
        check(errors, &arg.value.literal, result);
    }
}

/// Health indicators, each named after the last segment of its path.
fn checks(paths: Vec<Path>, errors: &mut Errors) -> Vec<Check> {
    let mut names: Vec<String> = Vec::new();
    paths
        .into_iter()
        .filter_map(|path| {
            let last = &path.segments.last()?.ident;
            let name = last.unraw().to_string();
            if let Err(e) =
                rules::check_indicator_name_unique(&name, names.iter().map(String::as_str))
            {
                errors.spanned(&path, e.message());
                return None;
            }
            names.push(name.clone());
            let name = LitStr::new(&name, last.span());
            Some(Check { name, path })
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
        assert_eq!(
            service.timeout.unwrap().value.duration,
            Duration::from_millis(500)
        );
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
