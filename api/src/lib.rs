//! The public API of a crate, read from its sources, as one sorted line per item: every item
//! reachable from the crate root through `pub mod` and `pub use` (at its shortest path, other
//! paths as `pub use` lines), with its signature, the public fields and variants, the public
//! methods and constants of its inherent `impl`s, its trait `impl`s and derives, and the
//! attributes that change what a user may do with it (`#[non_exhaustive]`, `#[must_use]`, ...).
//! Paths in signatures are resolved through the `use` declarations, so moving code or
//! rewriting imports leaves the listing alone; names of the prelude stay as written.
//!
//! `#[doc(hidden)]` items and `#[cfg(test)]` code are left out. What the sources do not say
//! is not listed: auto traits (`Send`, `Sync`, `Unpin`) and blanket implementations.
//!
//! Constructs the listing cannot follow (`#[path]` modules, unknown `cfg`s, a `pub use` of
//! nothing, public unions) are errors rather than silently left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit_mut::VisitMut;

/// The crates whose API is listed: package name, directory relative to the workspace root.
pub const CRATES: &[(&str, &str)] = &[
    ("discoverable", "."),
    ("discoverable-runtime", "runtime"),
    ("discoverable-rules", "rules"),
];

/// The command that rewrites the listings.
pub const REGENERATE: &str = "cargo run -p discoverable-public-api";

/// The workspace root (this crate lives in `api/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("api/ has a parent")
        .to_path_buf()
}

/// Where the listing of `package` is committed.
pub fn listing_path(package: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("{package}.txt"))
}

/// The listing of the crate `package` whose manifest is in `dir`.
///
/// # Errors
///
/// What could not be read or followed, naming the file or the item.
pub fn listing(package: &str, dir: &Path) -> Result<String, String> {
    let krate = Crate::load(package, &dir.join("src/lib.rs"))?;
    let mut lines = krate.lines()?;
    lines.sort();
    lines.dedup();
    let mut out =
        format!("# Public API of {package}, one line per item. Regenerate with `{REGENERATE}`.\n");
    for (_, text) in lines {
        out.push_str(&text);
        out.push('\n');
    }
    Ok(out)
}

/// The lines in `old` and not in `new` (`-`), and the other way round (`+`).
pub fn diff(old: &str, new: &str) -> String {
    let old_lines: BTreeSet<&str> = old.lines().collect();
    let new_lines: BTreeSet<&str> = new.lines().collect();
    let mut out = String::new();
    for line in old.lines().filter(|l| !new_lines.contains(l)) {
        let _ = writeln!(out, "- {line}");
    }
    for line in new.lines().filter(|l| !old_lines.contains(l)) {
        let _ = writeln!(out, "+ {line}");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

struct Module {
    /// Crate-relative path, e.g. `["consul", "types"]`.
    path: Vec<String>,
    parent: Option<usize>,
    items: Vec<syn::Item>,
    children: BTreeMap<String, usize>,
}

struct Crate {
    /// The crate's name in paths, e.g. `discoverable_runtime`.
    name: String,
    modules: Vec<Module>,
    /// The names being looked up, so an import that names itself (`use serve::serve`, whose
    /// first `serve` is the module) does not loop.
    active: std::cell::RefCell<BTreeSet<(usize, String)>>,
}

/// Whether `attrs` keep the item in the build this listing describes (Linux, every feature
/// on, not a test).
fn cfg_on(attrs: &[syn::Attribute], what: &str) -> Result<bool, String> {
    for attr in attrs {
        if attr.path().is_ident("cfg") {
            let meta: syn::Meta = attr
                .parse_args()
                .map_err(|e| format!("{what}: unreadable cfg ({e})"))?;
            if !cfg_eval(&meta, what)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn cfg_eval(meta: &syn::Meta, what: &str) -> Result<bool, String> {
    let list = |m: &syn::MetaList| -> Result<Vec<syn::Meta>, String> {
        m.parse_args_with(
            syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
        )
        .map(|p| p.into_iter().collect())
        .map_err(|e| format!("{what}: unreadable cfg ({e})"))
    };
    match meta {
        syn::Meta::Path(p) if p.is_ident("test") || p.is_ident("doc") => Ok(false),
        syn::Meta::Path(p) if p.is_ident("unix") => Ok(true),
        syn::Meta::Path(p) if p.is_ident("windows") => Ok(false),
        syn::Meta::NameValue(nv) if nv.path.is_ident("feature") => Ok(true),
        syn::Meta::NameValue(nv) if nv.path.is_ident("target_os") => {
            Ok(nv.value.to_token_stream().to_string() == "\"linux\"")
        }
        syn::Meta::List(m) if m.path.is_ident("not") => {
            let inner = list(m)?;
            match inner.as_slice() {
                [one] => Ok(!cfg_eval(one, what)?),
                _ => Err(format!("{what}: cfg(not(..)) takes one predicate")),
            }
        }
        syn::Meta::List(m) if m.path.is_ident("all") => {
            for one in list(m)? {
                if !cfg_eval(&one, what)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        syn::Meta::List(m) if m.path.is_ident("any") => {
            for one in list(m)? {
                if cfg_eval(&one, what)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        other => Err(format!(
            "{what}: the listing does not know cfg({}); teach cfg_eval",
            other.to_token_stream()
        )),
    }
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

fn hidden(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("doc")
            && a.parse_args::<syn::Path>()
                .is_ok_and(|p| p.is_ident("hidden"))
    })
}

fn is_pub(vis: &syn::Visibility) -> bool {
    matches!(vis, syn::Visibility::Public(_))
}

impl Crate {
    fn load(package: &str, lib: &Path) -> Result<Crate, String> {
        let mut krate = Crate {
            name: package.replace('-', "_"),
            modules: Vec::new(),
            active: Default::default(),
        };
        let dir = lib.parent().expect("src/").to_path_buf();
        let file = read(lib)?;
        krate.add_module(Vec::new(), None, file.items, &dir, lib)?;
        Ok(krate)
    }

    /// Adds a module and, recursively, its submodules; `dir` is where its `mod x;` files are.
    fn add_module(
        &mut self,
        path: Vec<String>,
        parent: Option<usize>,
        items: Vec<syn::Item>,
        dir: &Path,
        file: &Path,
    ) -> Result<usize, String> {
        let index = self.modules.len();
        self.modules.push(Module {
            path: path.clone(),
            parent,
            items: Vec::new(),
            children: BTreeMap::new(),
        });
        let mut kept = Vec::new();
        // Items written inside `pin_project! { .. }` are items of the module.
        let items = items.into_iter().flat_map(|item| match &item {
            syn::Item::Macro(mac)
                if mac
                    .mac
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "pin_project") =>
            {
                match syn::parse2::<syn::File>(mac.mac.tokens.clone()) {
                    Ok(inner) => inner.items,
                    Err(_) => vec![item],
                }
            }
            _ => vec![item],
        });
        for item in items {
            let what = format!("{}", file.display());
            if !cfg_on(item_attrs(&item), &what)? {
                continue;
            }
            if let syn::Item::Mod(m) = &item {
                if m.attrs.iter().any(|a| a.path().is_ident("path")) {
                    return Err(format!(
                        "{what}: #[path] on mod {} is not followed by the listing",
                        m.ident
                    ));
                }
                let name = m.ident.to_string();
                let mut child_path = path.clone();
                child_path.push(name.clone());
                let child = match &m.content {
                    Some((_, inline)) => self.add_module(
                        child_path,
                        Some(index),
                        inline.clone(),
                        &dir.join(&name),
                        file,
                    )?,
                    None => {
                        let flat = dir.join(format!("{name}.rs"));
                        let nested = dir.join(&name).join("mod.rs");
                        let (child_file, child_dir) = if flat.exists() {
                            (flat, dir.join(&name))
                        } else if nested.exists() {
                            (nested, dir.join(&name))
                        } else {
                            return Err(format!("{what}: no file for mod {name}"));
                        };
                        let parsed = read(&child_file)?;
                        self.add_module(
                            child_path,
                            Some(index),
                            parsed.items,
                            &child_dir,
                            &child_file,
                        )?
                    }
                };
                self.modules[index].children.insert(name, child);
            }
            kept.push(item);
        }
        self.modules[index].items = kept;
        Ok(index)
    }
}

fn read(path: &Path) -> Result<syn::File, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    syn::parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Name resolution
// ---------------------------------------------------------------------------------------------

/// What a name stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Def {
    /// An item defined in module `.0` with name `.1`.
    Local(usize, String),
    /// A module of the crate.
    Module(usize),
    /// Something outside the crate (another crate, std, the prelude), by its path.
    External(String),
}

/// The name an item defines, if it defines one in a module's scope.
fn item_ident(item: &syn::Item) -> Option<String> {
    match item {
        syn::Item::Const(i) => Some(i.ident.to_string()),
        syn::Item::Enum(i) => Some(i.ident.to_string()),
        syn::Item::Fn(i) => Some(i.sig.ident.to_string()),
        syn::Item::Macro(i) => i.ident.as_ref().map(ToString::to_string),
        syn::Item::Static(i) => Some(i.ident.to_string()),
        syn::Item::Struct(i) => Some(i.ident.to_string()),
        syn::Item::Trait(i) => Some(i.ident.to_string()),
        syn::Item::TraitAlias(i) => Some(i.ident.to_string()),
        syn::Item::Type(i) => Some(i.ident.to_string()),
        syn::Item::Union(i) => Some(i.ident.to_string()),
        _ => None,
    }
}

/// One leaf of a `use` tree: the path it names, the name it binds (`*` for a glob).
fn use_leaves(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_leaves(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            let bound = if n.ident == "self" {
                prefix.last().cloned().unwrap_or_default()
            } else {
                n.ident.to_string()
            };
            if n.ident == "self" {
                path.pop();
            }
            out.push((path, bound));
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            if r.ident != "self" {
                path.push(r.ident.to_string());
            }
            out.push((path, r.rename.to_string()));
        }
        syn::UseTree::Glob(_) => out.push((prefix.clone(), "*".to_owned())),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_leaves(t, prefix, out);
            }
        }
    }
}

impl Crate {
    /// Everything `name` stands for in module `m`.
    fn lookup(&self, m: usize, name: &str, depth: usize) -> Vec<Def> {
        if depth > 32 || !self.active.borrow_mut().insert((m, name.to_owned())) {
            return Vec::new();
        }
        let found = self.lookup_inner(m, name, depth);
        self.active.borrow_mut().remove(&(m, name.to_owned()));
        found
    }

    /// Whether module `m` defines or imports `name` at all.
    fn binds(&self, m: usize, name: &str) -> bool {
        let module = &self.modules[m];
        module.children.contains_key(name)
            || module.items.iter().any(|item| {
                item_ident(item).as_deref() == Some(name)
                    || matches!(item, syn::Item::Use(u) if {
                        let mut leaves = Vec::new();
                        use_leaves(&u.tree, &mut Vec::new(), &mut leaves);
                        leaves.iter().any(|(_, b)| b == name)
                    })
            })
    }

    /// Whether `def` can stand before `::` (a module, a type, a trait; not a function).
    fn is_prefix(&self, def: &Def) -> bool {
        match def {
            Def::Local(m, name) => !matches!(
                self.find_item(*m, name),
                Some(
                    syn::Item::Fn(_)
                        | syn::Item::Const(_)
                        | syn::Item::Static(_)
                        | syn::Item::Macro(_)
                )
            ),
            _ => true,
        }
    }

    fn lookup_inner(&self, m: usize, name: &str, depth: usize) -> Vec<Def> {
        let module = &self.modules[m];
        let mut found = BTreeSet::new();
        if let Some(&child) = module.children.get(name) {
            found.insert(Def::Module(child));
        }
        let mut globs = Vec::new();
        for item in &module.items {
            if item_ident(item).as_deref() == Some(name) {
                found.insert(Def::Local(m, name.to_owned()));
            }
            if let syn::Item::Use(u) = item {
                let mut leaves = Vec::new();
                use_leaves(&u.tree, &mut Vec::new(), &mut leaves);
                for (path, bound) in leaves {
                    if bound == name {
                        found.extend(self.resolve(m, &path, depth + 1));
                    } else if bound == "*" {
                        globs.push(path);
                    }
                }
            }
        }
        if found.is_empty() {
            for path in globs {
                for def in self.resolve(m, &path, depth + 1) {
                    if let Def::Module(target) = def {
                        found.extend(self.lookup(target, name, depth + 1));
                    }
                }
            }
        }
        found.into_iter().collect()
    }

    /// What `path` names, seen from module `m`.
    fn resolve(&self, m: usize, path: &[String], depth: usize) -> Vec<Def> {
        let Some((first, rest)) = path.split_first() else {
            return vec![Def::Module(m)];
        };
        let mut current: Vec<Def> = match first.as_str() {
            "crate" => vec![Def::Module(0)],
            "self" => vec![Def::Module(m)],
            "super" => self.modules[m]
                .parent
                .map(Def::Module)
                .into_iter()
                .collect(),
            name => {
                if self.binds(m, name) {
                    self.lookup(m, name, depth)
                } else {
                    vec![Def::External(name.to_owned())]
                }
            }
        };
        for segment in rest {
            let mut next = Vec::new();
            for def in current.iter().filter(|d| self.is_prefix(d)) {
                match def {
                    Def::Module(target) => match segment.as_str() {
                        "super" => next.extend(self.modules[*target].parent.map(Def::Module)),
                        "self" => next.push(Def::Module(*target)),
                        _ => next.extend(self.lookup(*target, segment, depth + 1)),
                    },
                    Def::External(p) => next.push(Def::External(format!("{p}::{segment}"))),
                    // A variant or an associated item: keep the path as written from the type.
                    Def::Local(module, name) => next.push(Def::External(format!(
                        "{}::{segment}",
                        self.internal_path(*module, name)
                    ))),
                }
            }
            current = next;
        }
        current
    }

    fn internal_path(&self, m: usize, name: &str) -> String {
        let mut parts = vec![self.name.clone()];
        parts.extend(self.modules[m].path.iter().cloned());
        parts.push(name.to_owned());
        parts.join("::")
    }

    fn find_item(&self, m: usize, name: &str) -> Option<&syn::Item> {
        self.modules[m]
            .items
            .iter()
            .find(|i| item_ident(i).as_deref() == Some(name))
    }
}

// ---------------------------------------------------------------------------------------------
// Public paths
// ---------------------------------------------------------------------------------------------

struct Public {
    /// Every public path of each local item, shortest first.
    items: BTreeMap<Def, Vec<String>>,
    /// `pub use` lines of things outside the crate: (public path, what it names).
    external: BTreeSet<(String, String)>,
}

impl Public {
    fn canonical(&self, def: &Def) -> Option<&str> {
        self.items
            .get(def)
            .and_then(|p| p.first())
            .map(String::as_str)
    }
}

fn by_length(a: &String, b: &String) -> std::cmp::Ordering {
    a.matches("::")
        .count()
        .cmp(&b.matches("::").count())
        .then_with(|| a.cmp(b))
}

impl Crate {
    fn public(&self) -> Result<Public, String> {
        let mut public = Public {
            items: BTreeMap::new(),
            external: BTreeSet::new(),
        };
        let mut seen = BTreeSet::new();
        self.walk(0, self.name.clone(), &mut public, &mut seen)?;
        for paths in public.items.values_mut() {
            paths.sort_by(by_length);
            paths.dedup();
        }
        Ok(public)
    }

    /// Records what module `m`, public at `at`, makes public.
    fn walk(
        &self,
        m: usize,
        at: String,
        public: &mut Public,
        seen: &mut BTreeSet<(usize, String)>,
    ) -> Result<(), String> {
        if !seen.insert((m, at.clone())) {
            return Ok(());
        }
        public
            .items
            .entry(Def::Module(m))
            .or_default()
            .push(at.clone());
        for item in &self.modules[m].items {
            if hidden(item_attrs(item)) {
                continue;
            }
            match item {
                syn::Item::Mod(i) if is_pub(&i.vis) => {
                    let child = self.modules[m].children[&i.ident.to_string()];
                    self.walk(child, format!("{at}::{}", i.ident), public, seen)?;
                }
                syn::Item::Use(u) if is_pub(&u.vis) => {
                    let mut leaves = Vec::new();
                    use_leaves(&u.tree, &mut Vec::new(), &mut leaves);
                    for (path, bound) in leaves {
                        let defs = self.resolve(m, &path, 0);
                        if defs.is_empty() {
                            return Err(format!(
                                "`pub use {}` in {at} names nothing the listing can find",
                                path.join("::")
                            ));
                        }
                        for def in defs {
                            self.publish(def, &at, &bound, public, seen)?;
                        }
                    }
                }
                syn::Item::Macro(i) if i.ident.is_some() => {
                    let exported = i.attrs.iter().any(|a| a.path().is_ident("macro_export"));
                    if exported {
                        let name = i.ident.as_ref().expect("named").to_string();
                        public
                            .items
                            .entry(Def::Local(m, name.clone()))
                            .or_default()
                            .push(format!("{}::{name}", self.name));
                    }
                }
                syn::Item::Union(i) if is_pub(&i.vis) => {
                    return Err(format!(
                        "pub union {at}::{}: not listed; teach the listing",
                        i.ident
                    ));
                }
                syn::Item::ExternCrate(i) if is_pub(&i.vis) => {
                    return Err(format!(
                        "pub extern crate in {at}: not listed; teach the listing {}",
                        i.ident
                    ));
                }
                other => {
                    if let (Some(name), true) = (item_ident(other), item_is_pub(other)) {
                        public
                            .items
                            .entry(Def::Local(m, name.clone()))
                            .or_default()
                            .push(format!("{at}::{name}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Records `def`, re-exported in the module public at `at` as `bound` (`*`: a glob).
    fn publish(
        &self,
        def: Def,
        at: &str,
        bound: &str,
        public: &mut Public,
        seen: &mut BTreeSet<(usize, String)>,
    ) -> Result<(), String> {
        match (def, bound) {
            (Def::Module(target), "*") => {
                let mut names = BTreeSet::new();
                for item in &self.modules[target].items {
                    if hidden(item_attrs(item)) {
                        continue;
                    }
                    match item {
                        syn::Item::Mod(i) if is_pub(&i.vis) => {
                            names.insert(i.ident.to_string());
                        }
                        syn::Item::Use(u) if is_pub(&u.vis) => {
                            let mut leaves = Vec::new();
                            use_leaves(&u.tree, &mut Vec::new(), &mut leaves);
                            names.extend(leaves.into_iter().map(|(_, b)| b).filter(|b| b != "*"));
                        }
                        other if item_is_pub(other) => names.extend(item_ident(other)),
                        _ => {}
                    }
                }
                for name in names {
                    for def in self.lookup(target, &name, 0) {
                        self.publish(def, at, &name, public, seen)?;
                    }
                }
                Ok(())
            }
            (Def::Module(target), name) => self.walk(target, format!("{at}::{name}"), public, seen),
            (Def::Local(m, name), bound) => {
                public
                    .items
                    .entry(Def::Local(m, name))
                    .or_default()
                    .push(format!("{at}::{bound}"));
                Ok(())
            }
            (Def::External(path), "*") => {
                public
                    .external
                    .insert((format!("{at}::*"), format!("{path}::*")));
                Ok(())
            }
            (Def::External(path), bound) => {
                public.external.insert((format!("{at}::{bound}"), path));
                Ok(())
            }
        }
    }
}

fn item_is_pub(item: &syn::Item) -> bool {
    match item {
        syn::Item::Const(i) => is_pub(&i.vis),
        syn::Item::Enum(i) => is_pub(&i.vis),
        syn::Item::Fn(i) => is_pub(&i.vis),
        syn::Item::Static(i) => is_pub(&i.vis),
        syn::Item::Struct(i) => is_pub(&i.vis),
        syn::Item::Trait(i) => is_pub(&i.vis),
        syn::Item::TraitAlias(i) => is_pub(&i.vis),
        syn::Item::Type(i) => is_pub(&i.vis),
        syn::Item::Union(i) => is_pub(&i.vis),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// Tokens as Rust is usually written: `Option<Vec<String>>`, `&'a str`, `fn f(x: u8) -> u8`.
fn render(tokens: TokenStream) -> String {
    #[derive(PartialEq)]
    enum Tok {
        Word(String),
        Op(String),
        Group(Delimiter, String),
    }
    let mut toks: Vec<Tok> = Vec::new();
    let mut joint = false;
    for tree in tokens {
        match tree {
            TokenTree::Ident(i) => {
                if joint {
                    // A lifetime: `'` joined to its name.
                    if let Some(Tok::Op(op)) = toks.last_mut() {
                        if op == "'" {
                            *toks.last_mut().expect("the tick") = Tok::Word(format!("'{i}"));
                            joint = false;
                            continue;
                        }
                    }
                }
                toks.push(Tok::Word(i.to_string()));
                joint = false;
            }
            TokenTree::Literal(l) => {
                toks.push(Tok::Word(l.to_string()));
                joint = false;
            }
            TokenTree::Punct(p) => {
                let c = p.as_char().to_string();
                match toks.last_mut() {
                    Some(Tok::Op(op)) if joint => op.push_str(&c),
                    _ => toks.push(Tok::Op(c)),
                }
                joint = p.spacing() == Spacing::Joint;
            }
            TokenTree::Group(g) => {
                let inner = render(g.stream());
                // A trailing comma, unless it makes a one-element tuple.
                let one_tuple =
                    g.delimiter() == Delimiter::Parenthesis && inner.matches(',').count() == 1;
                let inner = match inner.strip_suffix(',') {
                    Some(stripped) if !one_tuple => stripped.to_owned(),
                    _ => inner,
                };
                toks.push(Tok::Group(g.delimiter(), inner));
                joint = false;
            }
        }
    }
    let mut out = String::new();
    let mut prev: Option<&Tok> = None;
    for tok in &toks {
        let space = match (prev, tok) {
            (None, _) => false,
            (Some(Tok::Op(p)), _)
                if ["&", "<", "::", "#", "?", "!", "'", "."].contains(&p.as_str()) =>
            {
                false
            }
            (_, Tok::Op(o)) if [",", ";", ":", "::", ">", "."].contains(&o.as_str()) => false,
            (Some(Tok::Word(_)), Tok::Op(o)) if o == "<" => false,
            (Some(Tok::Word(_)), Tok::Group(Delimiter::Parenthesis | Delimiter::Bracket, _)) => {
                false
            }
            _ => true,
        };
        if space {
            out.push(' ');
        }
        match tok {
            Tok::Word(w) | Tok::Op(w) => out.push_str(w),
            Tok::Group(d, inner) => {
                let (open, close) = match d {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{ ", " }"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                out.push_str(inner);
                out.push_str(close);
            }
        }
        prev = Some(tok);
    }
    out
}

fn show<T: ToTokens>(node: &T) -> String {
    render(node.to_token_stream())
}

/// A where clause, without its trailing comma.
fn show_where(w: &syn::WhereClause) -> String {
    let text = show(w);
    text.strip_suffix(',').map(str::to_owned).unwrap_or(text)
}

/// Rewrites every path in a node to where it resolves from module `m`: an item of the crate
/// to its public path, an import to what it imports. Generic parameters, `Self` and names
/// that resolve to nothing known stay as written.
struct Resolver<'a> {
    krate: &'a Crate,
    public: &'a Public,
    m: usize,
    generics: BTreeSet<String>,
    /// Whether a path named an item of the crate that is not public.
    private: bool,
}

impl Resolver<'_> {
    fn absolute(&mut self, idents: &[String]) -> Option<String> {
        if idents.len() == 1 && self.generics.contains(&idents[0]) {
            return None;
        }
        if matches!(idents[0].as_str(), "Self" | "self") {
            return None;
        }
        let defs = self.krate.resolve(self.m, idents, 0);
        let def = defs
            .iter()
            .find(|d| !matches!(d, Def::Module(_)))
            .or(defs.first())?;
        Some(match def {
            Def::Local(module, name) => match self.public.canonical(def) {
                Some(path) => path.to_owned(),
                None => {
                    self.private = true;
                    self.krate.internal_path(*module, name)
                }
            },
            Def::Module(_) => self.public.canonical(def)?.to_owned(),
            Def::External(p) => p.clone(),
        })
    }
}

impl Resolver<'_> {
    /// `<T as Trait>::Assoc`: the trait part resolved, the associated part kept.
    fn visit_qualified(&mut self, tp: &mut syn::TypePath) {
        let Some(qself) = &mut tp.qself else {
            return;
        };
        self.visit_type_mut(&mut qself.ty);
        let position = qself.position;
        let mut trait_path = syn::Path {
            leading_colon: tp.path.leading_colon,
            segments: tp.path.segments.iter().take(position).cloned().collect(),
        };
        self.visit_path_mut(&mut trait_path);
        let mut rest: Vec<syn::PathSegment> =
            tp.path.segments.iter().skip(position).cloned().collect();
        for segment in &mut rest {
            self.visit_path_arguments_mut(&mut segment.arguments);
        }
        qself.position = trait_path.segments.len();
        tp.path.segments = trait_path.segments.into_iter().chain(rest).collect();
    }
}

impl VisitMut for Resolver<'_> {
    fn visit_type_path_mut(&mut self, tp: &mut syn::TypePath) {
        if tp.qself.is_some() {
            self.visit_qualified(tp);
        } else {
            self.visit_path_mut(&mut tp.path);
        }
    }

    fn visit_path_mut(&mut self, path: &mut syn::Path) {
        syn::visit_mut::visit_path_mut(self, path);
        if path.leading_colon.is_some() {
            return;
        }
        let idents: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let Some(absolute) = self.absolute(&idents) else {
            return;
        };
        if absolute == idents.join("::") {
            return;
        }
        let arguments: Vec<syn::PathArguments> =
            path.segments.iter().map(|s| s.arguments.clone()).collect();
        let mut segments: syn::punctuated::Punctuated<syn::PathSegment, syn::Token![::]> = absolute
            .split("::")
            .map(|s| syn::PathSegment::from(syn::Ident::new(s, proc_macro2::Span::call_site())))
            .collect();
        // The generic arguments of the segments as written stay on the last ones.
        let n = segments.len();
        let k = arguments.len().min(n);
        for (i, args) in arguments.into_iter().rev().take(k).enumerate() {
            segments[n - 1 - i].arguments = args;
        }
        path.segments = segments;
    }

    fn visit_type_mut(&mut self, ty: &mut syn::Type) {
        if let Some(expanded) = self.expand_private_alias(ty) {
            *ty = expanded;
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }

    // Attribute arguments and macro bodies are not rewritten.
    fn visit_attribute_mut(&mut self, _: &mut syn::Attribute) {}
}

impl Resolver<'_> {
    /// A type alias that is not public stands for what it names (`Result` for
    /// `std::result::Result<(), RuleError>`), since users cannot name it.
    fn expand_private_alias(&mut self, ty: &syn::Type) -> Option<syn::Type> {
        let syn::Type::Path(tp) = ty else {
            return None;
        };
        if tp.qself.is_some() {
            return None;
        }
        let idents: Vec<String> = tp
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        if idents.len() == 1 && self.generics.contains(&idents[0]) {
            return None;
        }
        let def = self
            .krate
            .resolve(self.m, &idents, 0)
            .into_iter()
            .find(|d| matches!(d, Def::Local(..)))?;
        if self.public.canonical(&def).is_some() {
            return None;
        }
        let Def::Local(m2, name) = &def else {
            return None;
        };
        let Some(syn::Item::Type(alias)) = self.krate.find_item(*m2, name) else {
            return None;
        };
        // The arguments as written, resolved here.
        let mut given: Vec<syn::Type> = match &tp.path.segments.last()?.arguments {
            syn::PathArguments::AngleBracketed(a) => a
                .args
                .iter()
                .filter_map(|arg| match arg {
                    syn::GenericArgument::Type(t) => Some(t.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for t in &mut given {
            self.visit_type_mut(t);
        }
        // The alias resolved where it is defined, its parameters kept.
        let mut there = Resolver {
            krate: self.krate,
            public: self.public,
            m: *m2,
            generics: generic_names(&[&alias.generics]),
            private: false,
        };
        let mut body = (*alias.ty).clone();
        there.visit_type_mut(&mut body);
        let mut substitute = BTreeMap::new();
        let params = alias.generics.params.iter().filter_map(|p| match p {
            syn::GenericParam::Type(t) => Some(t),
            _ => None,
        });
        for (i, param) in params.enumerate() {
            let value = match given.get(i) {
                Some(t) => t.clone(),
                None => {
                    let mut default = param.default.clone()?;
                    there.visit_type_mut(&mut default);
                    default
                }
            };
            substitute.insert(param.ident.to_string(), value);
        }
        Substitute(substitute).visit_type_mut(&mut body);
        Some(body)
    }
}

/// Replaces generic parameters by the types given for them.
struct Substitute(BTreeMap<String, syn::Type>);

impl VisitMut for Substitute {
    fn visit_type_mut(&mut self, ty: &mut syn::Type) {
        if let syn::Type::Path(tp) = ty {
            if tp.qself.is_none() && tp.path.segments.len() == 1 {
                if let Some(value) = self.0.get(&tp.path.segments[0].ident.to_string()) {
                    *ty = value.clone();
                    return;
                }
            }
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

fn generic_names(generics: &[&syn::Generics]) -> BTreeSet<String> {
    generics
        .iter()
        .flat_map(|g| g.params.iter())
        .filter_map(|p| match p {
            syn::GenericParam::Type(t) => Some(t.ident.to_string()),
            syn::GenericParam::Const(c) => Some(c.ident.to_string()),
            syn::GenericParam::Lifetime(_) => None,
        })
        .collect()
}

/// The attributes that change what a user may do with an item, resolved.
fn api_attrs(attrs: &[syn::Attribute], resolver: &mut Resolver<'_>) -> String {
    let mut out = String::new();
    for attr in attrs {
        let path = attr.path();
        if path.is_ident("derive") {
            let mut names: Vec<String> = attr
                .parse_args_with(
                    syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
                )
                .map(|p| {
                    p.into_iter()
                        .map(|mut path| {
                            resolver.visit_path_mut(&mut path);
                            show(&path)
                        })
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            let _ = write!(out, "#[derive({})] ", names.join(", "));
        } else if [
            "non_exhaustive",
            "must_use",
            "deprecated",
            "repr",
            "default",
        ]
        .iter()
        .any(|n| path.is_ident(n))
        {
            let _ = write!(out, "{} ", show(attr));
        }
    }
    out
}

/// `sig` of a function as a user calls it: receiver and argument names without `mut`.
fn signature(sig: &syn::Signature, path: &str, resolver: &mut Resolver<'_>) -> String {
    let mut sig = sig.clone();
    for input in sig.inputs.iter_mut() {
        match input {
            syn::FnArg::Receiver(r) => {
                if r.reference.is_none() {
                    r.mutability = None;
                }
            }
            syn::FnArg::Typed(t) => {
                if let syn::Pat::Ident(p) = &mut *t.pat {
                    p.mutability = None;
                }
            }
        }
    }
    resolver.visit_signature_mut(&mut sig);
    let mut out = String::new();
    if sig.constness.is_some() {
        out.push_str("const ");
    }
    if sig.asyncness.is_some() {
        out.push_str("async ");
    }
    if sig.unsafety.is_some() {
        out.push_str("unsafe ");
    }
    let inputs: Vec<String> = sig.inputs.iter().map(show).collect();
    let _ = write!(
        out,
        "fn {path}{}({})",
        show(&sig.generics),
        inputs.join(", ")
    );
    if let syn::ReturnType::Type(_, ty) = &sig.output {
        let _ = write!(out, " -> {}", show(ty));
    }
    if let Some(w) = &sig.generics.where_clause {
        let _ = write!(out, " {}", show_where(w));
    }
    out
}

type Line = (Vec<String>, String);

fn key(path: &str) -> Vec<String> {
    path.split("::").map(str::to_owned).collect()
}

fn keyed(path: &str, suffix: &str) -> Vec<String> {
    let mut k = key(path);
    k.push(suffix.to_owned());
    k
}

impl Crate {
    fn lines(&self) -> Result<Vec<Line>, String> {
        let public = self.public()?;
        let mut lines = Vec::new();
        for (alias, target) in &public.external {
            lines.push((key(alias), format!("pub use {alias} = {target}")));
        }
        for (def, paths) in &public.items {
            let canonical = &paths[0];
            for alias in &paths[1..] {
                lines.push((key(alias), format!("pub use {alias} = {canonical}")));
            }
            match def {
                Def::Module(_) => {
                    if canonical != &self.name {
                        lines.push((key(canonical), format!("pub mod {canonical}")));
                    }
                }
                Def::Local(m, name) => {
                    let item = self.find_item(*m, name).ok_or_else(|| {
                        format!("{canonical}: public, but its definition is not found")
                    })?;
                    self.item_lines(*m, item, canonical, &public, &mut lines)?;
                }
                Def::External(_) => {}
            }
        }
        self.impl_lines(&public, &mut lines);
        Ok(lines)
    }

    fn resolver<'a>(
        &'a self,
        public: &'a Public,
        m: usize,
        generics: &[&syn::Generics],
    ) -> Resolver<'a> {
        Resolver {
            krate: self,
            public,
            m,
            generics: generic_names(generics),
            private: false,
        }
    }

    fn item_lines(
        &self,
        m: usize,
        item: &syn::Item,
        path: &str,
        public: &Public,
        lines: &mut Vec<Line>,
    ) -> Result<(), String> {
        match item {
            syn::Item::Fn(f) => {
                let mut r = self.resolver(public, m, &[&f.sig.generics]);
                let attrs = api_attrs(&f.attrs, &mut r);
                lines.push((
                    key(path),
                    format!("{attrs}pub {}", signature(&f.sig, path, &mut r)),
                ));
            }
            syn::Item::Const(c) => {
                let mut r = self.resolver(public, m, &[]);
                let mut c = c.clone();
                r.visit_type_mut(&mut c.ty);
                r.visit_expr_mut(&mut c.expr);
                lines.push((
                    key(path),
                    format!("pub const {path}: {} = {}", show(&c.ty), show(&c.expr)),
                ));
            }
            syn::Item::Static(s) => {
                let mut r = self.resolver(public, m, &[]);
                let mut s = s.clone();
                r.visit_type_mut(&mut s.ty);
                lines.push((key(path), format!("pub static {path}: {}", show(&s.ty))));
            }
            syn::Item::Type(t) => {
                let mut r = self.resolver(public, m, &[&t.generics]);
                let mut t = t.clone();
                r.visit_type_mut(&mut t.ty);
                lines.push((
                    key(path),
                    format!("pub type {path}{} = {}", show(&t.generics), show(&t.ty)),
                ));
            }
            syn::Item::Struct(s) => {
                let mut r = self.resolver(public, m, &[&s.generics]);
                let attrs = api_attrs(&s.attrs, &mut r);
                let mut generics = s.generics.clone();
                r.visit_generics_mut(&mut generics);
                let where_clause = generics
                    .where_clause
                    .as_ref()
                    .map(|w| format!(" {}", show_where(w)))
                    .unwrap_or_default();
                match &s.fields {
                    syn::Fields::Named(named) => {
                        let private = named.named.iter().any(|f| !is_pub(&f.vis));
                        let note = if private {
                            " { /* private fields */ }"
                        } else {
                            ""
                        };
                        lines.push((
                            key(path),
                            format!(
                                "{attrs}pub struct {path}{}{where_clause}{note}",
                                show(&generics)
                            ),
                        ));
                        for field in named.named.iter().filter(|f| is_pub(&f.vis)) {
                            let mut ty = field.ty.clone();
                            r.visit_type_mut(&mut ty);
                            let name = field.ident.as_ref().expect("named").to_string();
                            lines.push((
                                key(&format!("{path}::{name}")),
                                format!("pub {path}::{name}: {}", show(&ty)),
                            ));
                        }
                    }
                    syn::Fields::Unnamed(unnamed) => {
                        let fields: Vec<String> = unnamed
                            .unnamed
                            .iter()
                            .map(|f| {
                                if is_pub(&f.vis) {
                                    let mut ty = f.ty.clone();
                                    r.visit_type_mut(&mut ty);
                                    format!("pub {}", show(&ty))
                                } else {
                                    "_".to_owned()
                                }
                            })
                            .collect();
                        lines.push((
                            key(path),
                            format!(
                                "{attrs}pub struct {path}{}({}){where_clause}",
                                show(&generics),
                                fields.join(", ")
                            ),
                        ));
                    }
                    syn::Fields::Unit => lines.push((
                        key(path),
                        format!("{attrs}pub struct {path}{}{where_clause}", show(&generics)),
                    )),
                }
            }
            syn::Item::Enum(e) => {
                let mut r = self.resolver(public, m, &[&e.generics]);
                let attrs = api_attrs(&e.attrs, &mut r);
                let mut generics = e.generics.clone();
                r.visit_generics_mut(&mut generics);
                lines.push((
                    key(path),
                    format!("{attrs}pub enum {path}{}", show(&generics)),
                ));
                for variant in &e.variants {
                    if hidden(&variant.attrs) {
                        continue;
                    }
                    let vattrs = api_attrs(&variant.attrs, &mut r);
                    let field = |f: &syn::Field, r: &mut Resolver<'_>| {
                        let mut ty = f.ty.clone();
                        r.visit_type_mut(&mut ty);
                        let marks: String = f
                            .attrs
                            .iter()
                            .filter(|a| a.path().is_ident("from") || a.path().is_ident("source"))
                            .map(|a| format!("{} ", show(a)))
                            .collect();
                        match &f.ident {
                            Some(name) => format!("{marks}{name}: {}", show(&ty)),
                            None => format!("{marks}{}", show(&ty)),
                        }
                    };
                    let fields = match &variant.fields {
                        syn::Fields::Named(n) => {
                            let all: Vec<String> =
                                n.named.iter().map(|f| field(f, &mut r)).collect();
                            format!(" {{ {} }}", all.join(", "))
                        }
                        syn::Fields::Unnamed(u) => {
                            let all: Vec<String> =
                                u.unnamed.iter().map(|f| field(f, &mut r)).collect();
                            format!("({})", all.join(", "))
                        }
                        syn::Fields::Unit => String::new(),
                    };
                    let discriminant = variant
                        .discriminant
                        .as_ref()
                        .map(|(_, e)| format!(" = {}", show(e)))
                        .unwrap_or_default();
                    let vpath = format!("{path}::{}", variant.ident);
                    lines.push((
                        key(&vpath),
                        format!("{vattrs}pub {vpath}{fields}{discriminant}"),
                    ));
                }
            }
            syn::Item::Trait(t) => {
                let mut r = self.resolver(public, m, &[&t.generics]);
                let mut t = t.clone();
                let attrs = api_attrs(&t.attrs, &mut r);
                r.visit_generics_mut(&mut t.generics);
                let supertraits = if t.supertraits.is_empty() {
                    String::new()
                } else {
                    for bound in t.supertraits.iter_mut() {
                        r.visit_type_param_bound_mut(bound);
                    }
                    format!(": {}", show(&t.supertraits))
                };
                let unsafety = if t.unsafety.is_some() { "unsafe " } else { "" };
                lines.push((
                    key(path),
                    format!(
                        "{attrs}pub {unsafety}trait {path}{}{supertraits}",
                        show(&t.generics)
                    ),
                ));
                for item in &t.items {
                    match item {
                        syn::TraitItem::Fn(f) if !hidden(&f.attrs) => {
                            let fpath = format!("{path}::{}", f.sig.ident);
                            let mut r = self.resolver(public, m, &[&t.generics, &f.sig.generics]);
                            let provided = if f.default.is_some() { " { .. }" } else { "" };
                            lines.push((
                                key(&fpath),
                                format!("{}{provided}", signature(&f.sig, &fpath, &mut r)),
                            ));
                        }
                        syn::TraitItem::Type(ty) if !hidden(&ty.attrs) => {
                            let tpath = format!("{path}::{}", ty.ident);
                            let bounds = if ty.bounds.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", show(&ty.bounds))
                            };
                            lines.push((key(&tpath), format!("type {tpath}{bounds}")));
                        }
                        syn::TraitItem::Const(c) if !hidden(&c.attrs) => {
                            let cpath = format!("{path}::{}", c.ident);
                            let mut ty = c.ty.clone();
                            r.visit_type_mut(&mut ty);
                            lines.push((key(&cpath), format!("const {cpath}: {}", show(&ty))));
                        }
                        _ => {}
                    }
                }
            }
            syn::Item::Macro(_) => {
                lines.push((key(path), format!("#[macro_export] macro_rules! {path}")));
            }
            other => {
                return Err(format!(
                    "{path}: the listing does not know this kind of item ({})",
                    show(other).chars().take(60).collect::<String>()
                ));
            }
        }
        Ok(())
    }

    /// Inherent methods and constants, and trait impls, of the listed types.
    fn impl_lines(&self, public: &Public, lines: &mut Vec<Line>) {
        for (m, module) in self.modules.iter().enumerate() {
            for item in &module.items {
                let syn::Item::Impl(imp) = item else {
                    continue;
                };
                if hidden(&imp.attrs) {
                    continue;
                }
                let syn::Type::Path(self_path) = &*imp.self_ty else {
                    continue;
                };
                let idents: Vec<String> = self_path
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect();
                let Some(def) = self
                    .resolve(m, &idents, 0)
                    .into_iter()
                    .find(|d| matches!(d, Def::Local(..)))
                else {
                    continue;
                };
                let Some(canonical) = public.canonical(&def) else {
                    continue;
                };
                let mut r = self.resolver(public, m, &[&imp.generics]);
                match &imp.trait_ {
                    None => {
                        let mut generics = imp.generics.clone();
                        r.visit_generics_mut(&mut generics);
                        let bounded = generics.params.iter().any(|p| match p {
                            syn::GenericParam::Type(t) => !t.bounds.is_empty(),
                            syn::GenericParam::Lifetime(l) => !l.bounds.is_empty(),
                            syn::GenericParam::Const(_) => true,
                        }) || generics.where_clause.is_some();
                        let context = if bounded {
                            let mut self_ty = (*imp.self_ty).clone();
                            r.visit_type_mut(&mut self_ty);
                            let where_clause = generics
                                .where_clause
                                .as_ref()
                                .map(|w| format!(" {}", show_where(w)))
                                .unwrap_or_default();
                            format!(
                                " (in impl{} {}{where_clause})",
                                show(&generics),
                                show(&self_ty)
                            )
                        } else {
                            String::new()
                        };
                        for member in &imp.items {
                            match member {
                                syn::ImplItem::Fn(f) if is_pub(&f.vis) && !hidden(&f.attrs) => {
                                    let fpath = format!("{canonical}::{}", f.sig.ident);
                                    let mut r =
                                        self.resolver(public, m, &[&imp.generics, &f.sig.generics]);
                                    let attrs = api_attrs(&f.attrs, &mut r);
                                    lines.push((
                                        key(&fpath),
                                        format!(
                                            "{attrs}pub {}{context}",
                                            signature(&f.sig, &fpath, &mut r)
                                        ),
                                    ));
                                }
                                syn::ImplItem::Const(c) if is_pub(&c.vis) && !hidden(&c.attrs) => {
                                    let cpath = format!("{canonical}::{}", c.ident);
                                    let mut c = c.clone();
                                    r.visit_type_mut(&mut c.ty);
                                    r.visit_expr_mut(&mut c.expr);
                                    lines.push((
                                        key(&cpath),
                                        format!(
                                            "pub const {cpath}: {} = {}{context}",
                                            show(&c.ty),
                                            show(&c.expr)
                                        ),
                                    ));
                                }
                                _ => {}
                            }
                        }
                    }
                    Some((negative, trait_path, _)) => {
                        let mut imp = imp.clone();
                        r.visit_generics_mut(&mut imp.generics);
                        let mut trait_path = trait_path.clone();
                        r.visit_path_mut(&mut trait_path);
                        r.visit_type_mut(&mut imp.self_ty);
                        let where_clause = imp
                            .generics
                            .where_clause
                            .as_ref()
                            .map(|w| format!(" {}", show_where(w)))
                            .unwrap_or_default();
                        let mut assoc = Vec::new();
                        for member in &mut imp.items {
                            if let syn::ImplItem::Type(t) = member {
                                r.visit_type_mut(&mut t.ty);
                                assoc.push(format!("type {} = {};", t.ident, show(&t.ty)));
                            }
                        }
                        let assoc = if assoc.is_empty() {
                            String::new()
                        } else {
                            format!(" {{ {} }}", assoc.join(" "))
                        };
                        let not = if negative.is_some() { "!" } else { "" };
                        if r.private {
                            // Users cannot name the trait or a type of it.
                            continue;
                        }
                        lines.push((
                            keyed(canonical, "~impl"),
                            format!(
                                "impl{} {not}{} for {}{where_clause}{assoc}",
                                show(&imp.generics),
                                show(&trait_path),
                                show(&imp.self_ty)
                            ),
                        ));
                    }
                }
            }
        }
    }
}
