//! Code generation: a builder of the service description at the top of the function, and the
//! serve calls rewritten to call it. Everything is named by absolute path (`<crate>::...`, `::core::...`).

use proc_macro2::{Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::{Ident, Item, ItemFn};

use crate::args::{Arg, MetaPair};
use crate::body;
use crate::errors::Errors;
use crate::validate::{Check, Service};

/// The attributed item with the service wired in, or unchanged when it is not an `async fn`.
pub(crate) fn expand(item: TokenStream, service: &Service, errors: &mut Errors) -> TokenStream {
    let mut function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => {
            match syn::parse2::<Item>(item.clone()) {
                Ok(other) => errors.spanned(
                    head(other.into_token_stream()),
                    "`#[discoverable]` goes on the `async fn` that serves the app, such as \
                     `async fn main` under `#[tokio::main]`",
                ),
                Err(_) => errors.push(error),
            }
            return item;
        }
    };
    if function.sig.asyncness.is_none() {
        let (fn_token, ident) = (&function.sig.fn_token, &function.sig.ident);
        errors.spanned(
            quote!(#fn_token #ident),
            "`#[discoverable]` goes on an `async fn`; with `#[tokio::main]`, put \
             `#[discoverable]` above it",
        );
        return item;
    }

    // Mixed-site hygiene: user code cannot name (or shadow) this local.
    let ident = Ident::new("__discoverable_service", Span::mixed_site());
    let health_path = service.health.as_ref().map_or_else(
        || discoverable_rules::DEFAULT_HEALTH_PATH.to_owned(),
        |arg| arg.value.value(),
    );
    let (found, reported) = body::rewrite(
        &mut function.block,
        &service.krate,
        &ident,
        &health_path,
        service.grpc,
        errors,
    );
    if found == 0 {
        if reported {
            return item;
        }
        errors.spanned(
            &function.sig,
            "this function does not serve the app: `#[discoverable]` registers the service its \
             function serves, so call `axum::serve(listener, app)` or \
             `discoverable::serve(listener, app)` in the body",
        );
        return item;
    }
    // A closure that captures nothing (the builder's arguments are literals and paths), so it
    // is `Copy`: every `async move` block and spawned task gets its own, and each serve call
    // builds the service (reading the environment) when it is made, and serves a new instance.
    //
    // Everything the attribute says was checked at compile time, so a service that cannot be
    // built means a setting in the environment cannot be used: the process prints
    // `error: invalid setting <VARIABLE>: ...` and ends with exit code 2, as a command-line
    // parser does with a bad flag (`main` could only print the error's `Debug` form).
    let builder = builder(service);
    let describe: syn::Stmt = syn::parse_quote!(
        let #ident = || match #builder {
            ::core::result::Result::Ok(__discoverable_built) => __discoverable_built,
            ::core::result::Result::Err(__discoverable_error) => {
                ::std::eprintln!("error: {__discoverable_error}");
                ::std::process::exit(2)
            }
        };
    );
    match main_outcome(&function) {
        // `main` also decides what a start-up that failed (`fail_fast`) does: the same one
        // line and exit code 2, instead of the `Debug` form of the error it returns.
        Some(output) => {
            let (krate, body) = (&service.krate, &function.block);
            let outcome = Ident::new("__discoverable_outcome", Span::mixed_site());
            function.block = Box::new(syn::parse_quote!({
                #describe
                let #outcome: #output = async move #body.await;
                #krate::__private::exit_on_start_failure(#outcome)
            }));
        }
        None => function.block.stmts.insert(0, describe),
    }
    function.into_token_stream()
}

/// The return type of `main`, when it returns something (a `Result` the process reports).
fn main_outcome(function: &ItemFn) -> Option<&syn::Type> {
    match &function.sig.output {
        syn::ReturnType::Type(_, output) if function.sig.ident == "main" => {
            let is_impl = output
                .to_token_stream()
                .into_iter()
                .any(|t| matches!(&t, TokenTree::Ident(i) if i == "impl"));
            (!is_impl).then_some(&**output)
        }
        _ => None,
    }
}

/// `<crate>::Service::builder(name).prefix(..)...build()`: one call per argument, each spanned
/// at its argument so that a type error points there.
fn builder(service: &Service) -> TokenStream {
    let mut calls = TokenStream::new();
    let mut call = |span: Span, method: &str, args: TokenStream| {
        let method = Ident::new(method, span);
        calls.extend(quote_spanned!(span=> .#method(#args)));
    };
    if let Some(Arg { keyword, value }) = &service.prefix {
        call(keyword.span(), "prefix", value.to_token_stream());
    }
    if let Some(Arg { keyword, value }) = &service.strip {
        call(keyword.span(), "strip", value.to_token_stream());
    }
    for tag in &service.tags {
        call(tag.span(), "tag", tag.to_token_stream());
    }
    for MetaPair { key, value } in &service.meta {
        call(key.span(), "meta", quote!(#key, #value));
    }
    if let Some(Arg { keyword, value }) = &service.health {
        call(keyword.span(), "health_path", value.to_token_stream());
    }
    let durations = [
        &service.interval,
        &service.timeout,
        &service.deregister_after,
        &service.ttl,
    ];
    for Arg { keyword, value } in durations.into_iter().flatten() {
        // Validation refuses durations beyond u64 nanoseconds.
        let nanos = Literal::u64_suffixed(value.as_nanos() as u64);
        let span = keyword.span();
        let duration = quote_spanned!(span=> ::core::time::Duration::from_nanos(#nanos));
        call(span, &keyword.to_string(), duration);
    }
    for Check { name, path } in &service.checks {
        call(first_span(path), "check", quote!(#name, #path));
    }
    if let Some(Arg { keyword, value }) = &service.fail_fast {
        call(keyword.span(), "fail_fast", value.to_token_stream());
    }
    let (krate, name) = (&service.krate, &service.name);
    quote!(#krate::Service::builder(#name) #calls .build())
}

fn first_span(tokens: impl ToTokens) -> Span {
    tokens
        .into_token_stream()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |tree| tree.span())
}

/// An item's head, for errors about the item: its tokens after the attributes, up to its
/// body or `;` (`pub struct Config`, `impl Server`).
fn head(item: TokenStream) -> TokenStream {
    let mut trees = item.into_iter().peekable();
    let mut head = TokenStream::new();
    while let Some(tree) = trees.next() {
        match &tree {
            TokenTree::Punct(p) if p.as_char() == '#' && head.is_empty() => {
                trees.next(); // the attribute's `[...]`
            }
            TokenTree::Punct(p) if p.as_char() == ';' => break,
            TokenTree::Group(g) if g.delimiter() == proc_macro2::Delimiter::Brace => break,
            _ => head.extend([tree]),
        }
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{args, validate};

    fn run(args: TokenStream, item: TokenStream) -> (String, Vec<String>) {
        let mut errors = Errors::default();
        let args = args::parse(args, &mut errors);
        let service = validate::validate(args, &mut errors);
        let out = expand(item, &service, &mut errors);
        (out.to_string(), errors.messages())
    }

    #[test]
    fn seed() {
        let (out, errors) = run(
            quote!(name = "cool_app", prefix = "/oops"),
            quote! {
                #[tokio::main]
                async fn main() -> std::io::Result<()> {
                    let listener = bind().await?;
                    axum::serve(listener, app).await
                }
            },
        );
        assert!(errors.is_empty(), "{errors:?}");
        let expected = quote! {
            #[tokio::main]
            async fn main() -> std::io::Result<()> {
                let __discoverable_service = | | match ::discoverable::Service::builder("cool_app")
                    .prefix("/oops")
                    .build()
                {
                    ::core::result::Result::Ok(__discoverable_built) => __discoverable_built,
                    ::core::result::Result::Err(__discoverable_error) => {
                        ::std::eprintln!("error: {__discoverable_error}");
                        ::std::process::exit(2)
                    }
                };
                let __discoverable_outcome: std::io::Result<()> = async move {
                    let listener = bind().await?;
                    ::discoverable::__private::serve(__discoverable_service(), listener, app).await
                }
                .await;
                ::discoverable::__private::exit_on_start_failure(__discoverable_outcome)
            }
        };
        assert_eq!(out, expected.to_string());
    }

    #[test]
    fn every_setter() {
        let (out, errors) = run(
            quote! {
                name = "a", prefix = "/p", strip = true, tags = ["t"], meta(k = "v"),
                health = "/h", interval = "2s", timeout = "1s", deregister_after = "1m",
                checks = [db::ready], fail_fast = true, crate = "my::disc",
            },
            quote!(
                async fn f() {
                    axum::serve(l, a).await
                }
            ),
        );
        assert!(errors.is_empty(), "{errors:?}");
        let expected = quote! {
            my::disc::Service::builder("a")
                .prefix("/p")
                .strip(true)
                .tag("t")
                .meta("k", "v")
                .health_path("/h")
                .interval(::core::time::Duration::from_nanos(2000000000u64))
                .timeout(::core::time::Duration::from_nanos(1000000000u64))
                .deregister_after(::core::time::Duration::from_nanos(60000000000u64))
                .check("ready", db::ready)
                .fail_fast(true)
                .build()
        };
        assert!(out.contains(&expected.to_string()), "{out}");
        assert!(out.contains("my :: disc :: __private :: serve"), "{out}");
    }

    #[test]
    fn ttl_setter() {
        let (out, _) = run(
            quote!(name = "a", ttl = "15s"),
            quote!(
                async fn f() {
                    axum::serve(l, a).await
                }
            ),
        );
        assert!(out.contains(". ttl (:: core :: time :: Duration :: from_nanos (15000000000u64))"));
    }

    #[test]
    fn invalid_arguments_keep_the_function() {
        let (out, errors) = run(
            quote!(name = "a", prefix = "bad", tags = [1]),
            quote!(
                async fn f() {
                    discoverable::serve(l, a).await
                }
            ),
        );
        assert_eq!(errors.len(), 2);
        // What was valid is still described, so the body type-checks as it will once fixed.
        assert!(
            out.contains("Service :: builder (\"a\") . build ()"),
            "{out}"
        );
        assert!(out.contains("__private :: serve"), "{out}");
    }

    #[test]
    fn not_a_function() {
        let item = quote!(
            #[derive(Debug)]
            pub struct Config {
                a: u8,
            }
        );
        let (out, errors) = run(quote!(name = "a"), item.clone());
        assert_eq!(out, item.to_string());
        assert!(errors[0].starts_with("`#[discoverable]` goes on the `async fn`"));
        assert_eq!(
            head(item).to_string(),
            quote!(pub struct Config).to_string()
        );
    }

    #[test]
    fn not_async() {
        let item = quote!(
            fn main() {
                axum::serve(l, a);
            }
        );
        let (out, errors) = run(quote!(name = "a"), item.clone());
        assert_eq!(out, item.to_string());
        assert_eq!(
            errors,
            [
                "`#[discoverable]` goes on an `async fn`; with `#[tokio::main]`, put `#[discoverable]` above it"
            ]
        );
    }

    #[test]
    fn no_serve_call() {
        let item = quote!(
            async fn main() {
                run(l, a).await;
            }
        );
        let (out, errors) = run(quote!(name = "a"), item.clone());
        assert_eq!(out, item.to_string());
        assert!(errors[0].starts_with("this function does not serve the app"));
        // A `serve` imported outside the function: that call is pointed at instead.
        let item = quote!(
            async fn main() {
                serve(l, a).await;
            }
        );
        let (out, errors) = run(quote!(name = "a"), item.clone());
        assert_eq!(out, item.to_string());
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("`#[discoverable]` cannot see where this `serve` comes from")
        );
    }
}
