//! The chart as a picture: well-formed SVG drawing the title, the target, the annotations
//! (escaped) and a mean per group.

use qi_e2e::TestSuite;
use qi_e2e::metrics::{render, render_request};
use qi_proto::metrics as pb;

use super::{LOS, annotated_los, sou_viewer};

/// A tiny XML well-formedness check: tags nest and close, attributes are quoted, no raw `<`
/// or stray `&` in text. Returns the number of elements.
pub(super) fn well_formed(doc: &str) -> Result<usize, String> {
    let mut rest = doc
        .strip_prefix("<?xml")
        .and_then(|r| r.split_once("?>"))
        .map_or(doc, |(_, after)| after);
    let mut stack: Vec<String> = Vec::new();
    let mut elements = 0;
    let text_ok = |t: &str| -> Result<(), String> {
        if t.contains('<') {
            return Err(format!("raw < in {t:?}"));
        }
        for (i, _) in t.match_indices('&') {
            let entity = t[i + 1..].split(';').next().unwrap_or_default();
            let ok = ["amp", "lt", "gt", "quot", "apos"].contains(&entity)
                || entity
                    .strip_prefix('#')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !ok || !t[i..].contains(';') {
                return Err(format!("stray & in {t:?}"));
            }
        }
        Ok(())
    };
    while let Some(open) = rest.find('<') {
        text_ok(&rest[..open])?;
        let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name.trim()) {
                return Err(format!("mismatched </{name}>"));
            }
            continue;
        }
        let body = tag.trim_end_matches('/');
        let name = body
            .split_whitespace()
            .next()
            .ok_or("empty tag")?
            .to_owned();
        let mut attrs = body[name.len()..].trim();
        while !attrs.is_empty() {
            let (_, after) = attrs.split_once('=').ok_or("attribute without value")?;
            let quote = after.chars().next().ok_or("missing value")?;
            if quote != '"' {
                return Err(format!("unquoted attribute in <{name}>"));
            }
            let end = after[1..].find('"').ok_or("unterminated attribute")? + 1;
            text_ok(&after[1..end])?;
            attrs = after[end + 1..].trim();
        }
        elements += 1;
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    text_ok(rest)?;
    if stack.is_empty() {
        Ok(elements)
    } else {
        Err(format!("unclosed {stack:?}"))
    }
}

/// The picture of [`annotated_los`], rebased at month 18.
async fn picture(suite: &TestSuite) -> pb::RenderSpcChartResponse {
    annotated_los(suite).await;
    render(&sou_viewer(suite), render_request(LOS))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_picture_is_well_formed_svg() {
    let suite = TestSuite::start().await;
    let svg = picture(&suite).await;
    assert_eq!(svg.content_type, "image/svg+xml");
    let elements = well_formed(&svg.svg).unwrap_or_else(|e| panic!("{e}"));
    assert!(elements > 60, "{elements} elements");
    assert!(svg.svg.starts_with("<?xml") && svg.svg.ends_with("</svg>"));
    if let Some(dir) = std::env::var_os("QI_SAVE_SVG") {
        std::fs::write(std::path::Path::new(&dir).join("los.svg"), &svg.svg).unwrap();
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_picture_draws_the_title_the_target_and_the_annotations_escaped() {
    let suite = TestSuite::start().await;
    let svg = picture(&suite).await.svg;
    assert!(svg.contains("Mean length of stay"));
    assert!(svg.contains("Target 5.5"));
    assert!(svg.contains("PDSA 2 started &lt;ward rounds&gt; &amp; huddles"));
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_picture_draws_a_mean_per_group() {
    let suite = TestSuite::start().await;
    let svg = picture(&suite).await.svg;
    assert_eq!(svg.matches("<title>Mean:").count(), 2, "a mean per group");
    suite.stop().await.unwrap();
}
