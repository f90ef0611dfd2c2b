//! Finds the serve calls in the function body and hands each the service description:
//! `axum::serve(l, a)` and `discoverable::serve(l, a)` become
//! `<crate>::__private::serve(service(), l, a)`, with any method chain on them left as it is:
//! `service` builds the description anew for each call, so each call is its own instance.
//!
//! The rewrite reaches nested blocks, closures and async blocks, and the arguments of macros
//! such as `tokio::select!` (at the token level, since a macro's input is not Rust syntax until
//! it expands). Nested items are left alone: they cannot see the function's locals.

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::quote_spanned;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, Item, Macro, Path, PathArguments, Token};

use crate::errors::Errors;

/// Rewrites the serve calls in `block`; returns how many there are.
pub(crate) fn rewrite(
    block: &mut Block,
    krate: &Path,
    service: &Ident,
    errors: &mut Errors,
) -> usize {
    let mut calls = ServeCalls {
        krate,
        krate_segments: segments(krate).unwrap_or_default(),
        service,
        errors,
        found: 0,
    };
    calls.visit_block_mut(block);
    calls.found
}

const SERVICE_GIVEN: &str = "`#[discoverable]` already describes the service, so `serve` takes \
                             only the listener and the app: write `discoverable::serve(listener, \
                             app)` or `axum::serve(listener, app)`";

struct ServeCalls<'a> {
    krate: &'a Path,
    krate_segments: Vec<String>,
    service: &'a Ident,
    errors: &'a mut Errors,
    found: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Serve {
    Axum,
    Discoverable,
}

/// A path's segment names, when none has generic arguments.
fn segments(path: &Path) -> Option<Vec<String>> {
    path.segments
        .iter()
        .map(|s| matches!(s.arguments, PathArguments::None).then(|| s.ident.to_string()))
        .collect()
}

impl ServeCalls<'_> {
    /// Which `serve` a path (its segments, leading `::` dropped) names, if any.
    fn serve(&self, segments: &[String]) -> Option<Serve> {
        let (last, crate_path) = segments.split_last()?;
        if last != "serve" {
            return None;
        }
        if crate_path == ["axum"] {
            Some(Serve::Axum)
        } else if crate_path == ["discoverable"] || crate_path == self.krate_segments {
            Some(Serve::Discoverable)
        } else {
            None
        }
    }

    /// The call that replaces `serve(<args>)`, spanned at the user's `serve` path, or `None`
    /// when the arguments are not one of the forms handled here.
    fn replacement(
        &mut self,
        serve: Serve,
        span: Span,
        args: &Punctuated<Expr, Token![,]>,
    ) -> Option<TokenStream> {
        match (serve, args.len()) {
            (_, 2) => {
                self.found += 1;
                let (krate, service) = (self.krate, self.service);
                Some(quote_spanned!(span=> #krate::__private::serve(#service(), #args)))
            }
            (Serve::Discoverable, 3) => {
                self.found += 1;
                self.errors.spanned(&args[0], SERVICE_GIVEN);
                None
            }
            _ => None,
        }
    }

    /// The token-level rewrite for macro arguments.
    fn tokens(&mut self, tokens: TokenStream) -> TokenStream {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut out = TokenStream::new();
        let mut i = 0;
        while i < trees.len() {
            if let Some((segments, len)) = path_at(&trees, i) {
                let call = self.serve(&segments).zip(match trees.get(i + len) {
                    Some(TokenTree::Group(args)) if args.delimiter() == Delimiter::Parenthesis => {
                        Punctuated::<Expr, Token![,]>::parse_terminated
                            .parse2(args.stream())
                            .ok()
                    }
                    _ => None,
                });
                let replacement =
                    call.and_then(|(serve, args)| self.replacement(serve, trees[i].span(), &args));
                match replacement {
                    Some(replacement) => {
                        out.extend(replacement);
                        i += len + 1;
                    }
                    None => {
                        // Copied whole, so that no serve call is found in the tail of a path.
                        out.extend(trees[i..i + len].iter().cloned());
                        i += len;
                    }
                }
                continue;
            }
            match &trees[i] {
                TokenTree::Group(group) => {
                    let mut new = Group::new(group.delimiter(), self.tokens(group.stream()));
                    new.set_span(group.span());
                    out.extend([TokenTree::Group(new)]);
                }
                tree => out.extend([tree.clone()]),
            }
            i += 1;
        }
        out
    }
}

/// The path starting at `trees[start]` (`a::b`, `::a::b`): its segment names, leading `::`
/// dropped, and how many trees it spans.
fn path_at(trees: &[TokenTree], start: usize) -> Option<(Vec<String>, usize)> {
    let colons = |i: usize| {
        trees.get(i).is_some_and(|t| is_punct(t, ':'))
            && trees.get(i + 1).is_some_and(|t| is_punct(t, ':'))
    };
    let mut i = start;
    if colons(i) {
        i += 2;
    }
    let mut segments = Vec::new();
    while let Some(TokenTree::Ident(ident)) = trees.get(i) {
        segments.push(ident.to_string());
        i += 1;
        if !colons(i) {
            break;
        }
        i += 2;
    }
    (!segments.is_empty()).then_some((segments, i - start))
}

fn is_punct(tree: &TokenTree, c: char) -> bool {
    matches!(tree, TokenTree::Punct(p) if p.as_char() == c)
}

impl VisitMut for ServeCalls<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        visit_mut::visit_expr_mut(self, expr);
        let Expr::Call(call) = expr else { return };
        let Expr::Path(func) = &*call.func else {
            return;
        };
        if func.qself.is_some() || !call.attrs.is_empty() {
            return;
        }
        let Some(serve) = segments(&func.path).and_then(|s| self.serve(&s)) else {
            return;
        };
        if let Some(replacement) = self.replacement(serve, func.path.span(), &call.args) {
            *expr = syn::parse2(replacement).expect("a call expression");
        }
    }

    fn visit_item_mut(&mut self, _: &mut Item) {}

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        let tokens = std::mem::take(&mut mac.tokens);
        mac.tokens = self.tokens(tokens);
    }
}

#[cfg(test)]
mod tests {
    use quote::{ToTokens, quote};

    use super::*;

    fn run(krate: TokenStream, body: TokenStream) -> (String, usize, Vec<String>) {
        let mut block: Block = syn::parse2(quote!({ #body })).unwrap();
        let krate: Path = syn::parse2(krate).unwrap();
        let service = Ident::new("svc", Span::call_site());
        let mut errors = Errors::default();
        let found = rewrite(&mut block, &krate, &service, &mut errors);
        (
            block.into_token_stream().to_string(),
            found,
            errors.messages(),
        )
    }

    fn rewritten(body: TokenStream) -> String {
        let (out, found, errors) = run(quote!(::discoverable), body);
        assert!(found > 0 && errors.is_empty(), "{found} {errors:?}");
        out
    }

    #[test]
    fn axum_serve_keeps_its_chain() {
        let out = rewritten(quote! {
            axum::serve(listener, app).with_graceful_shutdown(signal()).await
        });
        assert_eq!(
            out,
            quote!({
                ::discoverable::__private::serve(svc(), listener, app)
                    .with_graceful_shutdown(signal())
                    .await
            })
            .to_string()
        );
    }

    #[test]
    fn every_spelling() {
        for call in [
            quote!(axum::serve(l, a)),
            quote!(::axum::serve(l, a)),
            quote!(discoverable::serve(l, a)),
            quote!(::discoverable::serve(l, a)),
        ] {
            let out = rewritten(quote!(#call.await));
            assert!(out.starts_with("{ :: discoverable :: __private :: serve (svc () , l , a)"));
        }
    }

    #[test]
    fn crate_path() {
        let (out, found, _) = run(quote!(my::disc), quote!(my::disc::serve(l, a).await));
        assert_eq!(found, 1);
        assert!(
            out.contains("my :: disc :: __private :: serve (svc () , l , a)"),
            "{out}"
        );
    }

    #[test]
    fn nested() {
        let out = rewritten(quote! {
            let server = async move { if x { axum::serve(l, a).await } else { Ok(()) } };
            let f = || { axum::serve(l2, a2) };
            { axum::serve(l3, a3).into_future() }
        });
        assert_eq!(
            out.matches("__private :: serve (svc ()").count(),
            3,
            "{out}"
        );
    }

    #[test]
    fn inside_macros() {
        let out = rewritten(quote! {
            tokio::select! {
                result = axum::serve(listener, app) => result,
                _ = other => Ok(()),
            }
        });
        assert!(
            out.contains(
                "result = :: discoverable :: __private :: serve (svc () , listener , app) => result"
            ),
            "{out}"
        );
    }

    #[test]
    fn leaves_other_calls_alone() {
        let (_, found, errors) = run(
            quote!(::discoverable),
            quote! {
                serve(l, a);
                my::axum::serve(l, a);
                axum::serve(l);
                other::serve(l, a);
                fn inner() { axum::serve(l, a); }
                m!(x::axum::serve(l, a));
            },
        );
        assert_eq!((found, errors.len()), (0, 0));
    }

    #[test]
    fn service_given_twice() {
        let (_, found, errors) = run(
            quote!(::discoverable),
            quote!(discoverable::serve(service, l, a).await),
        );
        assert_eq!(found, 1);
        assert_eq!(errors, [SERVICE_GIVEN]);
    }
}
