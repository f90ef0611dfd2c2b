//! Go's string conversions as go-bexpr's messages show them: `%q` quoting, `strconv.Unquote`,
//! `strconv.ParseInt` (base 0) and `strconv.ParseBool`, with Go's error texts.

/// Go's `strconv.Quote` (`%q`): double quotes, Go's escapes, printable characters kept.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' ' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint` beyond ASCII: letters, marks, numbers,
/// punctuation and symbols, not other spaces, controls or format characters.
fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
        || ('\u{e000}'..='\u{f8ff}').contains(&c))
}

/// Go's `strconv.ErrSyntax` text.
const SYNTAX: &str = "invalid syntax";
/// Go's `strconv.ErrRange` text.
const RANGE: &str = "value out of range";

/// Go's `strconv.Unquote` of a literal the filter grammar matched: a backquoted raw string
/// (carriage returns dropped) or a double-quoted one with Go's escapes. `Err` is Go's
/// `invalid syntax`.
pub(crate) fn unquote(text: &str) -> Result<String, &'static str> {
    if let Some(raw) = text.strip_prefix('`') {
        let Some(inner) = raw.strip_suffix('`') else {
            return Err(SYNTAX);
        };
        if inner.contains('`') {
            return Err(SYNTAX);
        }
        return Ok(inner.replace('\r', ""));
    }
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return Err(SYNTAX);
    };
    let mut out: Vec<u8> = Vec::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\n' => return Err(SYNTAX),
            '\\' => {
                let e = chars.next().ok_or(SYNTAX)?;
                let hex = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| {
                    let mut v: u32 = 0;
                    for _ in 0..n {
                        let d = chars.next().and_then(|c| c.to_digit(16)).ok_or(SYNTAX)?;
                        v = v * 16 + d;
                    }
                    Ok::<u32, &'static str>(v)
                };
                match e {
                    'a' => out.push(7),
                    'b' => out.push(8),
                    'f' => out.push(12),
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    't' => out.push(b'\t'),
                    'v' => out.push(11),
                    '\\' => out.push(b'\\'),
                    '"' => out.push(b'"'),
                    'x' => out.push(hex(&mut chars, 2)? as u8),
                    'u' | 'U' => {
                        let v = hex(&mut chars, if e == 'u' { 4 } else { 8 })?;
                        let c = char::from_u32(v).ok_or(SYNTAX)?;
                        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            let d = chars.next().and_then(|c| c.to_digit(8)).ok_or(SYNTAX)?;
                            v = v * 8 + d;
                        }
                        if v > 255 {
                            return Err(SYNTAX);
                        }
                        out.push(v as u8);
                    }
                    _ => return Err(SYNTAX),
                }
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Go's `strconv.ParseInt(s, 0, 64)`, with Go's error text.
pub(crate) fn parse_int(s: &str) -> Result<i64, String> {
    let fail = |why: &str| format!("strconv.ParseInt: parsing {}: {why}", quote(s));
    let (neg, digits) = match s.as_bytes().first() {
        None => return Err(fail(SYNTAX)),
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        Some(_) => (false, s),
    };
    let n = parse_uint(digits).map_err(fail)?;
    const CUTOFF: u64 = 1 << 63;
    match (neg, n) {
        (false, n) if n >= CUTOFF => Err(fail(RANGE)),
        (true, n) if n > CUTOFF => Err(fail(RANGE)),
        (false, n) => Ok(n as i64),
        (true, n) => Ok((n as i64).wrapping_neg()),
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`: the error is Go's reason.
fn parse_uint(s0: &str) -> Result<u64, &'static str> {
    let b = s0.as_bytes();
    if b.is_empty() {
        return Err(SYNTAX);
    }
    let lower = |c: u8| c | 0x20;
    let (base, digits): (u64, &[u8]) = if b[0] == b'0' {
        match b.get(1).map(|c| lower(*c)) {
            Some(b'b') if b.len() >= 3 => (2, &b[2..]),
            Some(b'o') if b.len() >= 3 => (8, &b[2..]),
            Some(b'x') if b.len() >= 3 => (16, &b[2..]),
            _ => (8, &b[1..]),
        }
    } else {
        (10, b)
    };
    let cutoff = u64::MAX / base + 1;
    let mut underscores = false;
    let mut n: u64 = 0;
    for &c in digits {
        let d = match c {
            b'_' => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => u64::from(c - b'0'),
            c if lower(c).is_ascii_lowercase() => u64::from(lower(c) - b'a' + 10),
            _ => return Err(SYNTAX),
        };
        if d >= base {
            return Err(SYNTAX);
        }
        if n >= cutoff {
            return Err(RANGE);
        }
        n = n.checked_mul(base).ok_or(RANGE)?;
        n = n.checked_add(d).ok_or(RANGE)?;
    }
    if underscores && !underscore_ok(s0) {
        return Err(SYNTAX);
    }
    Ok(n)
}

/// Go's rule for `_` in a number: only between digits (a base prefix counts as one).
fn underscore_ok(s: &str) -> bool {
    let lower = |c: u8| c | 0x20;
    let mut b = s.as_bytes();
    if let Some(b'-' | b'+') = b.first() {
        b = &b[1..];
    }
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(lower(b[1]), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = lower(b[1]) == b'x';
    }
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c.is_ascii_digit() || hex && (b'a'..=b'f').contains(&lower(c)) {
            saw = b'0';
            continue;
        }
        if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
            continue;
        }
        if saw == b'_' {
            return false;
        }
        saw = b'!';
    }
    saw != b'_'
}

/// Go's `strconv.ParseBool`, with Go's error text.
pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    crate::decode::parse_go_bool(s)
        .ok_or_else(|| format!("strconv.ParseBool: parsing {}: {SYNTAX}", quote(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_go() {
        assert_eq!(quote("Service.Port"), "\"Service.Port\"");
        assert_eq!(quote("a\"b\\c\n\t\u{1}"), "\"a\\\"b\\\\c\\n\\t\\x01\"");
        assert_eq!(quote("é\u{a0}"), "\"é\\u00a0\"");
    }

    #[test]
    fn unquotes_as_go() {
        assert_eq!(unquote("`a\\n\rb`"), Ok("a\\nb".to_owned()));
        assert_eq!(unquote(r#""a\tb\x41\101\u00e9""#), Ok("a\tbAAé".to_owned()));
        assert_eq!(unquote(r#""a\""#), Err(SYNTAX));
        assert_eq!(unquote(r#""\'""#), Err(SYNTAX));
        assert_eq!(unquote(r#""\400""#), Err(SYNTAX));
        assert_eq!(unquote(r#""\ud800""#), Err(SYNTAX));
        assert_eq!(unquote("\"a\nb\""), Err(SYNTAX));
    }

    #[test]
    fn parses_ints_as_go() {
        assert_eq!(parse_int("8080"), Ok(8080));
        assert_eq!(parse_int("-1"), Ok(-1));
        assert_eq!(parse_int("0x1F"), Ok(31));
        assert_eq!(parse_int("0o17"), Ok(15));
        assert_eq!(parse_int("017"), Ok(15));
        assert_eq!(parse_int("0b101"), Ok(5));
        assert_eq!(parse_int("1_000"), Ok(1000));
        assert_eq!(parse_int("0"), Ok(0));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(
            parse_int("abc").unwrap_err(),
            "strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            parse_int("1.5").unwrap_err(),
            "strconv.ParseInt: parsing \"1.5\": invalid syntax"
        );
        assert_eq!(
            parse_int("9223372036854775808").unwrap_err(),
            "strconv.ParseInt: parsing \"9223372036854775808\": value out of range"
        );
        assert_eq!(
            parse_int("99999999999999999999x").unwrap_err(),
            "strconv.ParseInt: parsing \"99999999999999999999x\": value out of range"
        );
        assert!(parse_int("1__0").is_err());
        assert!(parse_int("_1").is_err());
        assert!(parse_int("08").is_err());
        assert!(parse_int("").is_err());
        assert_eq!(
            parse_bool("yes").unwrap_err(),
            "strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
    }
}
