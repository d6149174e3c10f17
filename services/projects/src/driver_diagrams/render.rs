//! Draws a driver diagram as SVG the way QI teams draw them: four columns, the aim on the
//! left, then primary drivers, secondary drivers and change ideas on the right, with a line
//! from each node to each of its parents. Each column is as wide as its longest text needs,
//! up to a bound past which text wraps; boxes grow with their lines. Nodes are ordered by
//! their parents' order, so lines cross as little as the order allows, and each column is
//! placed beside the nodes it connects to. Change ideas are coloured by PDSA status, which
//! a legend explains. Every text is XML-escaped. No fonts are embedded: widths are
//! estimated from a sans-serif font's proportions, with a margin.

use std::collections::HashMap;
use std::fmt::Write as _;

use qi_proto::projects as pb;

/// The estimated width of `c` in a sans-serif font, in ems.
fn char_em(c: char) -> f64 {
    match c {
        'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | 'I' => 0.28,
        'f' | 't' | 'r' | ' ' | '(' | ')' | '-' | '/' => 0.36,
        'm' | 'w' | 'M' | 'W' | '@' | '%' => 0.86,
        c if c.is_ascii_uppercase() => 0.68,
        c if c.is_ascii_digit() => 0.56,
        c if c.is_ascii() => 0.53,
        // Anything else (accents, other scripts): as wide as a capital, to be safe.
        _ => 0.7,
    }
}

fn text_width(s: &str, size: f64) -> f64 {
    s.chars().map(char_em).sum::<f64>() * size
}

/// The font size of node text and of the smaller lines under it.
const FONT: f64 = 13.0;
const SMALL: f64 = 11.0;
const LINE: f64 = 16.0;
const SMALL_LINE: f64 = 14.0;
/// Padding inside a box, and the gaps between boxes and between columns.
const PAD: f64 = 9.0;
const GAP_Y: f64 = 12.0;
const GAP_X: f64 = 64.0;
const MARGIN: f64 = 24.0;
/// The band above the columns: title, legend, column headings.
const HEADER: f64 = 104.0;
/// Column widths: at least the narrowest, at most the widest (the aim's a little wider).
const MIN_WIDTH: f64 = 120.0;
const MAX_WIDTH: f64 = 230.0;
const MAX_AIM_WIDTH: f64 = 260.0;

const HEADINGS: [&str; 4] = [
    "Aim",
    "Primary drivers",
    "Secondary drivers",
    "Change ideas",
];

/// Fill, stroke and text colours of a box.
struct Style {
    fill: &'static str,
    stroke: &'static str,
    text: &'static str,
}

const AIM: Style = Style {
    fill: "#005eb8",
    stroke: "#003087",
    text: "#ffffff",
};
const PRIMARY: Style = Style {
    fill: "#d6e6f5",
    stroke: "#005eb8",
    text: "#212b32",
};
const SECONDARY: Style = Style {
    fill: "#eef4fa",
    stroke: "#41b6e6",
    text: "#212b32",
};

/// A change idea's colours and legend label, by PDSA status.
fn status_style(s: pb::PdsaStatus) -> (&'static str, Style) {
    match s {
        pb::PdsaStatus::Testing => (
            "Testing",
            Style {
                fill: "#fff1cc",
                stroke: "#ed8b00",
                text: "#212b32",
            },
        ),
        pb::PdsaStatus::Adopted => (
            "Adopted",
            Style {
                fill: "#dcf1e2",
                stroke: "#007f3b",
                text: "#212b32",
            },
        ),
        pb::PdsaStatus::Abandoned => (
            "Abandoned",
            Style {
                fill: "#f8dcdc",
                stroke: "#d5281b",
                text: "#212b32",
            },
        ),
        pb::PdsaStatus::Untested | pb::PdsaStatus::Unspecified => (
            "Untested",
            Style {
                fill: "#f0f4f5",
                stroke: "#768692",
                text: "#212b32",
            },
        ),
    }
}

const LEGEND: [pb::PdsaStatus; 4] = [
    pb::PdsaStatus::Untested,
    pb::PdsaStatus::Testing,
    pb::PdsaStatus::Adopted,
    pb::PdsaStatus::Abandoned,
];

/// Escapes text for XML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not allowed in XML 1.0 at all (stored text has none; be safe).
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Wraps `s` into lines no wider than `width` at `size`, breaking at spaces and, for a
/// word wider than a line, inside the word.
fn wrap(s: &str, width: f64, size: f64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in s.split_whitespace() {
        let candidate = if line.is_empty() {
            word.to_owned()
        } else {
            format!("{line} {word}")
        };
        if text_width(&candidate, size) <= width {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        // The word alone: split it if it is still too wide.
        for c in word.chars() {
            line.push(c);
            if text_width(&line, size) > width && line.chars().count() > 1 {
                let last = line.pop().unwrap_or(c);
                lines.push(std::mem::take(&mut line));
                line.push(last);
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// A node placed on the page.
struct Placed<'a> {
    node: &'a pb::DriverNode,
    column: usize,
    lines: Vec<String>,
    small: Vec<String>,
    y: f64,
    height: f64,
}

fn column_of(n: &pb::DriverNode) -> usize {
    match pb::DriverNodeKind::try_from(n.kind) {
        Ok(pb::DriverNodeKind::Aim) | Ok(pb::DriverNodeKind::Unspecified) | Err(_) => 0,
        Ok(pb::DriverNodeKind::PrimaryDriver) => 1,
        Ok(pb::DriverNodeKind::SecondaryDriver) => 2,
        Ok(pb::DriverNodeKind::ChangeIdea) => 3,
    }
}

/// The smaller lines under a node's text: its owner, its links.
fn small_lines(n: &pb::DriverNode) -> Vec<String> {
    let mut out = Vec::new();
    if !n.owner.is_empty() {
        out.push(format!("Owner: {}", n.owner));
    }
    if !n.pdsa_cycles.is_empty() {
        let numbers: Vec<&str> = n
            .pdsa_cycles
            .iter()
            .filter_map(|c| c.rsplit('/').next())
            .collect();
        let (label, _) = status_style(status_of(n));
        out.push(format!("{label} · PDSA {}", numbers.join(", ")));
    } else if column_of(n) == 3 {
        out.push("Untested".to_owned());
    }
    if !n.measures.is_empty() {
        let k = n.measures.len();
        out.push(format!("{k} measure{}", if k == 1 { "" } else { "s" }));
    }
    out
}

fn status_of(n: &pb::DriverNode) -> pb::PdsaStatus {
    pb::PdsaStatus::try_from(n.pdsa_status).unwrap_or(pb::PdsaStatus::Untested)
}

/// The SVG document of `diagram`, headed with the project's `title`.
pub(crate) fn svg(title: &str, diagram: &pb::DriverDiagram) -> String {
    // Columns, each ordered by its nodes' parents (the smallest index of a parent in the
    // column to the left), then in the order they were added.
    let mut columns: [Vec<&pb::DriverNode>; 4] = Default::default();
    for n in &diagram.nodes {
        columns[column_of(n)].push(n);
    }
    let mut order: HashMap<&str, usize> = HashMap::new();
    for col in &mut columns {
        col.sort_by_key(|n| {
            n.parents
                .iter()
                .filter_map(|p| order.get(p.as_str()).copied())
                .min()
                .unwrap_or(usize::MAX)
        });
        for (i, n) in col.iter().enumerate() {
            order.insert(n.id.as_str(), i);
        }
    }

    // Widths: the widest single-line text of the column (small lines included), bounded.
    let widths: Vec<f64> = columns
        .iter()
        .enumerate()
        .map(|(c, col)| {
            let max = if c == 0 { MAX_AIM_WIDTH } else { MAX_WIDTH };
            let heading = text_width(HEADINGS[c], FONT) + 4.0;
            col.iter()
                .map(|n| {
                    let small = small_lines(n)
                        .iter()
                        .map(|s| text_width(s, SMALL))
                        .fold(0.0, f64::max);
                    text_width(&n.text, FONT).max(small) + 2.0 * PAD
                })
                .fold(heading.max(MIN_WIDTH), f64::max)
                .min(max)
        })
        .collect();
    let xs: Vec<f64> = widths
        .iter()
        .scan(MARGIN, |x, w| {
            let here = *x;
            *x += w + GAP_X;
            Some(here)
        })
        .collect();

    // Boxes, stacked per column.
    let mut placed: Vec<Vec<Placed<'_>>> = columns
        .iter()
        .enumerate()
        .map(|(c, col)| {
            col.iter()
                .map(|n| {
                    let inner = widths[c] - 2.0 * PAD;
                    // Wrapped with a margin for fonts wider than estimated (the aim's is
                    // bold).
                    let size = if c == 0 { FONT * 1.3 } else { FONT * 1.06 };
                    let lines = wrap(&n.text, inner, size);
                    let small: Vec<String> = small_lines(n)
                        .iter()
                        .flat_map(|s| wrap(s, inner, SMALL))
                        .collect();
                    let height = 2.0 * PAD
                        + lines.len() as f64 * LINE
                        + small.len() as f64 * SMALL_LINE
                        + if small.is_empty() { 0.0 } else { 3.0 };
                    Placed {
                        node: n,
                        column: c,
                        lines,
                        small,
                        y: 0.0,
                        height,
                    }
                })
                .collect()
        })
        .collect();
    let stacked = |col: &[Placed<'_>]| -> f64 {
        col.iter().map(|p| p.height).sum::<f64>() + GAP_Y * col.len().saturating_sub(1) as f64
    };
    let body = placed.iter().map(|c| stacked(c)).fold(40.0, f64::max);
    let top = HEADER;

    // The tallest column stacks from the top; the others sit beside what they connect to:
    // columns to its left by their children, to its right by their parents.
    let tallest = (0..4)
        .max_by(|a, b| stacked(&placed[*a]).total_cmp(&stacked(&placed[*b])))
        .unwrap_or(0);
    let mut centre: HashMap<String, f64> = HashMap::new();
    let place = |col: &mut Vec<Placed<'_>>,
                 centre: &HashMap<String, f64>,
                 by_children: bool,
                 all: &[pb::DriverNode]| {
        let want: Vec<Option<f64>> = col
            .iter()
            .map(|p| {
                let ys: Vec<f64> = if by_children {
                    all.iter()
                        .filter(|n| n.parents.contains(&p.node.id))
                        .filter_map(|n| centre.get(&n.id).copied())
                        .collect()
                } else {
                    p.node
                        .parents
                        .iter()
                        .filter_map(|id| centre.get(id).copied())
                        .collect()
                };
                (!ys.is_empty()).then(|| ys.iter().sum::<f64>() / ys.len() as f64)
            })
            .collect();
        spread(col, &want, top, top + body);
    };
    let record = |col: &[Placed<'_>], centre: &mut HashMap<String, f64>| {
        for p in col {
            centre.insert(p.node.id.clone(), p.y + p.height / 2.0);
        }
    };
    {
        let col = &mut placed[tallest];
        let mut y = top;
        for p in col.iter_mut() {
            p.y = y;
            y += p.height + GAP_Y;
        }
        record(col, &mut centre);
    }
    for c in (0..tallest).rev() {
        place(&mut placed[c], &centre, true, &diagram.nodes);
        record(&placed[c], &mut centre);
    }
    for col in placed.iter_mut().skip(tallest + 1) {
        place(col, &centre, false, &diagram.nodes);
        record(col, &mut centre);
    }

    let width = xs[3] + widths[3] + MARGIN;
    let height = top + body + MARGIN;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="Arial, Helvetica, sans-serif" role="img" aria-labelledby="title">
<title id="title">Driver diagram: {t} (version {v})</title>
<desc>{d}</desc>
<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#768692"/></marker></defs>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{m}" y="30" font-size="18" font-weight="bold" fill="#212b32">{t}</text>
<text x="{m}" y="50" font-size="12" fill="#4c6272">Driver diagram, version {v}</text>
"##,
        w = width,
        h = height,
        t = escape(title),
        v = diagram.version,
        m = MARGIN,
        d = escape(&format!(
            "{} nodes: {} aim, {} primary drivers, {} secondary drivers, {} change ideas",
            diagram.nodes.len(),
            columns[0].len(),
            columns[1].len(),
            columns[2].len(),
            columns[3].len()
        )),
    );
    // The legend, top right.
    let _ = writeln!(out, r#"<g class="legend">"#);
    let mut lx = width - MARGIN;
    for s in LEGEND.iter().rev() {
        let (label, style) = status_style(*s);
        lx -= text_width(label, 12.0) + 30.0;
        let _ = writeln!(
            out,
            r##"<g class="legend-item status-{c}"><rect x="{x:.1}" y="20" width="16" height="12" rx="2" fill="{f}" stroke="{s}" stroke-width="1.5"/><text x="{tx:.1}" y="30" font-size="12" fill="#212b32">{l}</text></g>"##,
            c = label.to_lowercase(),
            x = lx,
            tx = lx + 21.0,
            f = style.fill,
            s = style.stroke,
            l = label,
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{x:.1}" y="30" font-size="12" text-anchor="end" fill="#4c6272">Change ideas by PDSA status:</text></g>"##,
        x = lx - 8.0
    );
    // Column headings and rules.
    for (c, heading) in HEADINGS.iter().enumerate() {
        let _ = writeln!(
            out,
            r##"<text class="heading" x="{x:.1}" y="{y:.1}" font-size="13" font-weight="bold" fill="#4c6272">{heading}</text><line x1="{x:.1}" y1="{ly:.1}" x2="{x2:.1}" y2="{ly:.1}" stroke="#d8dde0" stroke-width="1"/>"##,
            x = xs[c],
            y = top - 22.0,
            ly = top - 14.0,
            x2 = xs[c] + widths[c],
        );
    }
    if diagram.nodes.is_empty() {
        let _ = writeln!(
            out,
            r##"<text x="{m}" y="{y:.1}" font-size="13" fill="#4c6272">No driver diagram yet: add the aim with EditDriverDiagram.</text>"##,
            m = MARGIN,
            y = top + 20.0
        );
    }
    // Lines first, under the boxes: from each parent's right edge to the child's left.
    let boxes: HashMap<&str, (f64, f64, f64)> = placed
        .iter()
        .flatten()
        .map(|p| {
            (
                p.node.id.as_str(),
                (xs[p.column], p.y + p.height / 2.0, widths[p.column]),
            )
        })
        .collect();
    let _ = writeln!(
        out,
        r##"<g class="links" fill="none" stroke="#768692" stroke-width="1.3">"##
    );
    for p in placed.iter().flatten() {
        for parent in &p.node.parents {
            let Some((px, py, pw)) = boxes.get(parent.as_str()) else {
                continue;
            };
            let (x1, y1) = (px + pw, *py);
            let (x2, y2) = (xs[p.column] - 2.0, p.y + p.height / 2.0);
            let mid = (x1 + x2) / 2.0;
            let _ = writeln!(
                out,
                r#"<path class="link" data-from="{f}" data-to="{t}" d="M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}" marker-end="url(#arrow)"/>"#,
                f = escape(parent),
                t = escape(&p.node.id),
            );
        }
    }
    let _ = writeln!(out, "</g>");
    // The boxes, column by column.
    for (c, col) in placed.iter().enumerate() {
        let class = ["aim", "primary-driver", "secondary-driver", "change-idea"][c];
        let _ = writeln!(
            out,
            r#"<g class="column" data-column="{c}" data-kind="{class}">"#
        );
        for p in col {
            let status = status_of(p.node);
            let (label, style) = match c {
                0 => ("", AIM),
                1 => ("", PRIMARY),
                2 => ("", SECONDARY),
                _ => status_style(status),
            };
            let status_attr = if c == 3 {
                format!(r#" data-status="{}""#, label.to_lowercase())
            } else {
                String::new()
            };
            let x = xs[c];
            let _ = writeln!(
                out,
                r#"<g class="node {class}" data-id="{id}"{status_attr}><title>{full}</title><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="6" fill="{f}" stroke="{s}" stroke-width="{sw}"/>"#,
                id = escape(&p.node.id),
                full = escape(&p.node.text),
                y = p.y,
                w = widths[c],
                h = p.height,
                f = style.fill,
                s = style.stroke,
                sw = if c == 3 { 2 } else { 1 },
            );
            let _ = write!(
                out,
                r#"<text x="{tx:.1}" y="{ty:.1}" font-size="{FONT}" fill="{fill}"{bold}>"#,
                tx = x + PAD,
                ty = p.y + PAD + FONT - 1.0,
                fill = style.text,
                bold = if c == 0 { r#" font-weight="bold""# } else { "" },
            );
            for (i, line) in p.lines.iter().enumerate() {
                let _ = write!(
                    out,
                    r#"<tspan x="{tx:.1}" dy="{dy}">{l}</tspan>"#,
                    tx = x + PAD,
                    dy = if i == 0 { 0.0 } else { LINE },
                    l = escape(line),
                );
            }
            let _ = writeln!(out, "</text>");
            if !p.small.is_empty() {
                let sy = p.y + PAD + p.lines.len() as f64 * LINE + 3.0 + SMALL - 1.0;
                let _ = write!(
                    out,
                    r#"<text class="meta" x="{tx:.1}" y="{sy:.1}" font-size="{SMALL}" fill="{fill}">"#,
                    tx = x + PAD,
                    fill = if c == 0 { "#e8edee" } else { "#4c6272" },
                );
                for (i, line) in p.small.iter().enumerate() {
                    let _ = write!(
                        out,
                        r#"<tspan x="{tx:.1}" dy="{dy}">{l}</tspan>"#,
                        tx = x + PAD,
                        dy = if i == 0 { 0.0 } else { SMALL_LINE },
                        l = escape(line),
                    );
                }
                let _ = writeln!(out, "</text>");
            }
            let _ = writeln!(out, "</g>");
        }
        let _ = writeln!(out, "</g>");
    }
    out.push_str("</svg>\n");
    out
}

/// Places a column's boxes, in order, as near their wanted centres as the boxes before and
/// after allow, between `top` and `bottom` (which hold them all stacked).
fn spread(col: &mut [Placed<'_>], want: &[Option<f64>], top: f64, bottom: f64) {
    // Boxes with no wanted place go under the box before them.
    let mut prev_bottom = top - GAP_Y;
    for (p, w) in col.iter_mut().zip(want) {
        let wanted = w.map_or(prev_bottom + GAP_Y, |c| c - p.height / 2.0);
        p.y = wanted.max(prev_bottom + GAP_Y);
        prev_bottom = p.y + p.height;
    }
    // Back from the bottom: nothing past it, nothing overlapping the box after.
    let mut next_top = bottom + GAP_Y;
    for p in col.iter_mut().rev() {
        p.y = p.y.min(next_top - GAP_Y - p.height);
        next_top = p.y;
    }
    // And nothing above the top (the column fits, so this keeps them apart).
    let mut prev_bottom = top - GAP_Y;
    for p in col.iter_mut() {
        p.y = p.y.max(prev_bottom + GAP_Y);
        prev_bottom = p.y + p.height;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_wraps_within_the_width_and_long_words_break() {
        let lines = wrap(
            "Reduce the average length of stay of frail patients by two days",
            150.0,
            FONT,
        );
        assert!(lines.len() > 1, "{lines:?}");
        assert!(
            lines.iter().all(|l| text_width(l, FONT) <= 150.0),
            "{lines:?}"
        );
        assert_eq!(
            lines.join(" "),
            "Reduce the average length of stay of frail patients by two days"
        );
        let long = wrap(&"x".repeat(200), 100.0, FONT);
        assert!(long.len() > 5);
        assert!(long.iter().all(|l| text_width(l, FONT) <= 100.0));
        assert_eq!(wrap("", 100.0, FONT), [""]);
    }

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;"
        );
        let d = pb::DriverDiagram {
            version: 1,
            nodes: vec![pb::DriverNode {
                id: "aim".into(),
                kind: pb::DriverNodeKind::Aim as i32,
                text: "</text><script>alert(1)</script>".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let svg = svg("A & B <project>", &d);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        assert!(
            texts.contains(&"</text><script>alert(1)</script>"),
            "{texts:?}"
        );
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("A &amp; B &lt;project&gt;"));
    }

    #[test]
    fn boxes_in_a_column_never_overlap_and_stay_on_the_page() {
        let mk = |h: f64| Placed {
            node: Box::leak(Box::default()),
            column: 1,
            lines: vec![],
            small: vec![],
            y: 0.0,
            height: h,
        };
        let mut col: Vec<Placed<'_>> = (0..5).map(|i| mk(30.0 + i as f64)).collect();
        // Everyone wants the same place, near the bottom.
        let want = vec![Some(390.0); 5];
        spread(&mut col, &want, 100.0, 400.0);
        for w in col.windows(2) {
            assert!(w[1].y >= w[0].y + w[0].height + GAP_Y - 1e-9);
        }
        assert!(col[0].y >= 100.0);
        assert!(col[4].y + col[4].height <= 400.0 + 1e-9);
    }
}
