//! `google.api.http` path templates (AIP-127): parsed once from the contracts, matched
//! against each HTTP request's path to find its RPC and the fields its path binds.
//!
//! ```text
//! Template = "/" Segments [ ":" Verb ] ;   Segment = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! ```

/// One segment a template matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// Exactly this text.
    Lit(String),
    /// One segment.
    Star,
    /// The rest of the path, however many segments (only last).
    Rest,
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    segments: Vec<Seg>,
    /// Each variable's field path (`idea.name`) and the segments it spans.
    variables: Vec<(String, std::ops::Range<usize>)>,
    verb: Option<String>,
}

impl Template {
    /// Parses `template`; `Err` says what is wrong with it.
    pub(crate) fn parse(template: &str) -> Result<Template, String> {
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| format!("`{template}` does not start with /"))?;
        // The verb follows the last segment's `:` outside a variable.
        let (path, verb) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('}') => (&rest[..i], Some(rest[i + 1..].to_owned())),
            _ => (rest, None),
        };
        let mut out = Template {
            segments: Vec::new(),
            variables: Vec::new(),
            verb,
        };
        let mut chars = path;
        while !chars.is_empty() {
            if let Some(inner) = chars.strip_prefix('{') {
                let end = inner
                    .find('}')
                    .ok_or_else(|| format!("`{template}`: an unclosed variable"))?;
                let (field, pattern) = match inner[..end].split_once('=') {
                    Some((f, p)) => (f, p),
                    None => (&inner[..end], "*"),
                };
                let start = out.segments.len();
                for s in pattern.split('/') {
                    out.segments.push(segment(s));
                }
                out.variables
                    .push((field.to_owned(), start..out.segments.len()));
                chars = inner[end + 1..]
                    .strip_prefix('/')
                    .unwrap_or(&inner[end + 1..]);
            } else {
                let end = chars.find('/').unwrap_or(chars.len());
                out.segments.push(segment(&chars[..end]));
                chars = chars[end..].strip_prefix('/').unwrap_or("");
            }
        }
        if out.segments[..out.segments.len().saturating_sub(1)].contains(&Seg::Rest) {
            return Err(format!("`{template}`: ** only last"));
        }
        Ok(out)
    }

    /// The bindings of `path` (already split at `/`, percent-decoded, its verb apart) if it
    /// matches: each variable's field path and value.
    pub(crate) fn matches(
        &self,
        segments: &[String],
        verb: Option<&str>,
    ) -> Option<Vec<(String, String)>> {
        if self.verb.as_deref() != verb {
            return None;
        }
        let rest = self.segments.last() == Some(&Seg::Rest);
        let fixed = self.segments.len() - usize::from(rest);
        if segments.len() < fixed || (!rest && segments.len() != fixed) {
            return None;
        }
        for (seg, given) in self.segments[..fixed].iter().zip(segments) {
            match seg {
                Seg::Lit(l) if l != given => return None,
                Seg::Star if given.is_empty() => return None,
                Seg::Lit(_) | Seg::Star | Seg::Rest => {}
            }
        }
        Some(
            self.variables
                .iter()
                .map(|(field, span)| {
                    let end = if span.end == self.segments.len() && rest {
                        segments.len()
                    } else {
                        span.end
                    };
                    (field.clone(), segments[span.start..end].join("/"))
                })
                .collect(),
        )
    }

    /// The field paths its variables bind (`name`, `idea.name`).
    pub(crate) fn fields(&self) -> impl Iterator<Item = &str> {
        self.variables.iter().map(|(f, _)| f.as_str())
    }

    /// How specific it is: literal segments first, so `/v1/sites` wins over `/v1/{name=*}`.
    pub(crate) fn literals(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Seg::Lit(_)))
            .count()
    }
}

fn segment(s: &str) -> Seg {
    match s {
        "*" => Seg::Star,
        "**" => Seg::Rest,
        lit => Seg::Lit(lit.to_owned()),
    }
}

/// A request path split as templates match it: its segments, percent-decoded, and the verb
/// after the last segment's `:`. `None` for a path outside `/`.
pub(crate) fn split(path: &str) -> Option<(Vec<String>, Option<String>)> {
    let rest = path.strip_prefix('/')?;
    let (body, verb) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(decode(&rest[i + 1..]))),
        _ => (rest, None),
    };
    Some((body.split('/').map(decode).collect(), verb))
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(template: &str, path: &str) -> Option<Vec<(String, String)>> {
        let (segments, verb) = split(path).unwrap();
        Template::parse(template)
            .unwrap()
            .matches(&segments, verb.as_deref())
    }

    fn pairs(p: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            p.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn variables_bind_the_segments_their_pattern_spans() {
        assert_eq!(
            bind("/v1/{name=sites/*/projects/*}", "/v1/sites/BAS/projects/p1"),
            pairs(&[("name", "sites/BAS/projects/p1")])
        );
        assert_eq!(
            bind("/v1/{parent=sites/*}/ideas", "/v1/sites/-/ideas"),
            pairs(&[("parent", "sites/-")])
        );
        assert_eq!(
            bind(
                "/v1/{name=sites/*/projects/*}:start",
                "/v1/sites/BAS/projects/p1:start"
            ),
            pairs(&[("name", "sites/BAS/projects/p1")])
        );
        assert_eq!(
            bind(
                "/v1/{idea.name=sites/*/ideas/*}",
                "/v1/sites/BAS/ideas/a%20b"
            ),
            pairs(&[("idea.name", "sites/BAS/ideas/a b")])
        );
        assert_eq!(bind("/v1/sites", "/v1/sites"), pairs(&[]));
        assert_eq!(
            bind("/v1/{name=files/**}", "/v1/files/a/b/c"),
            pairs(&[("name", "files/a/b/c")])
        );
    }

    #[test]
    fn a_path_of_another_shape_or_verb_does_not_match() {
        let t = "/v1/{name=sites/*/projects/*}";
        assert_eq!(bind(t, "/v1/sites/BAS/projects"), None);
        assert_eq!(bind(t, "/v1/sites/BAS/projects/p1/teamMembers"), None);
        assert_eq!(bind(t, "/v1/trust/projects/p1"), None);
        assert_eq!(bind(t, "/v1/sites/BAS/projects/p1:start"), None);
        assert_eq!(
            bind(
                "/v1/{name=sites/*/projects/*}:start",
                "/v1/sites/BAS/projects/p1"
            ),
            None
        );
        assert_eq!(bind(t, "/v1/sites//projects/p1"), None);
        assert!(Template::parse("v1/x").is_err());
        assert!(Template::parse("/v1/{name=a/**/b}").is_err());
        assert!(Template::parse("/v1/{name").is_err());
        assert!(split("no-slash").is_none());
    }
}
