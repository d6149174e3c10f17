//! List filters: the small AIP-160 subset DESIGN.md fixes for every List method —
//! `field op value` terms joined by `AND`, with `=`, `!=`, `<`, `>`, `<=`, `>=`. A value is
//! a bare word (`IN_PROGRESS`, `2025-04-01`, `sites/BAS/wards/cedar`) or a double-quoted
//! string (`"Discharge lounge"`, with `\"` and `\\` escapes). Which fields a list takes, with
//! which operators, and what a value means is the list's to say; this crate only reads the
//! text, one way for every service. Pure code, no I/O.
#![forbid(unsafe_code)]

use std::fmt;

/// The longest filter read: longer ones are refused before any parsing.
pub const MAX_LEN: usize = 2000;
/// The most terms one filter may join.
pub const MAX_TERMS: usize = 20;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Ge => ">=",
        })
    }
}

/// One `field op value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The field's name, as written (lower case, digits, `_` and `.`).
    pub field: String,
    /// The comparison.
    pub op: Op,
    /// The value: a bare word as written, or a quoted string's text.
    pub value: String,
}

/// Why a filter could not be read, said for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FilterError {}

fn err<T>(message: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(message.into()))
}

/// Reads a filter into its terms, in order; an empty (or all-blank) filter has none.
pub fn parse(filter: &str) -> Result<Vec<Term>, FilterError> {
    if filter.len() > MAX_LEN {
        return err(format!("is longer than {MAX_LEN} bytes"));
    }
    let mut rest = filter.trim_start();
    let mut terms = Vec::new();
    while !rest.is_empty() {
        if !terms.is_empty() {
            rest = rest
                .strip_prefix("AND")
                .filter(|r| r.is_empty() || r.starts_with(char::is_whitespace))
                .ok_or_else(|| {
                    FilterError(format!(
                        "expected `AND` before `{}` (terms are joined by AND; OR, NOT and parentheses are not supported)",
                        clip(rest)
                    ))
                })?
                .trim_start();
            if rest.is_empty() {
                return err("expected a term after the last `AND`");
            }
        }
        if terms.len() == MAX_TERMS {
            return err(format!("has more than {MAX_TERMS} terms"));
        }
        let (term, after) = term(rest)?;
        terms.push(term);
        rest = after.trim_start();
    }
    Ok(terms)
}

/// A half-open range `[from, before)` that ordered terms narrow (`start_date >= …`,
/// `completion_date < …`): several terms of one field keep the narrowest bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range<T> {
    /// The least value in range, if bounded.
    pub from: Option<T>,
    /// The first value past the range, if bounded.
    pub before: Option<T>,
}

impl<T> Default for Range<T> {
    fn default() -> Self {
        Range {
            from: None,
            before: None,
        }
    }
}

impl<T: Copy + Ord> Range<T> {
    /// Narrows the range by `op value`, where `next` is the value after `value` (the next
    /// day, for a date); `false` for `!=`, which no range expresses.
    pub fn narrow(&mut self, op: Op, value: T, next: T) -> bool {
        let (from, before) = match op {
            Op::Eq => (Some(value), Some(next)),
            Op::Ne => return false,
            Op::Lt => (None, Some(value)),
            Op::Le => (None, Some(next)),
            Op::Gt => (Some(next), None),
            Op::Ge => (Some(value), None),
        };
        self.from = self.from.max(from);
        self.before = match (self.before, before) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        true
    }
}

/// Reads one term from the start of `s`; returns it and what follows.
fn term(s: &str) -> Result<(Term, &str), FilterError> {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(s.len());
    let field = &s[..end];
    if field.is_empty() || !field.starts_with(|c: char| c.is_ascii_lowercase()) {
        return err(format!("expected a field name at `{}`", clip(s)));
    }
    let s = s[end..].trim_start();
    let (op, s) = [
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("=", Op::Eq),
        ("<", Op::Lt),
        (">", Op::Gt),
    ]
    .into_iter()
    .find_map(|(text, op)| s.strip_prefix(text).map(|r| (op, r)))
    .ok_or_else(|| {
        FilterError(format!(
            "expected one of = != < > <= >= after `{field}`, at `{}`",
            clip(s)
        ))
    })?;
    let s = s.trim_start();
    let (value, rest) = if let Some(quoted) = s.strip_prefix('"') {
        string(quoted)?
    } else {
        let end = s
            .find(|c: char| c.is_whitespace() || c == '"' || c == '(' || c == ')')
            .unwrap_or(s.len());
        if end == 0 {
            return err(format!("expected a value after `{field} {op}`"));
        }
        (s[..end].to_owned(), &s[end..])
    };
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return err(format!("unexpected `{}` after a value", clip(rest)));
    }
    let field = field.to_owned();
    Ok((Term { field, op, value }, rest))
}

/// Reads a quoted string after its opening quote: its text and what follows the closing one.
fn string(s: &str) -> Result<(String, &str), FilterError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                _ => return err("a string escapes only `\\\"` and `\\\\`"),
            },
            c if c.is_control() => return err("a string holds no control characters"),
            c => out.push(c),
        }
    }
    err("a string is not closed with `\"`")
}

/// Cuts the caller's text for an error message.
fn clip(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(field: &str, op: Op, value: &str) -> Term {
        Term {
            field: field.into(),
            op,
            value: value.into(),
        }
    }

    #[test]
    fn terms_joined_by_and_read_in_order_with_bare_and_quoted_values() {
        let got = parse(
            r#"phase = DEFINE_AND_SCOPE AND ward="sites/BAS/wards/cedar"  AND text = "say \"hi\" \\ bye" AND start_date>=2025-04-01"#,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                t("phase", Op::Eq, "DEFINE_AND_SCOPE"),
                t("ward", Op::Eq, "sites/BAS/wards/cedar"),
                t("text", Op::Eq, r#"say "hi" \ bye"#),
                t("start_date", Op::Ge, "2025-04-01"),
            ]
        );
        let ops: Vec<Op> = parse("a != 1 AND a < 2 AND a > 3 AND a <= 4 AND a >= 5 AND a = 6")
            .unwrap()
            .into_iter()
            .map(|t| t.op)
            .collect();
        assert_eq!(ops, [Op::Ne, Op::Lt, Op::Gt, Op::Le, Op::Ge, Op::Eq]);
        assert_eq!(parse("").unwrap(), []);
        assert_eq!(parse("   ").unwrap(), []);
        assert_eq!(parse(r#"theme = """#).unwrap(), [t("theme", Op::Eq, "")]);
    }

    #[test]
    fn what_is_not_the_subset_is_refused_saying_where() {
        let refused = |f: &str| parse(f).unwrap_err().0;
        assert!(refused("phase = A OR phase = B").contains("expected `AND`"));
        assert!(refused("phase = A and phase = B").contains("expected `AND`"));
        assert!(refused("phase = A ANDphase = B").contains("expected `AND`"));
        assert!(refused("(phase = A)").contains("expected a field name"));
        assert!(refused("NOT phase = A").contains("expected a field name"));
        assert!(refused("phase : A").contains("expected one of"));
        assert!(refused("phase =").contains("expected a value"));
        assert!(refused("phase = A AND").contains("expected a term after"));
        assert!(refused(r#"text = "open"#).contains("not closed"));
        assert!(refused(r#"text = "a\nb""#).contains("escapes only"));
        assert!(refused("text = \"a\u{7}\"").contains("control"));
        assert!(refused(r#"text = "a"b"#).contains("unexpected `b`"));
        assert!(refused(&"a = b AND ".repeat(21)).contains("more than 20 terms"));
        assert!(refused(&format!("text = \"{}\"", "x".repeat(MAX_LEN))).contains("longer than"));
        // The echo of a long input is cut.
        let long = format!("phase = A OR {}", "y".repeat(500));
        assert!(refused(&long).len() < 200);
    }

    #[test]
    fn a_range_keeps_the_narrowest_bounds_and_refuses_not_equal() {
        let mut r = Range::default();
        assert!(r.narrow(Op::Ge, 3, 4));
        assert!(r.narrow(Op::Gt, 1, 2));
        assert!(r.narrow(Op::Le, 9, 10));
        assert!(r.narrow(Op::Lt, 12, 13));
        assert_eq!((r.from, r.before), (Some(3), Some(10)));
        assert!(r.narrow(Op::Eq, 5, 6));
        assert_eq!((r.from, r.before), (Some(5), Some(6)));
        assert!(!r.narrow(Op::Ne, 7, 8));
        assert_eq!((r.from, r.before), (Some(5), Some(6)));
    }
}
