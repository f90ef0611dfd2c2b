//! The filter grammar of go-bexpr 0.1.2, parsed as its generated (pigeon) parser parses it, so
//! that errors read as Consul's: the position of the farthest failure and what was expected
//! there (`1:16 (15): no match found, expected: "-", "0", ... or [a-zA-Z]`), or the grammar's
//! own messages (`1:9 (8): rule "grouping": Unmatched parentheses`).
//!
//! The parser follows the grammar rule by rule. It differs from the generated one in cost only:
//! rules that backtracking re-parses at the same position (`OrExpression`, `AndExpression`,
//! `NotExpression`) are remembered, which keeps nested parentheses linear where Consul's
//! parser takes exponential time, and chains of `and`, `or` and `not` are parsed in loops. The
//! results and the recorded failures are the same: a failure at a position already recorded,
//! or an error already reported, changes nothing in the final message.
//!
//! Only parentheses nest by recursion; beyond [`MAX_DEPTH`] levels the parse stops with
//! [`Failure::TooDeep`].

use std::collections::HashMap;

use super::gostr;

/// Deepest nesting of parentheses.
pub(crate) const MAX_DEPTH: usize = 64;

/// A parsed expression (go-bexpr's AST; `and`/`or` chains flattened).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Match(Match),
}

/// A match expression: a selector, an operator and, except for emptiness, a raw value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Match {
    pub(crate) selector: Vec<String>,
    pub(crate) op: Op,
    pub(crate) value: Option<String>,
}

/// go-bexpr's match operators (`contains` is `In` with the operands swapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Equal,
    NotEqual,
    In,
    NotIn,
    IsEmpty,
    IsNotEmpty,
    Matches,
    NotMatches,
}

impl Op {
    /// The operator's name in go-bexpr's messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Equal => "Equal",
            Op::NotEqual => "Not Equal",
            Op::In => "In",
            Op::NotIn => "Not In",
            Op::IsEmpty => "Is Empty",
            Op::IsNotEmpty => "Is Not Empty",
            Op::Matches => "Matches",
            Op::NotMatches => "Not Matches",
        }
    }
}

/// Why a filter did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The parser's message, as go-bexpr words it.
    Syntax(String),
    /// Parentheses nested deeper than [`MAX_DEPTH`]: a limit of this agent.
    TooDeep,
}

/// Parses a filter expression.
pub(crate) fn parse(input: &str) -> Result<Expr, Failure> {
    let mut p = Parser {
        src: input,
        pos: 0,
        invert: false,
        max_fail: 0,
        expected: Vec::new(),
        errors: Vec::new(),
        memo: HashMap::new(),
        depth: 0,
        too_deep: false,
        lines: None,
    };
    let parsed = p.input();
    if p.too_deep {
        return Err(Failure::TooDeep);
    }
    if !p.errors.is_empty() {
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<&String> = p.errors.iter().filter(|e| seen.insert(*e)).collect();
        return Err(Failure::Syntax(
            unique
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        ));
    }
    match parsed {
        Some(e) => Ok(e),
        None => Err(Failure::Syntax(p.no_match())),
    }
}

/// The rules whose results are remembered per position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Rule {
    Or,
    And,
    Not,
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the current character.
    pos: usize,
    /// Inside an odd number of `!` predicates: failures record successes, prefixed `!`.
    invert: bool,
    /// The farthest position a match failed at, and what was expected there.
    max_fail: usize,
    expected: Vec<String>,
    /// Errors the grammar's code blocks and actions reported, formatted.
    errors: Vec<String>,
    memo: HashMap<(Rule, usize, bool), Option<(Expr, usize)>>,
    depth: usize,
    too_deep: bool,
    /// Where lines start and characters are, once an error needs a position.
    lines: Option<Lines>,
}

/// Line and column lookups: an input may hold thousands of errors.
struct Lines {
    /// Byte offsets at which lines start.
    starts: Vec<usize>,
    /// For each byte offset, the characters before it.
    chars_before: Vec<usize>,
}

impl Lines {
    fn new(src: &str) -> Lines {
        let mut starts = vec![0];
        let mut chars_before = Vec::with_capacity(src.len() + 1);
        let mut n = 0;
        for (i, c) in src.char_indices() {
            chars_before.resize(i + 1, n);
            n += 1;
            if c == '\n' {
                starts.push(i + 1);
            }
        }
        chars_before.resize(src.len() + 1, n);
        Lines {
            starts,
            chars_before,
        }
    }

    /// The line (from 1) and column (from 1, in characters) of `offset`.
    fn at(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|s| *s <= offset);
        let start = self.starts[line - 1];
        (
            line,
            self.chars_before[offset] - self.chars_before[start] + 1,
        )
    }
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

impl Parser<'_> {
    // ----- positions and failures -----

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    /// Line, column (in characters) and offset, as the generated parser counts them.
    fn position(&mut self, offset: usize) -> String {
        let lines = self.lines.get_or_insert_with(|| Lines::new(self.src));
        let (mut line, mut col) = lines.at(offset);
        if self.src[offset..].starts_with('\n') {
            line += 1;
            col = 0;
        }
        format!("{line}:{col} ({offset})")
    }

    /// Records that `want` failed (or, inverted, matched) at `at`.
    fn fail_at(&mut self, failed: bool, at: usize, want: &str) {
        if failed != self.invert {
            return;
        }
        if at < self.max_fail {
            return;
        }
        if at > self.max_fail {
            self.max_fail = at;
            self.expected.clear();
        }
        let want = if self.invert {
            format!("!{want}")
        } else {
            want.to_owned()
        };
        self.expected.push(want);
    }

    /// An error of a rule's code block or action, at `at`.
    fn error_at(&mut self, at: usize, rule: &str, message: &str) {
        let text = format!("{}: rule {rule}: {message}", self.position(at));
        self.errors.push(text);
    }

    fn error(&mut self, rule: &str, message: &str) {
        self.error_at(self.pos, rule, message);
    }

    /// The message when nothing matched: what was expected at the farthest failure, sorted,
    /// `EOF` last.
    fn no_match(&mut self) -> String {
        let mut set: Vec<String> = self.expected.clone();
        set.sort();
        set.dedup();
        let eof = set.iter().any(|w| w == "!.");
        set.retain(|w| w != "!.");
        if eof {
            set.push("EOF".into());
        }
        let list = match set.len() {
            0 => String::new(),
            1 => set[0].clone(),
            n => format!("{} or {}", set[..n - 1].join(", "), set[n - 1]),
        };
        format!(
            "{}: no match found, expected: {list}",
            self.position(self.max_fail)
        )
    }

    // ----- matchers -----

    /// A literal; `quoted` is how the grammar's expectation shows it.
    fn lit(&mut self, text: &str, quoted: &str) -> bool {
        let start = self.pos;
        if self.src[start..].starts_with(text) {
            self.pos += text.len();
            self.fail_at(true, start, quoted);
            true
        } else {
            self.fail_at(false, start, quoted);
            false
        }
    }

    /// One character of a class; `shown` is the class as the grammar writes it.
    fn class(&mut self, shown: &str, member: fn(char) -> bool) -> bool {
        let start = self.pos;
        match self.peek() {
            Some(c) if member(c) => {
                self.pos += c.len_utf8();
                self.fail_at(true, start, shown);
                true
            }
            _ => {
                self.fail_at(false, start, shown);
                false
            }
        }
    }

    /// `.`: any character.
    fn any(&mut self) -> bool {
        self.class(".", |_| true)
    }

    /// `!e`: whether `e` fails here; consumes nothing.
    fn not(&mut self, e: impl FnOnce(&mut Self) -> bool) -> bool {
        let start = self.pos;
        self.invert = !self.invert;
        let matched = e(self);
        self.invert = !self.invert;
        self.pos = start;
        !matched
    }

    /// `&e`: whether `e` matches here; consumes nothing.
    fn and_predicate(&mut self, e: impl FnOnce(&mut Self) -> bool) -> bool {
        let start = self.pos;
        let matched = e(self);
        self.pos = start;
        matched
    }

    /// `EOF <- !.`
    fn eof(&mut self) -> bool {
        self.not(Self::any)
    }

    /// `_ "whitespace" <- [ \t\r\n]+`
    fn ws(&mut self) -> bool {
        if !self.class("[ \\t\\r\\n]", is_ws) {
            return false;
        }
        while self.class("[ \\t\\r\\n]", is_ws) {}
        true
    }

    /// `_?`
    fn opt_ws(&mut self) {
        self.ws();
    }

    /// A sequence: runs `e`, back where it started if it fails.
    fn seq<T>(&mut self, e: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let start = self.pos;
        let r = e(self);
        if r.is_none() {
            self.pos = start;
        }
        r
    }

    fn remembered(
        &mut self,
        rule: Rule,
        parse: impl FnOnce(&mut Self) -> Option<Expr>,
    ) -> Option<Expr> {
        if self.too_deep {
            return None;
        }
        let key = (rule, self.pos, self.invert);
        if let Some(known) = self.memo.get(&key) {
            return known.clone().map(|(e, end)| {
                self.pos = end;
                e
            });
        }
        let r = parse(self);
        self.memo.insert(key, r.clone().map(|e| (e, self.pos)));
        r
    }

    // ----- rules -----

    /// `Input <- _? "(" _? OrExpression _? ")" _? EOF / _? OrExpression _? EOF`
    fn input(&mut self) -> Option<Expr> {
        let first = self.seq(|p| {
            p.opt_ws();
            if !p.lit("(", "\"(\"") {
                return None;
            }
            p.opt_ws();
            let e = p.nested(Self::or_expr)?;
            p.opt_ws();
            if !p.lit(")", "\")\"") {
                return None;
            }
            p.opt_ws();
            p.eof().then_some(e)
        });
        if first.is_some() || self.too_deep {
            return first;
        }
        self.seq(|p| {
            p.opt_ws();
            let e = p.or_expr()?;
            p.opt_ws();
            p.eof().then_some(e)
        })
    }

    /// `e` one level of parentheses deeper, refused beyond [`MAX_DEPTH`].
    fn nested(&mut self, e: fn(&mut Self) -> Option<Expr>) -> Option<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.too_deep = true;
        }
        let r = e(self);
        self.depth -= 1;
        r
    }

    /// `OrExpression <- AndExpression _ "or" _ OrExpression / AndExpression`
    fn or_expr(&mut self) -> Option<Expr> {
        self.remembered(Rule::Or, |p| {
            p.chain(Self::and_expr, "or", "\"or\"").map(|mut items| {
                if items.len() == 1 {
                    items.remove(0)
                } else {
                    Expr::Or(items)
                }
            })
        })
    }

    /// `AndExpression <- NotExpression _ "and" _ AndExpression / NotExpression`
    fn and_expr(&mut self) -> Option<Expr> {
        self.remembered(Rule::And, |p| {
            p.chain(Self::not_expr, "and", "\"and\"").map(|mut items| {
                if items.len() == 1 {
                    items.remove(0)
                } else {
                    Expr::And(items)
                }
            })
        })
    }

    /// `item (_ word _ item)*` as the right-recursive rule matches it: a chain ends before a
    /// separator whose next item does not match.
    fn chain(
        &mut self,
        item: fn(&mut Self) -> Option<Expr>,
        word: &str,
        quoted: &str,
    ) -> Option<Vec<Expr>> {
        let mut items = vec![item(self)?];
        loop {
            let end = self.pos;
            let separated = self.ws() && self.lit(word, quoted) && self.ws();
            match separated.then(|| item(self)).flatten() {
                Some(next) => items.push(next),
                None => {
                    self.pos = end;
                    return Some(items);
                }
            }
        }
    }

    /// `NotExpression <- "not" _ NotExpression / ParenthesizedExpression`, with `not not e`
    /// reduced to `e` as go-bexpr's action does.
    fn not_expr(&mut self) -> Option<Expr> {
        self.remembered(Rule::Not, |p| {
            let mut starts = Vec::new();
            loop {
                let start = p.pos;
                if p.lit("not", "\"not\"") && p.ws() {
                    starts.push(start);
                } else {
                    p.pos = start;
                    break;
                }
            }
            let mut r = p.paren();
            for start in starts.into_iter().rev() {
                r = match r {
                    Some(Expr::Not(inner)) => Some(*inner),
                    Some(e) => Some(Expr::Not(Box::new(e))),
                    None => {
                        p.pos = start;
                        p.paren()
                    }
                };
            }
            r
        })
    }

    /// `ParenthesizedExpression "grouping" <- "(" _? OrExpression _? ")" / MatchExpression /
    /// "(" _? OrExpression _? !")" &{Unmatched parentheses}`
    fn paren(&mut self) -> Option<Expr> {
        if self.too_deep {
            return None;
        }
        let grouped = |p: &mut Self| {
            if !p.lit("(", "\"(\"") {
                return None;
            }
            p.opt_ws();
            let e = p.nested(Self::or_expr)?;
            p.opt_ws();
            Some(e)
        };
        let first = self.seq(|p| {
            let e = grouped(p)?;
            p.lit(")", "\")\"").then_some(e)
        });
        if first.is_some() || self.too_deep {
            return first;
        }
        if let Some(m) = self.match_expr() {
            return Some(m);
        }
        self.seq(|p| {
            grouped(p)?;
            if p.not(|p| p.lit(")", "\")\"")) {
                p.error("\"grouping\"", "Unmatched parentheses");
            }
            None::<Expr>
        })
    }

    /// `MatchExpression "match" <- MatchSelectorOpValue / MatchSelectorOp / MatchValueOpSelector`
    fn match_expr(&mut self) -> Option<Expr> {
        self.selector_op_value()
            .or_else(|| self.selector_op())
            .or_else(|| self.value_op_selector())
            .map(Expr::Match)
    }

    /// `Selector (MatchEqual / MatchNotEqual / MatchContains / MatchNotContains /
    /// MatchMatches / MatchNotMatches) Value`
    fn selector_op_value(&mut self) -> Option<Match> {
        self.seq(|p| {
            let selector = p.selector()?;
            let op = p
                .seq(|p| {
                    p.opt_ws();
                    p.lit("==", "\"==\"").then_some(())?;
                    p.opt_ws();
                    Some(Op::Equal)
                })
                .or_else(|| {
                    p.seq(|p| {
                        p.opt_ws();
                        p.lit("!=", "\"!=\"").then_some(())?;
                        p.opt_ws();
                        Some(Op::NotEqual)
                    })
                })
                .or_else(|| p.words(&["contains"], Op::In))
                .or_else(|| p.words(&["not", "contains"], Op::NotIn))
                .or_else(|| p.words(&["matches"], Op::Matches))
                .or_else(|| p.words(&["not", "matches"], Op::NotMatches))?;
            let value = p.value()?;
            Some(Match {
                selector,
                op,
                value: Some(value),
            })
        })
    }

    /// `Selector (MatchIsEmpty / MatchIsNotEmpty)`, `MatchIsEmpty <- _ "is" _ "empty"`.
    fn selector_op(&mut self) -> Option<Match> {
        self.seq(|p| {
            let selector = p.selector()?;
            let op = p
                .seq(|p| {
                    (p.ws() && p.lit("is", "\"is\"") && p.ws() && p.lit("empty", "\"empty\""))
                        .then_some(Op::IsEmpty)
                })
                .or_else(|| {
                    p.seq(|p| {
                        (p.ws()
                            && p.lit("is", "\"is\"")
                            && p.ws()
                            && p.lit("not", "\"not\"")
                            && p.ws()
                            && p.lit("empty", "\"empty\""))
                        .then_some(Op::IsNotEmpty)
                    })
                })?;
            Some(Match {
                selector,
                op,
                value: None,
            })
        })
    }

    /// `_ w1 _ w2 ... _`: the operators spelled as words (`MatchContains <- _ "contains" _`).
    fn words(&mut self, words: &[&str], op: Op) -> Option<Op> {
        self.seq(|p| {
            for w in words {
                if !(p.ws() && p.lit(w, &gostr::quote(w))) {
                    return None;
                }
            }
            p.ws().then_some(op)
        })
    }

    /// `Value (MatchIn / MatchNotIn) Selector / Value (MatchIn / MatchNotIn) !Selector
    /// &{Invalid selector}`
    fn value_op_selector(&mut self) -> Option<Match> {
        let op = |p: &mut Self| {
            p.words(&["in"], Op::In)
                .or_else(|| p.words(&["not", "in"], Op::NotIn))
        };
        let first = self.seq(|p| {
            let value = p.value()?;
            let op = op(p)?;
            let selector = p.selector()?;
            Some(Match {
                selector,
                op,
                value: Some(value),
            })
        });
        if first.is_some() {
            return first;
        }
        self.seq(|p| {
            p.value()?;
            op(p)?;
            if p.not(|p| p.selector().is_some()) {
                p.error("\"match\"", "Invalid selector");
            }
            None
        })
    }

    /// `Selector "selector" <- Identifier SelectorOrIndex*`
    fn selector(&mut self) -> Option<Vec<String>> {
        let first = self.identifier()?;
        let mut parts = vec![first];
        loop {
            let dotted = self.seq(|p| {
                p.lit(".", "\".\"").then_some(())?;
                p.identifier()
            });
            match dotted.or_else(|| self.index()) {
                Some(part) => parts.push(part),
                None => return Some(parts),
            }
        }
    }

    /// `Identifier <- [a-zA-Z] [a-zA-Z0-9_]*`
    fn identifier(&mut self) -> Option<String> {
        let start = self.pos;
        if !self.class("[a-zA-Z]", |c| c.is_ascii_alphabetic()) {
            return None;
        }
        while self.class("[a-zA-Z0-9_]", |c| c.is_ascii_alphanumeric() || c == '_') {}
        Some(self.src[start..self.pos].to_owned())
    }

    /// `IndexExpression "index" <- "[" _? StringLiteral _? "]" / "[" _? !StringLiteral
    /// &{Invalid index} / "[" _? StringLiteral _? !"]" &{Unclosed index expression}`
    fn index(&mut self) -> Option<String> {
        let open = |p: &mut Self| {
            let ok = p.lit("[", "\"[\"");
            if ok {
                p.opt_ws();
            }
            ok
        };
        let first = self.seq(|p| {
            open(p).then_some(())?;
            let key = p.string()?;
            p.opt_ws();
            p.lit("]", "\"]\"").then_some(key)
        });
        if first.is_some() {
            return first;
        }
        self.seq(|p| {
            open(p).then_some(())?;
            if p.not(|p| p.string().is_some()) {
                p.error("\"index\"", "Invalid index");
            }
            None::<String>
        });
        self.seq(|p| {
            open(p).then_some(())?;
            p.string()?;
            p.opt_ws();
            if p.not(|p| p.lit("]", "\"]\"")) {
                p.error("\"index\"", "Unclosed index expression");
            }
            None
        })
    }

    /// `Value "value" <- Selector / NumberLiteral / StringLiteral`: the raw value (a selector
    /// joined by dots, a number as written, a string unquoted).
    fn value(&mut self) -> Option<String> {
        if let Some(s) = self.selector() {
            return Some(s.join("."));
        }
        self.number().or_else(|| self.string())
    }

    /// `NumberLiteral "number" <- "-"? IntegerOrFloat &AfterNumbers / "-"? IntegerOrFloat
    /// !AfterNumbers &{Invalid number literal}`
    fn number(&mut self) -> Option<String> {
        let start = self.pos;
        let first = self.seq(|p| {
            p.lit("-", "\"-\"");
            p.integer_or_float().then_some(())?;
            p.and_predicate(Self::after_number).then_some(())?;
            Some(p.src[start..p.pos].to_owned())
        });
        if first.is_some() {
            return first;
        }
        self.seq(|p| {
            p.lit("-", "\"-\"");
            p.integer_or_float().then_some(())?;
            if p.not(Self::after_number) {
                p.error("\"number\"", "Invalid number literal");
            }
            None
        })
    }

    /// `AfterNumbers <- &(_ / EOF / ")")`
    fn after_number(&mut self) -> bool {
        self.and_predicate(|p| p.ws() || p.eof() || p.lit(")", "\")\""))
    }

    /// `IntegerOrFloat <- ("0" / [1-9][0-9]*) ("." [0-9]+)?`
    fn integer_or_float(&mut self) -> bool {
        let integer = self.lit("0", "\"0\"") || {
            let ok = self.class("[1-9]", |c| ('1'..='9').contains(&c));
            if ok {
                while self.class("[0-9]", |c| c.is_ascii_digit()) {}
            }
            ok
        };
        if !integer {
            return false;
        }
        self.seq(|p| {
            p.lit(".", "\".\"").then_some(())?;
            p.class("[0-9]", |c| c.is_ascii_digit()).then_some(())?;
            while p.class("[0-9]", |c| c.is_ascii_digit()) {}
            Some(())
        });
        true
    }

    /// `StringLiteral "string" <- ('`' RawStringChar* '`' / '"' DoubleStringChar* '"')
    /// {Unquote} / ('`' RawStringChar* / '"' DoubleStringChar*) EOF &{Unterminated string
    /// literal}`, `RawStringChar <- !'`' .`: the unquoted string.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        let body = |p: &mut Self, quote: &str, shown: &str| {
            if !p.lit(quote, shown) {
                return false;
            }
            while p
                .seq(|p| (p.not(|p| p.lit(quote, shown)) && p.any()).then_some(()))
                .is_some()
            {}
            true
        };
        let quoted = self.seq(|p| {
            let raw = p.seq(|p| (body(p, "`", "\"`\"") && p.lit("`", "\"`\"")).then_some(()));
            raw.or_else(|| {
                p.seq(|p| (body(p, "\"", "\"\\\"\"") && p.lit("\"", "\"\\\"\"")).then_some(()))
            })
        });
        if quoted.is_some() {
            let text = &self.src[start..self.pos];
            return Some(match gostr::unquote(text) {
                Ok(s) => s,
                Err(e) => {
                    self.error_at(start, "\"string\"", e);
                    String::new()
                }
            });
        }
        self.seq(|p| {
            let open = p.seq(|p| body(p, "`", "\"`\"").then_some(()));
            open.or_else(|| p.seq(|p| body(p, "\"", "\"\\\"\"").then_some(())))?;
            if p.eof() {
                p.error("\"string\"", "Unterminated string literal");
            }
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &str) -> String {
        match parse(input) {
            Err(Failure::Syntax(e)) => e,
            other => panic!("{input}: {other:?}"),
        }
    }

    fn m(selector: &str, op: Op, value: Option<&str>) -> Expr {
        Expr::Match(Match {
            selector: selector.split('.').map(str::to_owned).collect(),
            op,
            value: value.map(str::to_owned),
        })
    }

    #[test]
    fn parses_the_language() {
        assert_eq!(
            parse("Service.Port == 8080"),
            Ok(m("Service.Port", Op::Equal, Some("8080")))
        );
        assert_eq!(
            parse(r#"Service.Tags contains "v1""#),
            Ok(m("Service.Tags", Op::In, Some("v1")))
        );
        assert_eq!(
            parse(r#""v1" not in Service.Tags"#),
            Ok(m("Service.Tags", Op::NotIn, Some("v1")))
        );
        assert_eq!(
            parse(r#"Service.Meta["a b"] != `x`"#),
            Ok(Expr::Match(Match {
                selector: vec!["Service".into(), "Meta".into(), "a b".into()],
                op: Op::NotEqual,
                value: Some("x".into()),
            }))
        );
        assert_eq!(
            parse("a is empty and not b is not empty or c == d.e"),
            Ok(Expr::Or(vec![
                Expr::And(vec![
                    m("a", Op::IsEmpty, None),
                    Expr::Not(Box::new(m("b", Op::IsNotEmpty, None))),
                ]),
                m("c", Op::Equal, Some("d.e")),
            ]))
        );
        assert_eq!(
            parse("not not a == -1.5"),
            Ok(m("a", Op::Equal, Some("-1.5")))
        );
        // `not` as a selector.
        assert_eq!(parse("not == 1"), Ok(m("not", Op::Equal, Some("1"))));
        assert_eq!(parse(" ( a == 1 ) "), Ok(m("a", Op::Equal, Some("1"))));
    }

    #[test]
    fn errors_read_as_go_bexprs() {
        assert_eq!(
            err("Service.Port ==="),
            "1:16 (15): no match found, expected: \"-\", \"0\", \"\\\"\", \"`\", [ \\t\\r\\n], [1-9] or [a-zA-Z]"
        );
        assert_eq!(
            err("Service.ID =="),
            "1:14 (13): no match found, expected: \"-\", \"0\", \"\\\"\", \"`\", [ \\t\\r\\n], [1-9] or [a-zA-Z]"
        );
        assert_eq!(
            err("(a == 1"),
            "1:8 (7): rule \"grouping\": Unmatched parentheses"
        );
        assert_eq!(
            err(r#"a == "x"#),
            "1:8 (7): rule \"string\": Unterminated string literal"
        );
        assert_eq!(
            err("a == 1x"),
            "1:7 (6): rule \"number\": Invalid number literal"
        );
        assert_eq!(
            err(r#"a == "\q""#),
            "1:6 (5): rule \"string\": invalid syntax"
        );
        assert!(err("").contains("no match found"));
        // Lines count from 1, columns in characters, a newline ends its line at column 0.
        assert_eq!(
            err("a == \"é\" and\n(b == 2"),
            "2:8 (21): rule \"grouping\": Unmatched parentheses"
        );
        assert!(err("a == 1\n==").starts_with("2:1 (7): no match found"));
    }

    #[test]
    fn nesting_is_linear_and_bounded() {
        let nested = |n: usize| format!("{}a == 1{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(parse(&nested(MAX_DEPTH)), Ok(m("a", Op::Equal, Some("1"))));
        assert_eq!(parse(&nested(MAX_DEPTH + 1)), Err(Failure::TooDeep));
        assert_eq!(parse(&nested(30_000)), Err(Failure::TooDeep));
        let nots = format!("{}a == 1", "not ".repeat(20_000));
        assert_eq!(parse(&nots), Ok(m("a", Op::Equal, Some("1"))));
        let chain = vec!["a == 1"; 10_000].join(" and ");
        assert!(matches!(parse(&chain), Ok(Expr::And(items)) if items.len() == 10_000));
        let unbalanced = format!("{}a == 1", "(".repeat(40));
        assert!(err(&unbalanced).contains("Unmatched parentheses"));
    }
}
