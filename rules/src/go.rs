//! Go's durations, the form Consul's JSON carries them in: Consul (written in Go) reads them
//! with `time.ParseDuration` and writes them with `time.Duration.String`.
//!
//! One implementation for everything that speaks to Consul or acts as it: the attribute's
//! messages, the runtime's requests and answers, and the dev agent.
//!
//! ```
//! use std::time::Duration;
//! use discoverable_rules::{GoDuration, go_duration, parse_go_duration};
//!
//! assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
//! let d = parse_go_duration("1m30s").unwrap();
//! assert_eq!(d.to_std(), Some(Duration::from_secs(90)));
//! assert_eq!(d.to_string(), "1m30s");
//! assert_eq!(GoDuration(-1_500_000).to_string(), "-1.5ms");
//! assert_eq!(
//!     parse_go_duration("10").unwrap_err().to_string(),
//!     r#"time: missing unit in duration "10""#
//! );
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A signed duration in nanoseconds, as Go's `time.Duration` (an `int64`): about 292 years
/// either way.
///
/// `Display` writes it as Go's `Duration.String` does (`0s`, `1.5ms`, `10s`, `1m30s`,
/// `1h0m0s`); [`parse_go_duration`] and `FromStr` read it as Go's `time.ParseDuration`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub i64);

impl GoDuration {
    /// The duration if it is greater than zero.
    pub fn positive(self) -> Option<Duration> {
        u64::try_from(self.0)
            .ok()
            .filter(|n| *n > 0)
            .map(Duration::from_nanos)
    }

    /// The duration if it is not negative.
    pub fn to_std(self) -> Option<Duration> {
        u64::try_from(self.0).ok().map(Duration::from_nanos)
    }

    /// From a std duration; one longer than Go's largest is Go's largest.
    pub fn from_std(d: Duration) -> Self {
        GoDuration(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String`: `0s`, `1.5ms`, `10s`, `1m30s`, `1h0m0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn frac(v: u64, prec: u32) -> (String, u64) {
            let p = 10u64.pow(prec);
            let (int, rest) = (v / p, v % p);
            if rest == 0 {
                return (String::new(), int);
            }
            let digits = format!("{rest:0width$}", width = prec as usize);
            (format!(".{}", digits.trim_end_matches('0')), int)
        }
        let sign = if self.0 < 0 { "-" } else { "" };
        let u = self.0.unsigned_abs();
        if u == 0 {
            return f.write_str("0s");
        }
        if u < 1_000_000_000 {
            let (prec, unit) = if u < 1_000 {
                (0, "ns")
            } else if u < 1_000_000 {
                (3, "µs")
            } else {
                (6, "ms")
            };
            let (fr, int) = frac(u, prec);
            return write!(f, "{sign}{int}{fr}{unit}");
        }
        let (fr, secs) = frac(u, 9);
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        match (h, m) {
            (0, 0) => write!(f, "{sign}{s}{fr}s"),
            (0, _) => write!(f, "{sign}{m}m{s}{fr}s"),
            _ => write!(f, "{sign}{h}h{m}m{s}{fr}s"),
        }
    }
}

impl FromStr for GoDuration {
    type Err = GoDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_go_duration(s)
    }
}

/// A text Go's `time.ParseDuration` refuses. `Display` is Go's error text, e.g.
/// `time: invalid duration "abc"` or `time: unknown unit "x" in duration "10x"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoDurationError {
    message: String,
}

impl fmt::Display for GoDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GoDurationError {}

/// Go's `time.ParseDuration`: a possibly signed sequence of decimal numbers, each with an
/// optional fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), e.g. `"300ms"`,
/// `"-1.5h"`, `"2h45m"`; `"0"` needs no unit. Fractions below a nanosecond are dropped, as Go
/// does.
///
/// # Errors
///
/// Go's error texts, e.g. `time: invalid duration "abc"`, `time: missing unit in duration
/// "10"`, and `time: invalid duration` for a value beyond about 292 years.
pub fn parse_go_duration(orig: &str) -> Result<GoDuration, GoDurationError> {
    let error = |message: String| GoDurationError { message };
    let invalid = || error(format!("time: invalid duration {}", quote(orig)));
    const MAX: u64 = 1 << 63;
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some((&c @ (b'-' | b'+'), rest)) = s.split_first() {
        neg = c == b'-';
        s = rest;
    }
    if s == b"0" {
        return Ok(GoDuration(0));
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &s[..digits] {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .filter(|v| *v <= MAX)
                .ok_or_else(invalid)?;
        }
        let pre = digits > 0;
        s = &s[digits..];
        // Fraction: as many digits as fit, the rest ignored, as Go does.
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &s[..n] {
                if overflow {
                    continue;
                }
                match f
                    .checked_mul(10)
                    .and_then(|x| x.checked_add(u64::from(c - b'0')))
                {
                    Some(x) if x <= MAX => {
                        f = x;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            post = n > 0;
            s = &s[n..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit.
        let n = s
            .iter()
            .take_while(|c| !(**c == b'.' || c.is_ascii_digit()))
            .count();
        if n == 0 {
            return Err(error(format!(
                "time: missing unit in duration {}",
                quote(orig)
            )));
        }
        let unit_text = String::from_utf8_lossy(&s[..n]).into_owned();
        s = &s[n..];
        let unit: u64 = match unit_text.as_str() {
            "ns" => 1,
            // ASCII, the micro sign (U+00B5) and the Greek letter mu (U+03BC), as Go.
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => {
                return Err(error(format!(
                    "time: unknown unit {} in duration {}",
                    quote(&unit_text),
                    quote(orig)
                )));
            }
        };
        if v > MAX / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            // Go computes the fraction in float64 too, and truncates.
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > MAX {
                return Err(invalid());
            }
        }
        total = total
            .checked_add(v)
            .filter(|t| *t <= MAX)
            .ok_or_else(invalid)?;
    }
    if neg {
        return Ok(GoDuration(0i64.wrapping_sub_unsigned(total)));
    }
    i64::try_from(total).map(GoDuration).map_err(|_| invalid())
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Formats a duration exactly, in the one largest unit that needs no fraction: `"10s"`,
/// `"1500ms"`, `"250us"`, `"7ns"`, `"0s"`. Go's `time.ParseDuration` reads it back to the
/// nanosecond, so this is the form sent to Consul; the attribute's messages use it too.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        "0s".to_owned()
    } else if nanos % 1_000_000_000 == 0 {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ns(s: &str) -> i64 {
        parse_go_duration(s).unwrap().0
    }

    fn error(s: &str) -> String {
        parse_go_duration(s).unwrap_err().to_string()
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(ns("10s"), 10_000_000_000);
        assert_eq!(ns("1m30s"), 90_000_000_000);
        assert_eq!(ns("1h0m0s"), 3_600_000_000_000);
        assert_eq!(ns("500ms"), 500_000_000);
        assert_eq!(ns("1.5s"), 1_500_000_000);
        assert_eq!(ns(".5s"), 500_000_000);
        assert_eq!(ns("5.s"), 5_000_000_000);
        assert_eq!(ns("1.5h"), 5_400_000_000_000);
        assert_eq!(ns("2h45m"), 9_900_000_000_000);
        assert_eq!(ns("1\u{b5}s"), 1_000);
        assert_eq!(ns("1\u{3bc}s"), 1_000);
        assert_eq!(ns("3us"), 3_000);
        assert_eq!(ns("7ns"), 7);
        assert_eq!(ns("-1.5h"), -5_400_000_000_000);
        assert_eq!(ns("+2s"), 2_000_000_000);
        assert_eq!(ns("0"), 0);
        assert_eq!(ns("-0"), 0);
        assert_eq!(ns("0s"), 0);
        // Below a nanosecond: dropped.
        assert_eq!(ns("1.0000000001s"), 1_000_000_000);
        // Go's range, to the nanosecond.
        assert_eq!(ns("9223372036854775807ns"), i64::MAX);
        assert_eq!(ns("-9223372036854775808ns"), i64::MIN);
        assert_eq!("1m".parse::<GoDuration>(), Ok(GoDuration(60_000_000_000)));
    }

    #[test]
    fn refuses_what_go_refuses_with_go_texts() {
        assert_eq!(error(""), r#"time: invalid duration """#);
        assert_eq!(error("abc"), r#"time: invalid duration "abc""#);
        assert_eq!(error("10"), r#"time: missing unit in duration "10""#);
        assert_eq!(error("10x"), r#"time: unknown unit "x" in duration "10x""#);
        assert_eq!(error("."), r#"time: invalid duration ".""#);
        assert_eq!(error(".s"), r#"time: invalid duration ".s""#);
        assert_eq!(error("s"), r#"time: invalid duration "s""#);
        assert_eq!(error("1s."), r#"time: invalid duration "1s.""#);
        assert_eq!(
            error("1h-1m"),
            r#"time: unknown unit "h-" in duration "1h-1m""#
        );
        assert_eq!(error(" 1s"), r#"time: invalid duration " 1s""#);
        assert_eq!(error("1s "), r#"time: unknown unit "s " in duration "1s ""#);
        assert_eq!(
            error("99999999999h"),
            r#"time: invalid duration "99999999999h""#
        );
        assert_eq!(
            error("9223372036854775808ns"),
            r#"time: invalid duration "9223372036854775808ns""#
        );
        assert!(parse_go_duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn writes_like_go() {
        let f = |ns: i64| GoDuration(ns).to_string();
        assert_eq!(f(0), "0s");
        assert_eq!(f(7), "7ns");
        assert_eq!(f(1_500), "1.5\u{b5}s");
        assert_eq!(f(1_500_000), "1.5ms");
        assert_eq!(f(10_000_000_000), "10s");
        assert_eq!(f(1_500_000_000), "1.5s");
        assert_eq!(f(90_000_000_000), "1m30s");
        assert_eq!(f(60_000_000_000), "1m0s");
        assert_eq!(f(3_600_000_000_000), "1h0m0s");
        assert_eq!(f(-2_000_000_000), "-2s");
        assert_eq!(f(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn converts_to_and_from_std() {
        assert_eq!(GoDuration(5).positive(), Some(Duration::from_nanos(5)));
        assert_eq!(GoDuration(0).positive(), None);
        assert_eq!(GoDuration(0).to_std(), Some(Duration::ZERO));
        assert_eq!(GoDuration(-1).to_std(), None);
        assert_eq!(GoDuration(-1).positive(), None);
        assert_eq!(
            GoDuration::from_std(Duration::from_secs(90)),
            GoDuration(90_000_000_000)
        );
        assert_eq!(
            GoDuration::from_std(Duration::from_secs(u64::MAX)),
            GoDuration(i64::MAX)
        );
    }

    #[test]
    fn exact_form_in_one_unit() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(90)), "90s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(go_duration(Duration::from_micros(250)), "250us");
        assert_eq!(
            go_duration(Duration::from_nanos(1_000_000_007)),
            "1000000007ns"
        );
    }

    fn runner(cases: u32) -> proptest::test_runner::TestRunner {
        proptest::test_runner::TestRunner::new(ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        })
    }

    #[test]
    fn any_text_parses_or_is_refused() {
        let text = prop_oneof![
            ".{0,24}",
            "[-+]?[0-9.]{0,30}(ns|us|µs|μs|ms|s|m|h|x)?([0-9.]{0,30}(ns|us|ms|s|m|h))?",
            "\\+?[0-9]{15,40}(ns|h)",
        ];
        runner(4096)
            .run(&text, |s| {
                if let Ok(d) = parse_go_duration(&s) {
                    // What parses, Go's own form reads back the same.
                    prop_assert_eq!(parse_go_duration(&d.to_string()), Ok(d), "{}", s);
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn the_exact_form_reads_back_to_the_nanosecond() {
        // Every duration Go can hold.
        let within_go = (0u64..=i64::MAX as u64).prop_map(Duration::from_nanos);
        runner(4096)
            .run(&within_go, |d| {
                let text = go_duration(d);
                let back = parse_go_duration(&text).map(GoDuration::to_std);
                prop_assert_eq!(back, Ok(Some(d)), "{}", text);
                Ok(())
            })
            .unwrap();
        let go = any::<i64>().prop_map(GoDuration);
        runner(4096)
            .run(&go, |d| {
                prop_assert_eq!(parse_go_duration(&d.to_string()), Ok(d));
                Ok(())
            })
            .unwrap();
    }
}
