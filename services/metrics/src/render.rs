//! Charts drawn as SVG in Making Data Count style: the value line, each group's mean and
//! process limits (SPC) or the median (run charts), points coloured by their reading, the
//! target line, annotations, and the icons as labelled badges. Both pictures are built from
//! the same pieces (the frame, axes, centre lines, values, legend). Plain string building.

use std::fmt::Write as _;

use chrono::{Datelike, NaiveDate};

use crate::periods::Frequency;
use crate::runchart::{Direction, RuleSet, RunChart, Side, Signal};
use crate::spc::{
    self, AssuranceIcon, DataSufficiency, ImprovementDirection, SpcChart, VariationIcon,
};

/// What a picture shows.
#[derive(Debug)]
pub(crate) struct Picture<'a> {
    pub(crate) title: &'a str,
    pub(crate) unit: &'a str,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) frequency: Frequency,
    pub(crate) direction: ImprovementDirection,
    pub(crate) target: Option<f64>,
    /// The chart, or why there is none (no points).
    pub(crate) chart: Result<&'a SpcChart, &'a str>,
    /// The period of each point.
    pub(crate) periods: &'a [NaiveDate],
    /// (date, text) notes.
    pub(crate) annotations: &'a [(NaiveDate, String)],
    /// A sentence on trial limits or missing data, if any.
    pub(crate) sufficiency_note: &'a str,
}

/// Escapes text for XML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A number for a label: a few significant digits, no trailing zeros.
fn num(x: f64) -> String {
    let decimals = match x.abs() {
        a if a >= 1000.0 => 0,
        a if a >= 100.0 => 1,
        a if a >= 1.0 => 2,
        _ => 3,
    };
    let s = format!("{x:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

fn period_label(frequency: Frequency, d: NaiveDate) -> String {
    match frequency {
        Frequency::Day | Frequency::Week => d.format("%-d %b %y").to_string(),
        Frequency::Month => d.format("%b %Y").to_string(),
        Frequency::Quarter => format!("{} Q{}", d.year(), d.month0() / 3 + 1),
    }
}

/// Round tick steps: 1, 2 or 5 times a power of ten, about `count` of them.
fn ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / count.max(1) as f64;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 50 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

fn variation_badge(icon: VariationIcon) -> (&'static str, &'static str, &'static str) {
    match icon {
        VariationIcon::CommonCause => (spc::COLOUR_COMMON_CAUSE, "~", "Common cause"),
        VariationIcon::ImprovementHigh => (spc::COLOUR_IMPROVEMENT, "H", "Improvement (high)"),
        VariationIcon::ImprovementLow => (spc::COLOUR_IMPROVEMENT, "L", "Improvement (low)"),
        VariationIcon::ConcernHigh => (spc::COLOUR_CONCERN, "H", "Concern (high)"),
        VariationIcon::ConcernLow => (spc::COLOUR_CONCERN, "L", "Concern (low)"),
        VariationIcon::NeutralHigh => (spc::COLOUR_NEUTRAL, "H", "Special cause (high)"),
        VariationIcon::NeutralLow => (spc::COLOUR_NEUTRAL, "L", "Special cause (low)"),
    }
}

fn assurance_badge(icon: Option<AssuranceIcon>) -> (&'static str, &'static str, &'static str) {
    match icon {
        Some(AssuranceIcon::ConsistentPass) => {
            (spc::COLOUR_IMPROVEMENT, "P", "Consistently passing")
        }
        Some(AssuranceIcon::ConsistentFail) => (spc::COLOUR_CONCERN, "F", "Consistently failing"),
        Some(AssuranceIcon::Inconsistent) => (spc::COLOUR_COMMON_CAUSE, "?", "Hit and miss"),
        None => ("#d9d9d9", "–", "No target"),
    }
}

/// A round icon with its letter, the reading under it and what it is under that.
fn badge(out: &mut String, cx: f64, colour: &str, letter: &str, caption: &str, title: &str) {
    let _ = write!(
        out,
        r##"<g class="badge"><title>{title}: {caption}</title><circle cx="{cx:.1}" cy="30" r="17" fill="{colour}" stroke="#ffffff" stroke-width="2"/><text x="{cx:.1}" y="36" text-anchor="middle" font-size="17" font-weight="bold" fill="#ffffff">{letter}</text><text x="{cx:.1}" y="62" text-anchor="middle" font-size="11" fill="#404040">{caption}</text><text x="{cx:.1}" y="74" text-anchor="middle" font-size="9" fill="#7f7f7f">{title}</text></g>"##,
        title = escape(title),
        caption = escape(caption),
        letter = escape(letter),
    );
}

/// Cuts text to about `width` pixels at `px` pixels a character, with an ellipsis.
fn fit(text: &str, width: f64, px: f64) -> String {
    let max = (width / px).floor().max(4.0) as usize;
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// What every picture shares: the frame around a chart.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub(crate) title: &'a str,
    pub(crate) unit: &'a str,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) frequency: Frequency,
    pub(crate) direction: ImprovementDirection,
    pub(crate) target: Option<f64>,
    /// The period of each point.
    pub(crate) periods: &'a [NaiveDate],
    /// (date, text) notes.
    pub(crate) annotations: &'a [(NaiveDate, String)],
    /// A sentence under the title (trial limits, missing data, a runs test not applied).
    pub(crate) note: &'a str,
}

/// The plot area and its scales.
struct Plot {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    n: usize,
    lo: f64,
    hi: f64,
}

impl Plot {
    fn x(&self, i: usize) -> f64 {
        self.left + (i as f64 + 0.5) * self.width / self.n as f64
    }
    fn y(&self, v: f64) -> f64 {
        self.top + (self.hi - v) / (self.hi - self.lo) * self.height
    }
    /// Half a point's slot: where a group's lines start and end.
    fn half_slot(&self) -> f64 {
        self.width / self.n as f64 / 2.0
    }
}

const LEFT: f64 = 72.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 86.0;
const BOTTOM: f64 = 78.0;

/// Opens the document and writes the title, the subtitle (unit, direction, `kind`) and the
/// note.
fn open(out: &mut String, f: &Frame<'_>, kind: &str) {
    let w = f64::from(f.width);
    let left = LEFT;
    let _ = write!(
        out,
        r##"<?xml version="1.0" encoding="UTF-8"?><svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" role="img" aria-label="{}" font-family="Arial, Helvetica, sans-serif"><title>{}</title><rect width="100%" height="100%" fill="#ffffff"/>"##,
        f.width,
        f.height,
        f.width,
        f.height,
        escape(f.title),
        escape(f.title)
    );
    let direction = match f.direction {
        ImprovementDirection::Increase => "higher is better",
        ImprovementDirection::Decrease => "lower is better",
        ImprovementDirection::Neither => "no preferred direction",
    };
    let unit = if f.unit.is_empty() {
        String::new()
    } else {
        format!("{} · ", f.unit)
    };
    // The header keeps clear of the two badges at the top right.
    let header = (w - LEFT - RIGHT - 250.0).max(120.0);
    let _ = write!(
        out,
        r##"<text x="{left}" y="30" font-size="18" font-weight="bold" fill="#231f20">{}</text><text x="{left}" y="50" font-size="12" fill="#595959">{}</text>"##,
        escape(&fit(f.title, header, 10.5)),
        escape(&fit(&format!("{unit}{direction} · {kind}"), header, 6.4)),
    );
    if !f.note.is_empty() {
        let _ = write!(
            out,
            r##"<text x="{left}" y="68" font-size="12" font-style="italic" fill="#e46c0a">{}</text>"##,
            escape(&fit(f.note, header, 6.4))
        );
    }
}

/// The empty plot of a chart with no points, and the end of the document.
fn no_data(out: &mut String, f: &Frame<'_>, why: &str) {
    let (plot_w, plot_h) = plot_size(f);
    let (left, top) = (LEFT, TOP);
    let _ = write!(
        out,
        r##"<rect x="{left}" y="{top}" width="{plot_w:.1}" height="{plot_h:.1}" fill="#f7f7f7" stroke="#d9d9d9"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="16" fill="#595959">Not enough data: {}</text></svg>"##,
        left + plot_w / 2.0,
        top + plot_h / 2.0,
        escape(why)
    );
}

fn plot_size(f: &Frame<'_>) -> (f64, f64) {
    (
        (f64::from(f.width) - LEFT - RIGHT).max(10.0),
        (f64::from(f.height) - TOP - BOTTOM).max(10.0),
    )
}

/// The plot for `n` points spanning `lo..hi` (widened to the target), drawn with its grid,
/// y axis and period labels.
fn axes(out: &mut String, f: &Frame<'_>, n: usize, lo: f64, hi: f64) -> Plot {
    let (mut lo, mut hi) = (lo, hi);
    if let Some(t) = f.target {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    if (hi - lo).abs() < 1e-12 {
        lo -= 1.0;
        hi += 1.0;
    }
    let pad = (hi - lo) * 0.06;
    let (width, height) = plot_size(f);
    let plot = Plot {
        left: LEFT,
        top: TOP,
        width,
        height,
        n: n.max(1),
        lo: lo - pad,
        hi: hi + pad,
    };
    let (left, top) = (LEFT, TOP);
    let _ = write!(
        out,
        r##"<rect x="{left}" y="{top}" width="{width:.1}" height="{height:.1}" fill="#ffffff" stroke="#bfbfbf"/>"##
    );
    for t in ticks(plot.lo, plot.hi, 6) {
        let ty = plot.y(t);
        let _ = write!(
            out,
            r##"<line x1="{left}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#efefef"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11" fill="#595959">{}</text>"##,
            left + width,
            left - 6.0,
            ty + 4.0,
            escape(&num(t))
        );
    }
    // X labels: about ten, evenly spaced.
    let every = n.div_ceil(10).max(1);
    for i in (0..n).step_by(every) {
        let label = f
            .periods
            .get(i)
            .map_or_else(|| (i + 1).to_string(), |d| period_label(f.frequency, *d));
        let (lx, ly) = (plot.x(i), top + height + 16.0);
        let _ = write!(
            out,
            r##"<line x1="{lx:.1}" y1="{:.1}" x2="{lx:.1}" y2="{:.1}" stroke="#bfbfbf"/><text x="{lx:.1}" y="{ly:.1}" text-anchor="middle" font-size="11" fill="#595959">{}</text>"##,
            top + height,
            top + height + 4.0,
            escape(&label)
        );
    }
    plot
}

/// A horizontal centre line over points `first..=last`, with its name in a tooltip.
fn centre_line(out: &mut String, plot: &Plot, first: usize, last: usize, value: f64, name: &str) {
    let (x1, x2) = (
        plot.x(first) - plot.half_slot(),
        plot.x(last) + plot.half_slot(),
    );
    let _ = write!(
        out,
        r##"<line x1="{x1:.1}" y1="{ym:.1}" x2="{x2:.1}" y2="{ym:.1}" stroke="{}" stroke-width="1.5"><title>{name}: {}</title></line>"##,
        spc::COLOUR_MEAN_LINE,
        escape(&num(value)),
        ym = plot.y(value),
    );
}

/// The target line and the annotations.
fn target_and_notes(out: &mut String, f: &Frame<'_>, plot: &Plot) {
    let (left, top) = (plot.left, plot.top);
    if let Some(t) = f.target {
        let _ = write!(
            out,
            r##"<line x1="{left}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="{}" stroke-width="1.5" stroke-dasharray="8 3"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11" fill="{}">Target {}</text>"##,
            left + plot.width,
            spc::COLOUR_TARGET,
            left + plot.width - 4.0,
            plot.y(t) - 4.0,
            spc::COLOUR_TARGET,
            escape(&num(t)),
            ty = plot.y(t),
        );
    }
    // Annotations: a dotted line at the period holding the date, and the note.
    for (k, (day, text)) in f.annotations.iter().enumerate() {
        let i = f.periods.partition_point(|d| d <= day);
        if i == 0 {
            continue;
        }
        let ax = plot.x(i - 1);
        let label_y = top + 12.0 + (k % 3) as f64 * 13.0;
        let _ = write!(
            out,
            r##"<g class="annotation"><line x1="{ax:.1}" y1="{top}" x2="{ax:.1}" y2="{:.1}" stroke="#7f7f7f" stroke-dasharray="1 3"/><text x="{:.1}" y="{label_y:.1}" font-size="11" fill="#404040" stroke="#ffffff" stroke-width="3" paint-order="stroke">{}</text></g>"##,
            top + plot.height,
            ax + 3.0,
            escape(text)
        );
    }
}

/// The values: a grey line, then each point as a dot of its colour with a tooltip
/// (`(colour, reading)` per point).
fn values<'r>(
    out: &mut String,
    f: &Frame<'_>,
    plot: &Plot,
    values: &[f64],
    style: impl Fn(usize) -> (&'r str, &'r str),
) {
    let n = values.len();
    let radius = if n > 400 {
        1.5
    } else if n > 120 {
        2.5
    } else {
        4.0
    };
    out.push_str(r##"<polyline fill="none" stroke=""##);
    out.push_str(spc::COLOUR_VALUE_LINE);
    out.push_str(r##"" stroke-width="1.5" points=""##);
    for (i, v) in values.iter().enumerate() {
        let _ = write!(out, "{:.1},{:.1} ", plot.x(i), plot.y(*v));
    }
    out.push_str(r#""/>"#);
    for (i, v) in values.iter().enumerate() {
        let when = f
            .periods
            .get(i)
            .map_or_else(|| format!("point {}", i + 1), |d| d.to_string());
        let (colour, reading) = style(i);
        let _ = write!(
            out,
            r##"<circle cx="{:.1}" cy="{:.1}" r="{radius}" fill="{colour}"><title>{}: {} ({})</title></circle>"##,
            plot.x(i),
            plot.y(*v),
            escape(&when),
            escape(&num(*v)),
            escape(reading),
        );
    }
}

/// The legend along the bottom: `(colour, label, drawn as a dot)`; ends the document.
fn legend(out: &mut String, f: &Frame<'_>, items: &[(&str, &str, bool)]) {
    let ly = f64::from(f.height) - 22.0;
    let mut lx = LEFT;
    for &(colour, label, dot) in items {
        if dot {
            let _ = write!(
                out,
                r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{colour}"/>"##,
                lx + 6.0,
                ly - 4.0
            );
        } else {
            let _ = write!(
                out,
                r##"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/>"##,
                ly - 4.0,
                lx + 14.0,
                ly - 4.0
            );
        }
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{ly:.1}" font-size="11" fill="#404040">{label}</text>"##,
            lx + 18.0
        );
        lx += 34.0 + label.len() as f64 * 6.4;
    }
    out.push_str("</svg>");
}

/// Draws an SPC picture as a standalone SVG document.
pub(crate) fn svg(p: &Picture<'_>) -> String {
    let f = Frame {
        title: p.title,
        unit: p.unit,
        width: p.width,
        height: p.height,
        frequency: p.frequency,
        direction: p.direction,
        target: p.target,
        periods: p.periods,
        annotations: p.annotations,
        note: p.sufficiency_note,
    };
    let w = f64::from(p.width);
    let mut out = String::with_capacity(8_192);
    open(&mut out, &f, "XmR chart (Making Data Count)");
    let chart = match p.chart {
        Ok(c) if !c.points.is_empty() => c,
        Ok(_) => {
            no_data(&mut out, &f, "no points");
            return out;
        }
        Err(reason) => {
            no_data(&mut out, &f, reason);
            return out;
        }
    };

    // Badges, top right.
    let (colour, letter, caption) = variation_badge(chart.variation);
    badge(
        &mut out,
        w - RIGHT - 180.0,
        colour,
        letter,
        caption,
        "Variation",
    );
    let (colour, letter, caption) = assurance_badge(chart.assurance);
    badge(
        &mut out,
        w - RIGHT - 60.0,
        colour,
        letter,
        caption,
        "Assurance",
    );
    if chart.sufficiency == DataSufficiency::NotEnoughData {
        let _ = write!(
            out,
            r##"<text x="{LEFT}" y="{:.1}" font-size="11" font-weight="bold" fill="#e46c0a">Not enough data: do not read the icons</text>"##,
            TOP - 4.0
        );
    }

    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for pt in &chart.points {
        lo = lo.min(pt.value);
        hi = hi.max(pt.value);
        if let Some(l) = pt.limits {
            lo = lo.min(l.lower);
            hi = hi.max(l.upper);
        }
    }
    let plot = axes(&mut out, &f, chart.points.len(), lo, hi);

    // Each group's mean and limits (dashed; trial limits dotted).
    for g in &chart.groups {
        if g.len == 0 {
            continue;
        }
        let last = g.start + g.len - 1;
        let (x1, x2) = (
            plot.x(g.start) - plot.half_slot(),
            plot.x(last) + plot.half_slot(),
        );
        if let Some(l) = g.limits {
            let dash = if g.trial_limits { "2 3" } else { "6 4" };
            for (v, name) in [
                (l.upper, "Upper process limit"),
                (l.lower, "Lower process limit"),
            ] {
                let _ = write!(
                    out,
                    r##"<line x1="{x1:.1}" y1="{yy:.1}" x2="{x2:.1}" y2="{yy:.1}" stroke="{}" stroke-width="1.5" stroke-dasharray="{dash}"><title>{name}: {}</title></line>"##,
                    spc::COLOUR_PROCESS_LIMIT,
                    escape(&num(v)),
                    yy = plot.y(v),
                );
            }
        }
        centre_line(&mut out, &plot, g.start, last, g.mean, "Mean");
    }
    target_and_notes(&mut out, &f, &plot);
    let ys: Vec<f64> = chart.points.iter().map(|pt| pt.value).collect();
    values(&mut out, &f, &plot, &ys, |i| {
        let pt = &chart.points[i];
        (pt.point_type.colour(), pt.special_cause.ptd_label())
    });
    legend(
        &mut out,
        &f,
        &[
            (spc::COLOUR_MEAN_LINE, "Mean", false),
            (spc::COLOUR_PROCESS_LIMIT, "Process limits", false),
            (spc::COLOUR_TARGET, "Target", false),
            (spc::COLOUR_COMMON_CAUSE, "Common cause", true),
            (spc::COLOUR_IMPROVEMENT, "Improvement", true),
            (spc::COLOUR_CONCERN, "Concern", true),
            (spc::COLOUR_NEUTRAL, "Special cause (no direction)", true),
        ],
    );
    out
}

/// What a run-chart picture shows.
#[derive(Debug)]
pub(crate) struct RunPicture<'a> {
    pub(crate) frame: Frame<'a>,
    /// The chart, or why there is none (no points).
    pub(crate) chart: Result<&'a RunChart, &'a str>,
}

/// The colour and reading of a run-chart point: grey unless it is part of a signal; a
/// shift, trend or long run read against the improvement direction as SPC reads a rule
/// (above or up with INCREASE is an improvement), an astronomical flag neutral.
fn run_point_style(
    chart: &RunChart,
    i: usize,
    direction: ImprovementDirection,
) -> (&'static str, &'static str) {
    let p = &chart.points[i];
    let high = chart.signals.iter().find_map(|s| match *s {
        Signal::Shift {
            start, end, side, ..
        }
        | Signal::LongRun {
            start, end, side, ..
        } if (start..=end).contains(&i) && p.side != Side::On => Some(side == Side::Above),
        Signal::Trend {
            start,
            end,
            direction,
            ..
        } if (start..=end).contains(&i) && p.side != Side::On => Some(direction == Direction::Up),
        Signal::Shift { .. }
        | Signal::LongRun { .. }
        | Signal::Trend { .. }
        | Signal::TooFewRuns
        | Signal::TooManyRuns
        | Signal::FewCrossings
        | Signal::Astronomical { .. } => None,
    });
    match (high, direction) {
        (Some(true), ImprovementDirection::Increase)
        | (Some(false), ImprovementDirection::Decrease) => {
            (spc::COLOUR_IMPROVEMENT, "part of a signal: improvement")
        }
        (Some(_), ImprovementDirection::Increase | ImprovementDirection::Decrease) => {
            (spc::COLOUR_CONCERN, "part of a signal: concern")
        }
        (Some(_), ImprovementDirection::Neither) => (spc::COLOUR_NEUTRAL, "part of a signal"),
        (None, _) if p.astronomical => (spc::COLOUR_NEUTRAL, "astronomical point (flagged)"),
        (None, _) if p.side == Side::On => (spc::COLOUR_COMMON_CAUSE, "on the median"),
        (None, _) => (spc::COLOUR_COMMON_CAUSE, "no signal"),
    }
}

/// Draws a run chart as a standalone SVG document, with the SPC picture's pieces: the
/// values, the median (over the baseline, then dashed beyond it), points in a signal
/// coloured, the target, the annotations and one badge saying whether the chart signals.
pub(crate) fn run_chart_svg(p: &RunPicture<'_>) -> String {
    let f = &p.frame;
    let mut out = String::with_capacity(8_192);
    let kind = match p.chart.map(|c| c.rule_set) {
        Ok(RuleSet::Anhoej) => "run chart (Anhøj rules)",
        _ => "run chart (IHI rules)",
    };
    open(&mut out, f, kind);
    let chart = match p.chart {
        Ok(c) if !c.points.is_empty() => c,
        Ok(_) => {
            no_data(&mut out, f, "no points");
            return out;
        }
        Err(reason) => {
            no_data(&mut out, f, reason);
            return out;
        }
    };
    let (colour, letter, caption) = if chart.has_signal() {
        (spc::COLOUR_NEUTRAL, "!", "Non-random variation")
    } else {
        (spc::COLOUR_COMMON_CAUSE, "~", "Random variation")
    };
    badge(
        &mut out,
        f64::from(f.width) - RIGHT - 60.0,
        colour,
        letter,
        caption,
        "Run chart",
    );

    let n = chart.points.len();
    let (lo, hi) = chart
        .points
        .iter()
        .fold((chart.median, chart.median), |(lo, hi), pt| {
            (lo.min(pt.value), hi.max(pt.value))
        });
    let plot = axes(&mut out, f, n, lo, hi);
    centre_line(
        &mut out,
        &plot,
        0,
        chart.baseline_len.saturating_sub(1),
        chart.median,
        "Median",
    );
    if chart.baseline_len < n {
        // The baseline's median carried on over the later points.
        let (x1, x2) = (
            plot.x(chart.baseline_len) - plot.half_slot(),
            plot.x(n - 1) + plot.half_slot(),
        );
        let _ = write!(
            out,
            r##"<line x1="{x1:.1}" y1="{ym:.1}" x2="{x2:.1}" y2="{ym:.1}" stroke="{}" stroke-width="1.5" stroke-dasharray="6 4"><title>Median of the baseline: {}</title></line>"##,
            spc::COLOUR_MEAN_LINE,
            escape(&num(chart.median)),
            ym = plot.y(chart.median),
        );
    }
    target_and_notes(&mut out, f, &plot);
    let ys: Vec<f64> = chart.points.iter().map(|pt| pt.value).collect();
    values(&mut out, f, &plot, &ys, |i| {
        run_point_style(chart, i, f.direction)
    });
    legend(
        &mut out,
        f,
        &[
            (spc::COLOUR_MEAN_LINE, "Median", false),
            (spc::COLOUR_TARGET, "Target", false),
            (spc::COLOUR_COMMON_CAUSE, "No signal", true),
            (spc::COLOUR_IMPROVEMENT, "Improvement", true),
            (spc::COLOUR_CONCERN, "Concern", true),
            (
                spc::COLOUR_NEUTRAL,
                "Signal (no direction) or astronomical",
                true,
            ),
        ],
    );
    out
}

/// A small well-formedness check: tags nest and close, attributes are quoted, and text
/// holds no raw `<` or stray `&`. Returns the number of elements.
#[cfg(test)]
pub(crate) fn check_xml(doc: &str) -> Result<usize, String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut elements = 0;
    let mut rest = doc
        .strip_prefix("<?xml")
        .map_or(doc, |r| r.split_once("?>").map_or("", |(_, after)| after));
    while !rest.is_empty() {
        match rest.find('<') {
            Some(0) => {}
            Some(i) => {
                check_text(&rest[..i])?;
                rest = &rest[i..];
            }
            None => {
                check_text(rest)?;
                break;
            }
        }
        let end = rest.find('>').ok_or("an unclosed tag")?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name = body.split_whitespace().next().ok_or("an empty tag")?;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
        {
            return Err(format!("bad element name {name:?}"));
        }
        // Attributes: name="value" pairs, values without `<` or raw `&`.
        let mut attrs = body[name.len()..].trim();
        while !attrs.is_empty() {
            let (key, after) = attrs
                .split_once('=')
                .ok_or(format!("attribute without value in <{name}>"))?;
            if key.trim().is_empty() || key.trim().contains(char::is_whitespace) {
                return Err(format!("bad attribute name {key:?}"));
            }
            let quote = after.chars().next().ok_or("missing value")?;
            if quote != '"' && quote != '\'' {
                return Err(format!("unquoted attribute {key} in <{name}>"));
            }
            let close = after[1..].find(quote).ok_or("unterminated attribute")?;
            check_text(&after[1..=close])?;
            attrs = after[close + 2..].trim();
        }
        elements += 1;
        if !self_closing {
            stack.push(name);
        }
    }
    if stack.is_empty() {
        Ok(elements)
    } else {
        Err(format!("unclosed elements {stack:?}"))
    }
}

#[cfg(test)]
fn check_text(t: &str) -> Result<(), String> {
    if t.contains('<') {
        return Err(format!("raw < in {t:?}"));
    }
    let mut rest = t;
    while let Some(i) = rest.find('&') {
        let after = &rest[i + 1..];
        let semi = after.find(';').ok_or(format!("stray & in {t:?}"))?;
        let entity = &after[..semi];
        let known = matches!(entity, "amp" | "lt" | "gt" | "quot" | "apos")
            || entity
                .strip_prefix('#')
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
        if !known {
            return Err(format!("unknown entity &{entity}; in {t:?}"));
        }
        rest = &after[semi + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spc::SpcOptions;

    fn picture<'a>(
        chart: Result<&'a SpcChart, &'a str>,
        periods: &'a [NaiveDate],
        notes: &'a [(NaiveDate, String)],
    ) -> Picture<'a> {
        Picture {
            title: "Falls per 1,000 bed days <BAS> & \"friends\"",
            unit: "per 1,000",
            width: 960,
            height: 540,
            frequency: Frequency::Month,
            direction: ImprovementDirection::Decrease,
            target: Some(4.0),
            chart,
            periods,
            annotations: notes,
            sufficiency_note: "",
        }
    }

    #[test]
    fn a_chart_is_well_formed_and_shows_every_part() {
        let values: Vec<f64> = (0..30)
            .map(|i| {
                if i < 20 {
                    6.0 + (i % 3) as f64 * 0.5
                } else {
                    3.0 + (i % 2) as f64 * 0.3
                }
            })
            .collect();
        // No rebase: the fall after point 20 is a shift, special-cause improvement.
        let options = SpcOptions {
            improvement_direction: ImprovementDirection::Decrease,
            target: Some(4.0),
            ..SpcOptions::default()
        };
        let chart = spc::compute(&values, &options).unwrap();
        let periods: Vec<NaiveDate> = (0..30)
            .map(|i| NaiveDate::from_ymd_opt(2024 + i / 12, (i % 12) as u32 + 1, 1).unwrap())
            .collect();
        let notes = vec![(
            NaiveDate::from_ymd_opt(2025, 9, 14).unwrap(),
            "PDSA 2 started <new bundle> & more".to_owned(),
        )];
        let doc = svg(&picture(Ok(&chart), &periods, &notes));
        if let Some(dir) = std::env::var_os("QI_SAVE_SVG") {
            std::fs::write(std::path::Path::new(&dir).join("render-unit.svg"), &doc).unwrap();
        }
        let elements = check_xml(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
        assert!(elements > 30 + 4);
        assert!(doc.matches("<circle").count() >= 30);
        assert!(doc.contains("Target 4"));
        assert!(doc.contains("PDSA 2 started &lt;new bundle&gt; &amp; more"));
        let blue = format!("r=\"4\" fill=\"{}\"><title>", spc::COLOUR_IMPROVEMENT);
        assert!(
            doc.matches(&blue).count() >= 7,
            "the shift's points are blue"
        );
        assert!(doc.contains("Improvement (low)"));
        assert!(doc.contains("Variation"));
        assert!(doc.contains("Assurance"));
        assert_eq!(doc.matches("<title>Mean:").count(), 1);
    }

    #[test]
    fn an_empty_series_says_not_enough_data() {
        let doc = svg(&picture(Err("no measurements in the range"), &[], &[]));
        check_xml(&doc).unwrap();
        assert!(doc.contains("Not enough data: no measurements in the range"));
    }

    #[test]
    fn the_checker_catches_broken_documents() {
        assert!(check_xml("<svg><g></svg>").is_err());
        assert!(check_xml("<svg a=b/>").is_err());
        assert!(check_xml("<svg>a & b</svg>").is_err());
        assert!(check_xml("<svg><g/></svg>").is_ok());
    }

    #[test]
    fn numbers_and_ticks_are_readable() {
        assert_eq!(num(12.5), "12.5");
        assert_eq!(num(1234.567), "1235");
        assert_eq!(num(0.04), "0.04");
        assert_eq!(num(-0.0001), "0");
        let t = ticks(0.0, 9.5, 6);
        assert_eq!(t, [0.0, 2.0, 4.0, 6.0, 8.0]);
    }
}
