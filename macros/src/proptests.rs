//! Property tests: no argument list, however hostile, panics the attribute. Each case runs the
//! whole pipeline (`args::parse`, `validate::validate`, `expand`) on `proc_macro2` tokens, as
//! the compiler would hand them over, and checks what a user sees: either no error and a
//! service description, or `compile_error!`s, and in both cases their function still emitted.

use std::str::FromStr;

use proc_macro2::TokenStream;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::errors::Errors;
use crate::{args, attribute, validate};

/// The function the attribute sits on in every case.
const ITEM: &str = "async fn serve_it(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, app()).await
}";

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

struct Outcome {
    output: String,
    messages: Vec<String>,
}

/// Runs the attribute on `args`; `None` when the text does not even lex as Rust tokens (the
/// compiler would never call the macro then).
fn run(args: &str) -> Option<Outcome> {
    let tokens = TokenStream::from_str(args).ok()?;
    let item = TokenStream::from_str(ITEM).unwrap();
    let mut errors = Errors::default();
    let parsed = args::parse(tokens.clone(), &mut errors);
    let _service = validate::validate(parsed, &mut errors);
    let output = attribute(tokens, item).to_string();
    Some(Outcome {
        output,
        messages: errors.messages(),
    })
}

/// What every outcome must look like.
fn check(args: &str, o: &Outcome) -> Result<(), TestCaseError> {
    prop_assert!(
        o.output.contains("fn serve_it"),
        "the user's function is gone for {args:?}: {}",
        o.output
    );
    if o.messages.is_empty() {
        prop_assert!(
            o.output.contains("Service :: builder"),
            "no error, but no service for {args:?}: {}",
            o.output
        );
        prop_assert!(!o.output.contains("compile_error"), "{}", o.output);
    } else {
        prop_assert!(
            o.output.contains("compile_error"),
            "errors {:?} not reported for {args:?}",
            o.messages
        );
        for m in &o.messages {
            prop_assert!(!m.trim().is_empty(), "an empty message for {args:?}");
        }
    }
    Ok(())
}

/// Source text: anything, and text made of the characters arguments are made of.
fn source() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,80}",
        "[a-z_=,\"\\[\\]() :/.0-9#r!-]{0,80}",
        proptest::collection::vec(
            prop::sample::select(
                KEYWORDS
                    .iter()
                    .copied()
                    .chain([
                        "=", "==", ",", ";", "(", ")", "[", "]", "{", "}", "\"x\"", "\"\"",
                        "\"10s\"", "\"/p\"", "true", "1", "-1", "1.5", "'c'", "b\"x\"", "r#\"x\"#",
                        "r#type", "::", "a::b", "#", "!", "@", "$", "..", "=>", "'a", "1e99", "0x",
                        "self", "_",
                    ])
                    .collect::<Vec<_>>(),
            ),
            0..24,
        )
        .prop_map(|parts| parts.join(" ")),
    ]
}

#[test]
fn arbitrary_source_text_never_panics() {
    runner(1024)
        .run(&source(), |text| {
            if let Some(o) = run(&text) {
                check(&text, &o)?;
            }
            Ok(())
        })
        .unwrap();
}

/// A Rust string literal holding `s` (escaped as `{:?}` does, which Rust reads back).
fn lit(s: &str) -> String {
    format!("{s:?}")
}

/// Text for string values: near-valid values of every argument, and anything.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "cool_app",
            "a b",
            "/oops",
            "oops",
            ":8080",
            "example.com/api",
            "*.x.com:8080/p",
            "/p?q",
            "/p#f",
            "/p\"q",
            "10s",
            "0s",
            "1ns",
            "999ms",
            "1m",
            "59s",
            "1h",
            "2562047h",
            "99999999999999999999y",
            "1.5s",
            "-1s",
            "10",
            "s",
            "/health",
            "health",
            "/h h",
            "consul-x",
            "é",
            "\u{0}",
            "\t",
            "\u{202e}",
        ])
        .prop_map(str::to_owned),
        ".{0,12}",
        "[a-zA-Z0-9_-]{60,70}",
        "[0-9]{1,25}(ns|us|ms|s|m|h|d|y)?",
    ]
}

/// A value of any shape an argument might be given.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        text().prop_map(|s| lit(&s)),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("1.5".to_owned()),
        Just("'c'".to_owned()),
        Just("b\"bytes\"".to_owned()),
        text().prop_map(|s| format!("r#\"{}\"#", s.replace(['"', '\r'], ""))),
        Just("db::ready".to_owned()),
        Just("::a::b<c>".to_owned()),
        Just("r#type".to_owned()),
        Just("{}".to_owned()),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(", "))),
            proptest::collection::vec(inner, 0..3).prop_map(|v| format!("({})", v.join(", "))),
        ]
    })
}

use crate::args::KEYWORDS;

/// One argument: a keyword (or not), a separator (right or wrong), a value.
fn argument() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        4 => prop::sample::select(&KEYWORDS[..]).prop_map(str::to_owned),
        1 => "[a-z_]{1,10}",
        1 => Just("Name".to_owned()),
        1 => Just("\"name\"".to_owned()),
    ];
    let sep = prop::sample::select(vec![" = ", " = ", " = ", " ", " == ", ": ", " = = "]);
    let meta_pair = (
        prop_oneof![
            "[a-z_]{1,8}",
            text().prop_map(|s| lit(&s)),
            Just("r#type".to_owned()),
            Just("1".to_owned()),
        ],
        prop::sample::select(vec![" = ", " : ", " "]),
        value(),
    )
        .prop_map(|(k, s, v)| format!("{k}{s}{v}"));
    prop_oneof![
        6 => (key, sep, value()).prop_map(|(k, s, v)| format!("{k}{s}{v}")),
        1 => proptest::collection::vec(meta_pair, 0..5)
            .prop_map(|pairs| format!("meta({})", pairs.join(", "))),
        1 => prop::sample::select(&KEYWORDS[..]).prop_map(str::to_owned),
    ]
}

/// A comma-separated list of arguments, sometimes with a trailing or doubled comma.
fn arguments() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(argument(), 0..8),
        prop::sample::select(vec![", ", ", ", ", ", ",, ", " "]),
        prop::sample::select(vec!["", "", ",", ",,"]),
    )
        .prop_map(|(args, sep, tail)| format!("{}{tail}", args.join(sep)))
}

#[test]
fn near_valid_argument_lists_never_panic() {
    runner(1024)
        .run(&arguments(), |args| {
            let o = run(&args).expect("generated arguments lex");
            check(&args, &o)
        })
        .unwrap();
}

/// A valid argument list, and what the builder call must then hold.
fn valid() -> impl Strategy<Value = (String, Vec<String>)> {
    // A DNS label's shape: no `-` at either end.
    let name = "[a-zA-Z0-9_]|[a-zA-Z0-9_][a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_]";
    let prefix = prop::option::of("(/[a-z0-9._~-]{0,8}){1,3}");
    // Printable, spaces inside only.
    let tags = prop::option::of(proptest::collection::vec("[!-~]([ -~]{0,10}[!-~])?", 0..4));
    let meta = prop::option::of(proptest::collection::btree_map(
        "[a-z][a-zA-Z0-9_]{0,20}",
        "[ -~]{0,30}",
        0..5,
    ));
    // Interval 2..60 s and a timeout below it; deregister_after 1..120 min.
    let timing = prop::option::of((2u64..60, 1u64..=100, 1u64..120))
        .prop_map(|t| t.map(|(i, pct, d)| (i, (i * 1000 * pct / 101).max(1), d)));
    let flags = (any::<bool>(), any::<bool>());
    (name, prefix, tags, meta, timing, flags).prop_map(
        |(name, prefix, tags, meta, timing, (strip, fail_fast))| {
            let mut args = vec![format!("name = {}", lit(&name))];
            let mut expect = vec![lit(&name)];
            if let Some(p) = &prefix {
                args.push(format!("prefix = {}", lit(p)));
                expect.push(lit(p));
                if strip {
                    args.push("strip = true".into());
                }
            }
            if let Some(tags) = &tags {
                let list: Vec<String> = tags.iter().map(|t| lit(t)).collect();
                args.push(format!("tags = [{}]", list.join(", ")));
                expect.extend(list);
            }
            if let Some(meta) = &meta {
                let pairs: Vec<String> = meta
                    .iter()
                    .map(|(k, v)| format!("{} = {}", lit(k), lit(v)))
                    .collect();
                args.push(format!("meta({})", pairs.join(", ")));
                expect.extend(meta.values().map(|v| lit(v)));
            }
            if let Some((interval, timeout_ms, dereg)) = timing {
                args.push(format!("interval = \"{interval}s\""));
                args.push(format!("timeout = \"{timeout_ms}ms\""));
                args.push(format!("deregister_after = \"{dereg}m\""));
            }
            args.push(format!("fail_fast = {fail_fast}"));
            (args.join(", "), expect)
        },
    )
}

#[test]
fn valid_argument_lists_expand_without_errors() {
    runner(512)
        .run(&valid(), |(args, expect)| {
            let o = run(&args).expect("valid arguments lex");
            prop_assert!(o.messages.is_empty(), "{args}: {:?}", o.messages);
            check(&args, &o)?;
            // Every value reaches the builder call, as the literal the user wrote.
            for lit in &expect {
                let lit = TokenStream::from_str(lit).unwrap().to_string();
                prop_assert!(o.output.contains(&lit), "{lit} missing from {}", o.output);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_function_bodies_never_panic() {
    let body = prop_oneof![
        source(),
        proptest::collection::vec(
            prop::sample::select(vec![
                "axum::serve(l, a).await",
                "::axum::serve(l)",
                "discoverable::serve(l, a, b)",
                "discoverable::serve(s, l, a)",
                "serve(l, a)",
                "let x = 1;",
                "return;",
                "{",
                "}",
                "async {",
                "move ||",
                "tokio::select! {",
                "macro_rules! m { () => {} }",
                "m!(axum::serve(l, a))",
                ";",
                "?",
                ".await",
                "(",
                ")",
            ]),
            0..12,
        )
        .prop_map(|p| p.join(" ")),
    ];
    runner(512)
        .run(&body, |body| {
            let Ok(item) = TokenStream::from_str(&format!("async fn f() {{ {body} }}")) else {
                return Ok(());
            };
            let args = TokenStream::from_str("name = \"svc\"").unwrap();
            let out = attribute(args, item).to_string();
            prop_assert!(out.contains("fn f"), "{body}: {out}");
            Ok(())
        })
        .unwrap();
}
