//! `?filter=`: the part of Consul's filter language (go-bexpr) that service discovery uses.
//!
//! Expressions are evaluated against the JSON of each result entry, so a selector is a path of
//! field names as they appear in the answer: `Service.Tags contains "v1"`,
//! `Service.Meta.version == "2"`, `ServiceID == "web-1"`, `"primary" in ServiceTags`,
//! `Service.Tags is not empty`, combined with `and`, `or`, `not` and parentheses. Values are
//! double-quoted or backquoted strings, numbers, `true`/`false`, or bare words. A selector that
//! does not exist in an entry matches nothing (and `!=` / `is empty` hold). `matches` (regular
//! expressions) is not supported and, like any syntax error, answers `400`.
//!
//! A limit of this agent, not of Consul: parentheses and `not` nest at most [`MAX_DEPTH`] deep
//! and an expression has at most [`MAX_TOKENS`] tokens; beyond that the answer is `400`. Parsing,
//! evaluating and dropping an expression recurse over its tree, so without a bound a hostile
//! filter would overflow the stack and abort the whole agent.

use serde_json::Value;

/// Deepest nesting of parentheses and `not`.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most tokens in one expression (it bounds the depth of `and`/`or` chains too).
pub(crate) const MAX_TOKENS: usize = 1024;

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match {
        selector: Vec<String>,
        op: Op,
        value: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Equal,
    NotEqual,
    Contains,
    NotContains,
    IsEmpty,
    IsNotEmpty,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Sym(&'static str),
}

fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                tokens.push(Token::Sym(if c == '(' { "(" } else { ")" }));
            }
            '=' | '!' => {
                chars.next();
                if chars.next_if(|&(_, n)| n == '=').is_none() {
                    return Err(format!("1:{} ({i}): expected \"{c}=\"", i + 1));
                }
                tokens.push(Token::Sym(if c == '=' { "==" } else { "!=" }));
            }
            '"' | '`' => {
                chars.next();
                let mut s = String::new();
                let mut closed = false;
                while let Some((_, n)) = chars.next() {
                    match n {
                        _ if n == c => {
                            closed = true;
                            break;
                        }
                        '\\' if c == '"' => match chars.next() {
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 't')) => s.push('\t'),
                            Some((_, e)) => s.push(e),
                            None => break,
                        },
                        _ => s.push(n),
                    }
                }
                if !closed {
                    return Err(format!("1:{} ({i}): unterminated string", i + 1));
                }
                tokens.push(Token::Str(s));
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':') => {
                let mut s = String::new();
                while let Some((_, n)) = chars.next_if(|&(_, n)| {
                    n.is_alphanumeric() || matches!(n, '_' | '-' | '.' | '/' | ':')
                }) {
                    s.push(n);
                }
                tokens.push(Token::Word(s));
            }
            other => return Err(format!("1:{} ({i}): unexpected character {other:?}", i + 1)),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Parentheses and `not` open around the current position.
    depth: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        self.peek_word_at(self.pos, word)
    }

    fn peek_word_at(&self, pos: usize, word: &str) -> bool {
        matches!(self.tokens.get(pos), Some(Token::Word(w)) if w == word)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_word("not") {
            self.pos += 1;
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if self.tokens.get(self.pos) == Some(&Token::Sym("(")) {
            self.pos += 1;
            self.enter()?;
            let inner = self.or()?;
            self.depth -= 1;
            if self.next() != Some(Token::Sym(")")) {
                return Err("expected \")\"".into());
            }
            return Ok(inner);
        }
        self.matcher()
    }

    /// One level deeper, refused beyond [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "expression nested too deeply (more than {MAX_DEPTH} levels of parentheses and not)"
            ));
        }
        Ok(())
    }

    fn matcher(&mut self) -> Result<Expr, String> {
        let first = self.next().ok_or("unexpected end of expression")?;
        // `<value> in <selector>` / `<value> not in <selector>`
        let negated_in = self.peek_word("not") && self.peek_word_at(self.pos + 1, "in");
        if self.peek_word("in") || negated_in {
            self.pos += if negated_in { 2 } else { 1 };
            let value = literal(first)?;
            let selector = self.selector()?;
            let op = if negated_in {
                Op::NotContains
            } else {
                Op::Contains
            };
            return Ok(Expr::Match {
                selector,
                op,
                value,
            });
        }
        let selector = match first {
            Token::Word(w) => split_selector(&w)?,
            other => return Err(format!("expected a selector, found {other:?}")),
        };
        let op = match self.next() {
            Some(Token::Sym("==")) => Op::Equal,
            Some(Token::Sym("!=")) => Op::NotEqual,
            Some(Token::Word(w)) if w == "contains" => Op::Contains,
            Some(Token::Word(w)) if w == "not" && self.peek_word("contains") => {
                self.pos += 1;
                Op::NotContains
            }
            Some(Token::Word(w)) if w == "is" => {
                let not = self.peek_word("not");
                if not {
                    self.pos += 1;
                }
                if !self.peek_word("empty") {
                    return Err("expected \"empty\" after \"is\"".into());
                }
                self.pos += 1;
                let op = if not { Op::IsNotEmpty } else { Op::IsEmpty };
                return Ok(Expr::Match {
                    selector,
                    op,
                    value: String::new(),
                });
            }
            Some(Token::Word(w)) if w == "matches" || w == "not" => {
                return Err("\"matches\" is not supported by devagent".into());
            }
            other => {
                return Err(format!(
                    "expected one of ==, !=, contains, not contains, is empty, is not empty; found {other:?}"
                ));
            }
        };
        let value = literal(self.next().ok_or("expected a value")?)?;
        Ok(Expr::Match {
            selector,
            op,
            value,
        })
    }

    fn selector(&mut self) -> Result<Vec<String>, String> {
        match self.next() {
            Some(Token::Word(w)) => split_selector(&w),
            other => Err(format!("expected a selector, found {other:?}")),
        }
    }
}

fn literal(t: Token) -> Result<String, String> {
    match t {
        Token::Str(s) | Token::Word(s) => Ok(s),
        Token::Sym(s) => Err(format!("expected a value, found {s:?}")),
    }
}

fn split_selector(w: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = w.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        return Err(format!("invalid selector {w:?}"));
    }
    Ok(parts)
}

/// Parses a filter; the error is the `400` text.
pub(crate) fn parse(input: &str) -> Result<Expr, String> {
    let fail = |e: String| format!("Failed to create boolean expression evaluator: {e}");
    let tokens = tokenize(input).map_err(fail)?;
    if tokens.is_empty() {
        return Err(fail("empty expression".into()));
    }
    if tokens.len() > MAX_TOKENS {
        return Err(fail(format!(
            "expression too long (more than {MAX_TOKENS} tokens)"
        )));
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = p.or().map_err(fail)?;
    if p.pos < p.tokens.len() {
        return Err(fail(format!("unexpected {:?}", p.tokens[p.pos])));
    }
    Ok(expr)
}

fn resolve<'a>(v: &'a Value, selector: &[String]) -> Option<&'a Value> {
    selector.iter().try_fold(v, |v, key| v.get(key))
}

fn scalar_eq(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Bool(b) => want.parse::<bool>().is_ok_and(|w| w == *b),
        Value::Number(n) => want.parse::<f64>().is_ok_and(|w| Some(w) == n.as_f64()),
        _ => false,
    }
}

impl Expr {
    /// Whether `entry` (one result, as JSON) matches.
    pub(crate) fn matches(&self, entry: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.matches(entry) && b.matches(entry),
            Expr::Or(a, b) => a.matches(entry) || b.matches(entry),
            Expr::Not(e) => !e.matches(entry),
            Expr::Match {
                selector,
                op,
                value,
            } => {
                let found = resolve(entry, selector);
                let contains = || match found {
                    Some(Value::Array(items)) => items.iter().any(|i| scalar_eq(i, value)),
                    Some(Value::Object(map)) => map.contains_key(value),
                    Some(Value::String(s)) => s.contains(value.as_str()),
                    _ => false,
                };
                let empty = || match found {
                    None | Some(Value::Null) => true,
                    Some(Value::String(s)) => s.is_empty(),
                    Some(Value::Array(a)) => a.is_empty(),
                    Some(Value::Object(o)) => o.is_empty(),
                    Some(_) => false,
                };
                match op {
                    Op::Equal => found.is_some_and(|f| scalar_eq(f, value)),
                    Op::NotEqual => !found.is_some_and(|f| scalar_eq(f, value)),
                    Op::Contains => contains(),
                    Op::NotContains => !contains(),
                    Op::IsEmpty => empty(),
                    Op::IsNotEmpty => !empty(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hostile_nesting_and_length_are_refused_not_overflowed() {
        let nested = |n: usize| format!("{}Service.Port == 1{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        let e = parse(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert!(
            e.starts_with(
                "Failed to create boolean expression evaluator: expression nested too deeply"
            ),
            "{e}"
        );
        assert!(parse(&nested(1_000_000)).is_err());
        let nots = |n: usize| format!("{}a == 1", "not ".repeat(n));
        assert!(parse(&nots(MAX_DEPTH)).is_ok());
        assert!(parse(&nots(MAX_DEPTH + 1)).is_err());
        let chain = |n: usize| vec!["a == 1"; n].join(" and ");
        assert!(parse(&chain(MAX_TOKENS / 4)).is_ok());
        let e = parse(&chain(100_000)).unwrap_err();
        assert!(e.contains("expression too long"), "{e}");
        // Balanced depth is counted per branch, not in total.
        let wide = vec![nested(MAX_DEPTH / 2); 4].join(" or ");
        assert!(parse(&wide).is_ok());
    }

    fn entry() -> Value {
        json!({"Service": {"ID": "web-1", "Tags": ["v1", "primary"], "Meta": {"version": "2"},
               "Port": 8080, "EnableTagOverride": false}, "Checks": []})
    }

    fn eval(f: &str) -> bool {
        parse(f).unwrap().matches(&entry())
    }

    #[test]
    fn evaluates_the_common_forms() {
        assert!(eval(r#"Service.Tags contains "v1""#));
        assert!(!eval(r#"Service.Tags contains "v2""#));
        assert!(eval(r#"Service.Tags not contains "v2""#));
        assert!(eval(r#"Service.Meta.version == "2""#));
        assert!(eval(r#"Service.ID == "web-1""#));
        assert!(eval(r#"Service.ID != "web-2""#));
        assert!(eval(r#""primary" in Service.Tags"#));
        assert!(eval(r#""x" not in Service.Tags"#));
        assert!(eval("Service.Port == 8080"));
        assert!(eval("Service.EnableTagOverride == false"));
        assert!(eval("Checks is empty and Service.Tags is not empty"));
        assert!(eval(r#"not (Service.ID == "a" or Service.ID == "b")"#));
        assert!(eval("Service.Tags contains primary"));
        assert!(eval("Service.Meta contains version"));
        assert!(!eval(r#"Service.Missing == "x""#));
        assert!(eval(r#"Service.Missing != "x""#));
    }

    #[test]
    fn rejects_what_it_cannot_parse() {
        for bad in [
            "",
            "Service.ID ==",
            "Service.ID = \"x\"",
            "(Service.ID == \"x\"",
            "Service.ID matches \"x.*\"",
            "Service.ID == \"x",
            "Service..ID == \"x\"",
            "Service.ID == \"x\" extra",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.starts_with("Failed to create boolean expression evaluator: "),
                "{bad}: {err}"
            );
        }
    }
}
