//! Finds the serve calls in the function body and hands each the service description:
//! `axum::serve(l, a)` and `discoverable::serve(l, a)` become
//! `<crate>::__private::serve(service(), l, a)`, with any method chain on them left as it is:
//! `service` builds the description anew for each call, so each call is its own instance.
//!
//! What is rewritten, in two sentences (the README says the same): every call of `serve` with
//! two arguments, written `axum::serve` or `discoverable::serve`, or by a name the body imports
//! with `use axum::serve;`, anywhere in the body except inside nested items (`fn`, `impl`,
//! `mod`), including inside closures, async blocks and the arguments of macros such as
//! `tokio::select!`. A `serve` imported outside the function cannot be seen and is reported.
//!
//! It also reports a route of the app on the health path (`.route("/health", ..)` written in
//! the body), which the health route, answered before the app, would shadow.
use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::quote_spanned;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, ExprLit, Item, Lit, Macro, Path, PathArguments, Stmt, Token, UseTree};

use crate::errors::Errors;

/// Rewrites the serve calls in `block` and reports routes on `health_path`; returns how many
/// serve calls there are, and whether, with none, it reported the first call of a `serve` it
/// cannot see.
pub(crate) fn rewrite(
    block: &mut Block,
    krate: &Path,
    service: &Ident,
    health_path: &str,
    grpc: bool,
    errors: &mut Errors,
) -> (usize, bool) {
    let mut nested = NestedRouters::default();
    nested.visit_block_mut(block);
    let mut calls = ServeCalls {
        nested_names: nested.names,
        nesting: 0,
        grpc,
        krate,
        krate_segments: segments(krate).unwrap_or_default(),
        service,
        health_path,
        errors,
        found: 0,
        imported: Vec::new(),
        unseen: None,
    };
    calls.visit_block_mut(block);
    let unseen = calls.unseen.filter(|_| calls.found == 0);
    if let Some(span) = unseen {
        calls.errors.push(syn::Error::new(span, UNSEEN));
    }
    (calls.found, unseen.is_some())
}

const SERVICE_GIVEN: &str = "`#[discoverable]` already describes the service, so `serve` takes \
                             only the listener and the app: write `discoverable::serve(listener, \
                             app)` or `axum::serve(listener, app)`";

const UNSEEN: &str = "`#[discoverable]` cannot see where this `serve` comes from: it rewrites \
                      `axum::serve(listener, app)` and `discoverable::serve(listener, app)` \
                      written with the crate name, or a `serve` imported inside this function \
                      (`use axum::serve;`); write `axum::serve(listener, app)` here";

/// The error for a route on the health path.
fn shadowed(path: &str) -> String {
    format!(
        "`{path}` is the health route `#[discoverable]` adds, answered before the app, so this \
         route would never be reached; give it another path, or move the health route with \
         `health = \"/other\"`"
    )
}

/// The variables the body nests under a prefix (`.nest("/api", api)`): their routes are
/// answered under that prefix, so none of them is shadowed by the health route.
#[derive(Default)]
struct NestedRouters {
    names: Vec<String>,
}

// Reads only; `VisitMut` because the crate's syn has no `visit` feature.
impl VisitMut for NestedRouters {
    fn visit_expr_method_call_mut(&mut self, call: &mut syn::ExprMethodCall) {
        if is_nest(call) {
            if let Some(Expr::Path(p)) = call.args.iter().nth(1) {
                if let Some(name) = p.path.get_ident() {
                    self.names.push(name.to_string());
                }
            }
        }
        visit_mut::visit_expr_method_call_mut(self, call);
    }
}

/// `.nest(prefix, router)` or `.nest_service(prefix, service)`, whose routes live under a
/// prefix.
fn is_nest(call: &syn::ExprMethodCall) -> bool {
    (call.method == "nest" || call.method == "nest_service") && call.args.len() == 2
}

struct ServeCalls<'a> {
    /// Variables the body nests under a prefix (see [`NestedRouters`]).
    nested_names: Vec<String>,
    /// How deep the visit is inside what gets nested under a prefix: routes there are not
    /// shadowed.
    nesting: usize,
    /// Serve calls go to the gRPC entry (`grpc`).
    grpc: bool,
    krate: &'a Path,
    krate_segments: Vec<String>,
    service: &'a Ident,
    health_path: &'a str,
    errors: &'a mut Errors,
    found: usize,
    /// Names imported with `use` by the enclosing blocks, innermost last, and what they name.
    imported: Vec<Vec<(String, Serve)>>,
    /// The first call of a `serve` with two arguments that is none of the above.
    unseen: Option<Span>,
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
        if let [name] = segments {
            return self
                .imported
                .iter()
                .rev()
                .flatten()
                .find(|(imported, _)| imported == name)
                .map(|&(_, serve)| serve);
        }
        self.full_path(segments)
    }

    /// Which `serve` a full path names, if any.
    fn full_path(&self, segments: &[String]) -> Option<Serve> {
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
                let entry = Ident::new(if self.grpc { "serve_grpc" } else { "serve" }, span);
                Some(quote_spanned!(span=> #krate::__private::#entry(#service(), #args)))
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
                let args = match trees.get(i + len) {
                    Some(TokenTree::Group(args)) if args.delimiter() == Delimiter::Parenthesis => {
                        Punctuated::<Expr, Token![,]>::parse_terminated
                            .parse2(args.stream())
                            .ok()
                    }
                    _ => None,
                };
                let replacement = match (self.serve(&segments), args) {
                    (Some(serve), Some(args)) => self.replacement(serve, trees[i].span(), &args),
                    (None, Some(args)) if segments == ["serve"] && args.len() == 2 => {
                        self.unseen.get_or_insert(trees[i].span());
                        None
                    }
                    _ => None,
                };
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

/// The names a `use` tree imports for `serve` functions: `use axum::serve;`,
/// `use axum::serve as s;`, `use axum::{serve, Router};`, `use axum::*;`.
fn imports(
    tree: &UseTree,
    prefix: &mut Vec<String>,
    calls: &ServeCalls<'_>,
    out: &mut Vec<(String, Serve)>,
) {
    let mut import = |item: &str, name: String| {
        prefix.push(item.to_owned());
        if let Some(serve) = calls.full_path(prefix) {
            out.push((name, serve));
        }
        prefix.pop();
    };
    match tree {
        UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            imports(&path.tree, prefix, calls, out);
            prefix.pop();
        }
        // The imported item, and the name the body calls it by.
        UseTree::Name(name) => import(&name.ident.to_string(), name.ident.to_string()),
        UseTree::Rename(rename) => import(&rename.ident.to_string(), rename.rename.to_string()),
        UseTree::Glob(_) => import("serve", "serve".to_owned()),
        UseTree::Group(group) => {
            for tree in &group.items {
                imports(tree, prefix, calls, out);
            }
        }
    }
}

fn is_punct(tree: &TokenTree, c: char) -> bool {
    matches!(tree, TokenTree::Punct(p) if p.as_char() == c)
}

impl VisitMut for ServeCalls<'_> {
    fn visit_block_mut(&mut self, block: &mut Block) {
        let mut names = Vec::new();
        for stmt in &mut block.stmts {
            if let Stmt::Item(Item::Use(item)) = stmt {
                let before = names.len();
                imports(&item.tree, &mut Vec::new(), self, &mut names);
                if names.len() > before {
                    // Its calls are rewritten, so the import itself is no longer used.
                    item.attrs.push(syn::parse_quote!(#[allow(unused_imports)]));
                }
            }
        }
        self.imported.push(names);
        visit_mut::visit_block_mut(self, block);
        self.imported.pop();
    }

    fn visit_local_mut(&mut self, local: &mut syn::Local) {
        // `let api = Router::new().route("/health", ..)` with `api` nested later.
        let nested = match &local.pat {
            syn::Pat::Ident(p) => self.nested_names.contains(&p.ident.to_string()),
            _ => false,
        };
        self.nesting += usize::from(nested);
        visit_mut::visit_local_mut(self, local);
        self.nesting -= usize::from(nested);
    }

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        if let Expr::MethodCall(call) = expr {
            if is_nest(call) {
                // The router nested under the prefix is visited as nested; the rest as usual.
                self.visit_expr_mut(&mut call.receiver);
                let mut args = call.args.iter_mut();
                if let Some(prefix) = args.next() {
                    self.visit_expr_mut(prefix);
                }
                if let Some(router) = args.next() {
                    self.nesting += 1;
                    self.visit_expr_mut(router);
                    self.nesting -= 1;
                }
                return;
            }
        }
        visit_mut::visit_expr_mut(self, expr);
        if let Expr::MethodCall(call) = expr {
            let route = call.method == "route" || call.method == "route_service";
            if let Some(Expr::Lit(ExprLit {
                lit: Lit::Str(path),
                ..
            })) = call.args.first().filter(|_| route && self.nesting == 0)
            {
                if path.value() == self.health_path {
                    self.errors.spanned(path, shadowed(self.health_path));
                }
            }
            return;
        }
        let Expr::Call(call) = expr else { return };
        let Expr::Path(func) = &*call.func else {
            return;
        };
        if func.qself.is_some() || !call.attrs.is_empty() {
            return;
        }
        let Some(path) = segments(&func.path) else {
            return;
        };
        let Some(serve) = self.serve(&path) else {
            if path == ["serve"] && call.args.len() == 2 {
                self.unseen.get_or_insert(func.path.span());
            }
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
        let (found, _) = rewrite(&mut block, &krate, &service, "/health", false, &mut errors);
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
    fn a_serve_imported_in_the_body() {
        for import in [
            quote!(
                use axum::serve;
            ),
            quote!(
                use ::axum::serve;
            ),
            quote!(
                use axum::{routing::get, serve};
            ),
            quote!(
                use axum::*;
            ),
            quote!(
                use discoverable::serve;
            ),
        ] {
            let out = rewritten(quote! { #import serve(l, a).await });
            assert!(
                out.contains("# [allow (unused_imports)]")
                    && out.contains(":: discoverable :: __private :: serve (svc () , l , a)"),
                "{import}: {out}"
            );
        }
        let out = rewritten(quote! { use axum::serve as run; run(l, a).await });
        assert!(out.contains("__private :: serve (svc () , l , a)"), "{out}");
        let out = rewritten(quote! { use axum::serve; tokio::select! { r = serve(l, a) => r } });
        assert!(
            out.contains("r = :: discoverable :: __private :: serve (svc () , l , a)"),
            "{out}"
        );
    }

    #[test]
    fn an_import_reaches_only_its_block() {
        let (out, found, errors) = run(
            quote!(::discoverable),
            quote! {
                { use axum::serve; serve(l, a).await; }
                serve(l2, a2).await;
            },
        );
        assert_eq!((found, errors.len()), (1, 0), "{out}");
        assert!(out.contains("serve (l2 , a2)"), "{out}");
    }

    #[test]
    fn a_serve_it_cannot_see_is_pointed_at() {
        for body in [
            quote!(serve(listener, app).await),
            quote!(tokio::select! { r = serve(listener, app) => r }),
            quote! { use other::serve; serve(listener, app).await },
        ] {
            let (_, found, errors) = run(quote!(::discoverable), body.clone());
            assert_eq!(
                (found, &errors[..]),
                (0, &[UNSEEN.to_owned()][..]),
                "{body}"
            );
        }
    }

    #[test]
    fn a_route_on_the_health_path() {
        let (_, _, errors) = run(
            quote!(::discoverable),
            quote! {
                let app = Router::new().route("/", get(home)).route("/health", get(mine));
                let other = Router::new().route_service("/health", svc).route("/healthz", get(x));
                axum::serve(l, app).await
            },
        );
        assert_eq!(errors, [shadowed("/health"), shadowed("/health")]);
        // Nested under a prefix, `/health` is `/api/health`: shadowed by nothing, inline or
        // through a variable; merged, it is still the app's `/health`.
        let (_, _, errors) = run(
            quote!(::discoverable),
            quote! {
                let api = Router::new().route("/health", get(api_health));
                let admin = Router::new().route("/health", get(admin_health));
                let app = Router::new()
                    .nest("/api", api)
                    .nest("/v2", Router::new().route("/health", get(v2_health)))
                    .nest_service("/svc", Router::new().route("/health", get(s)))
                    .merge(admin)
                    .merge(Router::new().route("/health", get(shadowed)));
                axum::serve(l, app).await
            },
        );
        assert_eq!(errors, [shadowed("/health"), shadowed("/health")]);
        let mut block: Block = syn::parse2(quote!({
            let app = Router::new().route("/health", get(mine));
            axum::serve(l, app).await
        }))
        .unwrap();
        let mut errors = Errors::default();
        let krate: Path = syn::parse_quote!(::discoverable);
        let service = Ident::new("svc", Span::call_site());
        rewrite(&mut block, &krate, &service, "/up", false, &mut errors);
        assert!(
            errors.is_empty(),
            "with `health = \"/up\"`, `/health` is the app's"
        );
    }

    #[test]
    fn grpc_serve_calls_go_to_the_grpc_entry() {
        let mut block: Block =
            syn::parse2(quote!({ discoverable::serve(listener, routes).await })).unwrap();
        let mut errors = Errors::default();
        let krate: Path = syn::parse_quote!(::discoverable);
        let service = Ident::new("svc", Span::call_site());
        let (found, _) = rewrite(&mut block, &krate, &service, "/health", true, &mut errors);
        let out = block.into_token_stream().to_string();
        assert_eq!(found, 1);
        assert!(
            out.contains(":: discoverable :: __private :: serve_grpc (svc () , listener , routes)"),
            "{out}"
        );
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
