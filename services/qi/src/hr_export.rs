//! `qi hr export`: the register's changes (`StreamTrainingRecords`) written as the file a
//! trust uploads to ESR, in a layout the trust chooses.
//!
//! ESR and OLM upload layouts differ between trusts, so the columns, their order and
//! headings, the date format, the delimiter and what becomes of revocations come from a small
//! TOML file (`--layout FILE` or `QI_HR_EXPORT_LAYOUT`); every key is optional and defaults
//! to [`Layout::default`], the layout the README documents:
//!
//! ```toml
//! columns = ["cursor", "kind", "employee_number", "assignment_number", "competence_id",
//!            "competence_name", "course_code", "achieved_date", "expiry_date", "source"]
//! header = true             # a first row of headings
//! headers = []              # the headings, one a column; empty: the column names
//! date_format = "%d/%m/%Y"  # strftime, as chrono reads it; must show the whole date
//! delimiter = ","           # one ASCII character, e.g. "\t" or ";"
//! revoked = "row"           # "row": a row of kind `revoked`; "skip": not written
//! held_by_esr = "skip"      # imported from ESR or by transfer: "skip" (ESR has them) or "row"
//! ```
//!
//! The column `provenance` (`course`, `historic`, `esr` or `transfer`) is not in the default
//! columns, so the default file stays as it was; a layout may add it.
//!
//! A layout that cannot be used is refused before anything is called ([`BadLayout`], exit
//! status 64), naming the key and listing the known columns.

use std::fmt::Write as _;
use std::path::Path;

use chrono::NaiveDate;
use chrono::format::{Item, StrftimeItems};
use qi_proto::google::r#type::Date;
use qi_proto::training as pb;
use serde::Deserialize;

/// A value the export can write: the fields of a `TrainingRecordChange`, by their proto
/// names, so the file, the API and the README say the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Where the change sits in the register's history (resume after it).
    Cursor,
    /// `achieved` or `revoked`.
    Kind,
    /// The ESR employee number.
    EmployeeNumber,
    /// The primary assignment number.
    AssignmentNumber,
    /// The course's ESR competence id (empty when it names none).
    CompetenceId,
    /// The course's ESR competence name (its title when it names none).
    CompetenceName,
    /// The course code.
    CourseCode,
    /// The date achieved.
    AchievedDate,
    /// The expiry (empty when the course has no validity period).
    ExpiryDate,
    /// The cohort it was achieved in; for a completion from elsewhere, where it comes from
    /// and its reference.
    Source,
    /// Where the completion comes from: `course` (earned here), `historic`, `esr` or
    /// `transfer`.
    Provenance,
}

impl Column {
    /// Every column: the default layout's, then `provenance`.
    pub const ALL: [Column; 11] = [
        Column::Cursor,
        Column::Kind,
        Column::EmployeeNumber,
        Column::AssignmentNumber,
        Column::CompetenceId,
        Column::CompetenceName,
        Column::CourseCode,
        Column::AchievedDate,
        Column::ExpiryDate,
        Column::Source,
        Column::Provenance,
    ];

    /// The default layout's columns, in order.
    pub const DEFAULT: [Column; 10] = [
        Column::Cursor,
        Column::Kind,
        Column::EmployeeNumber,
        Column::AssignmentNumber,
        Column::CompetenceId,
        Column::CompetenceName,
        Column::CourseCode,
        Column::AchievedDate,
        Column::ExpiryDate,
        Column::Source,
    ];

    /// The column's name in a layout file and the default heading.
    pub fn name(self) -> &'static str {
        match self {
            Column::Cursor => "cursor",
            Column::Kind => "kind",
            Column::EmployeeNumber => "employee_number",
            Column::AssignmentNumber => "assignment_number",
            Column::CompetenceId => "competence_id",
            Column::CompetenceName => "competence_name",
            Column::CourseCode => "course_code",
            Column::AchievedDate => "achieved_date",
            Column::ExpiryDate => "expiry_date",
            Column::Source => "source",
            Column::Provenance => "provenance",
        }
    }

    fn parse(name: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.name() == name)
    }

    /// This column's text for one change.
    fn value(self, c: &pb::TrainingRecordChange, dates: &DateFormat) -> anyhow::Result<String> {
        Ok(match self {
            Column::Cursor => c.cursor.clone(),
            Column::Kind => kind(c).to_owned(),
            Column::EmployeeNumber => c.employee_number.clone(),
            Column::AssignmentNumber => c.assignment_number.clone(),
            Column::CompetenceId => c.competence_id.clone(),
            Column::CompetenceName => c.competence_name.clone(),
            Column::CourseCode => c.course_code.clone(),
            Column::AchievedDate => dates.show(c.achieved_date.as_ref())?,
            Column::ExpiryDate => dates.show(c.expiry_date.as_ref())?,
            Column::Source => c.source.clone(),
            Column::Provenance => provenance(c).to_owned(),
        })
    }
}

/// The known columns, for messages.
fn known_columns() -> String {
    Column::ALL.map(Column::name).join(", ")
}

/// `achieved` or `revoked`; anything the stream does not mark revoked is an achievement.
fn kind(c: &pb::TrainingRecordChange) -> &'static str {
    match pb::TrainingRecordChangeKind::try_from(c.kind) {
        Ok(pb::TrainingRecordChangeKind::Revoked) => "revoked",
        Ok(pb::TrainingRecordChangeKind::Achieved | pb::TrainingRecordChangeKind::Unspecified)
        | Err(_) => "achieved",
    }
}

/// Where a change's completion comes from, as the `provenance` column writes it.
fn provenance(c: &pb::TrainingRecordChange) -> &'static str {
    match pb::CompletionSource::try_from(c.provenance) {
        Ok(pb::CompletionSource::HistoricRegister) => "historic",
        Ok(pb::CompletionSource::EsrCompetence) => "esr",
        Ok(pb::CompletionSource::InterAuthorityTransfer) => "transfer",
        Ok(pb::CompletionSource::Course | pb::CompletionSource::Unspecified) | Err(_) => "course",
    }
}

/// Whether ESR holds a change's completion already: it came from an ESR extract, or with
/// the person by Inter Authority Transfer.
pub fn held_by_esr(c: &pb::TrainingRecordChange) -> bool {
    matches!(provenance(c), "esr" | "transfer")
}

/// What the export does with a revocation (a corrected register undid a completion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Written as a row of kind `revoked`, like any change.
    Row,
    /// Not written (the trust's upload takes achievements only): the export lists them on
    /// standard error, to be withdrawn in ESR by hand.
    Skip,
}

/// A checked strftime date format that shows the whole date.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DateFormat(String);

impl DateFormat {
    /// Checks `format` renders a date alone (no times or zones) and that what it writes reads
    /// back as the same date: a format without the day, the month or the year is refused.
    fn parse(format: &str) -> Result<DateFormat, String> {
        let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
        if items.contains(&Item::Error) {
            return Err(format!("{format:?} is not a strftime format"));
        }
        // A day above 12, so a format that swaps day and month is still read back exactly.
        let probe = NaiveDate::from_ymd_opt(2027, 11, 23).ok_or("no probe date")?;
        let mut shown = String::new();
        if write!(shown, "{}", probe.format_with_items(items.iter())).is_err() {
            return Err(format!(
                "{format:?} asks for what a date does not have (a time or a zone)"
            ));
        }
        match NaiveDate::parse_from_str(&shown, format) {
            Ok(back) if back == probe => Ok(DateFormat(format.to_owned())),
            _ => Err(format!(
                "{format:?} does not show the whole date (day, month and year): 23 November 2027 comes out as {shown:?}"
            )),
        }
    }

    /// A date in this format; empty when there is none. A date that is no date is an error,
    /// never an empty cell: ESR would take the row without it.
    fn show(&self, d: Option<&Date>) -> anyhow::Result<String> {
        let Some(d) = d else {
            return Ok(String::new());
        };
        let day = u32::try_from(d.month)
            .ok()
            .zip(u32::try_from(d.day).ok())
            .and_then(|(m, day)| NaiveDate::from_ymd_opt(d.year, m, day))
            .ok_or_else(|| anyhow::anyhow!("the service sent {d:?}, which is not a date"))?;
        Ok(day.format(&self.0).to_string())
    }
}

/// How `qi hr export` writes its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    columns: Vec<Column>,
    /// The heading row, when there is one.
    headers: Option<Vec<String>>,
    dates: DateFormat,
    delimiter: u8,
    revoked: Revoked,
    /// Whether completions ESR holds already (imported from it, or by transfer) are
    /// written.
    held_by_esr: Revoked,
}

impl Default for Layout {
    /// The columns in [`Column::DEFAULT`]'s order, headed by their names, dates as
    /// `DD/MM/YYYY`, comma-separated, revocations as rows, completions ESR holds already
    /// left out.
    fn default() -> Self {
        Layout {
            columns: Column::DEFAULT.to_vec(),
            headers: Some(Column::DEFAULT.map(|c| c.name().to_owned()).to_vec()),
            dates: DateFormat(DEFAULT_DATE_FORMAT.to_owned()),
            delimiter: b',',
            revoked: Revoked::Row,
            held_by_esr: Revoked::Skip,
        }
    }
}

/// The default date format: `DD/MM/YYYY`, as ESR shows dates.
pub const DEFAULT_DATE_FORMAT: &str = "%d/%m/%Y";

/// A layout file as written: every key optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayoutFile {
    columns: Option<Vec<String>>,
    header: Option<bool>,
    headers: Option<Vec<String>>,
    date_format: Option<String>,
    delimiter: Option<String>,
    revoked: Option<String>,
    held_by_esr: Option<String>,
}

/// A layout that cannot be used: a usage error (exit status 64), found before anything is
/// called.
#[derive(Debug)]
pub struct BadLayout(String);

impl std::fmt::Display for BadLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadLayout {}

impl Layout {
    /// Reads a layout file (see the module's documentation).
    pub fn load(path: &Path) -> Result<Layout, BadLayout> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            BadLayout(format!(
                "the export layout {} cannot be read: {e}",
                path.display()
            ))
        })?;
        Layout::parse(&text)
            .map_err(|e| BadLayout(format!("the export layout {}: {}", path.display(), e.0)))
    }

    /// Reads a layout from its TOML text.
    pub fn parse(text: &str) -> Result<Layout, BadLayout> {
        // TOML's own message names the line, the key and, for an unknown key, the known ones.
        let file: LayoutFile =
            toml::from_str(text).map_err(|e| BadLayout(e.to_string().trim_end().to_owned()))?;
        let default = Layout::default();
        let bad = |key: &str, why: String| BadLayout(format!("{key}: {why}"));
        let columns = match file.columns {
            None => default.columns,
            Some(names) if names.is_empty() => {
                return Err(bad(
                    "columns",
                    format!("name at least one of {}", known_columns()),
                ));
            }
            Some(names) => names
                .iter()
                .map(|n| {
                    Column::parse(n).ok_or_else(|| {
                        bad(
                            "columns",
                            format!("{n:?} is not a column; the columns are {}", known_columns()),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let headers = match (file.header.unwrap_or(true), file.headers) {
            (false, Some(h)) if !h.is_empty() => {
                return Err(bad("headers", "given with header = false".into()));
            }
            (false, _) => None,
            (true, Some(h)) if !h.is_empty() => {
                if h.len() != columns.len() {
                    return Err(bad(
                        "headers",
                        format!(
                            "{} headings for {} columns: give one a column",
                            h.len(),
                            columns.len()
                        ),
                    ));
                }
                Some(h)
            }
            (true, _) => Some(columns.iter().map(|c| c.name().to_owned()).collect()),
        };
        let dates = match file.date_format {
            None => default.dates,
            Some(f) => DateFormat::parse(&f).map_err(|why| bad("date_format", why))?,
        };
        let delimiter = match file.delimiter.as_deref() {
            None => default.delimiter,
            Some(d) => match d.as_bytes() {
                [b] if (b.is_ascii_punctuation() && *b != b'"') || matches!(*b, b'\t' | b' ') => *b,
                _ => {
                    return Err(bad(
                        "delimiter",
                        format!(
                            "{d:?}: use one ASCII punctuation character (not `\"`), a tab or a space"
                        ),
                    ));
                }
            },
        };
        let revoked = match file.revoked.as_deref() {
            None | Some("row") => Revoked::Row,
            Some("skip") => Revoked::Skip,
            Some(other) => {
                return Err(bad(
                    "revoked",
                    format!("{other:?}: use \"row\" or \"skip\""),
                ));
            }
        };
        let held_by_esr = match file.held_by_esr.as_deref() {
            None | Some("skip") => Revoked::Skip,
            Some("row") => Revoked::Row,
            Some(other) => {
                return Err(bad(
                    "held_by_esr",
                    format!("{other:?}: use \"skip\" or \"row\""),
                ));
            }
        };
        // Without `kind`, a revocation written as a row would read as an achievement.
        if revoked == Revoked::Row && !columns.contains(&Column::Kind) {
            return Err(bad(
                "columns",
                "without `kind` a revoked record reads as achieved: add \"kind\", or set revoked = \"skip\"".into(),
            ));
        }
        Ok(Layout {
            columns,
            headers,
            dates,
            delimiter,
            revoked,
            held_by_esr,
        })
    }

    /// The layout's columns, in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }
}

/// What an export did.
#[derive(Debug, Default)]
pub struct ExportReport {
    /// The last cursor received (written or skipped): resume after it. `None` when there was
    /// no change after the cursor given.
    pub last_cursor: Option<String>,
    /// Rows written (the heading not counted).
    pub written: u64,
    /// Revocations the layout left out (`revoked = "skip"`), to be withdrawn in ESR by hand.
    pub skipped: Vec<pb::TrainingRecordChange>,
    /// Changes left out because ESR holds their completions already (imported from an ESR
    /// extract, or brought by Inter Authority Transfer; `held_by_esr = "skip"`).
    pub held_by_esr: u64,
}

/// `qi hr export`: writes the register's changes after `since` to `out` in `layout`.
pub async fn export(
    gateway: &str,
    token: &str,
    since: &str,
    layout: &Layout,
    out: &mut impl std::io::Write,
) -> anyhow::Result<ExportReport> {
    let mut client = crate::hr::client(gateway, token).await?;
    let mut stream = client
        .stream_training_records(pb::StreamTrainingRecordsRequest {
            since_cursor: since.to_owned(),
        })
        .await
        .map_err(|s| {
            anyhow::anyhow!(
                "StreamTrainingRecords failed: {:?} {}",
                s.code(),
                s.message()
            )
        })?
        .into_inner();
    let mut writer = csv::WriterBuilder::new()
        .delimiter(layout.delimiter)
        .from_writer(out);
    if let Some(headers) = &layout.headers {
        writer.write_record(headers)?;
    }
    let mut report = ExportReport::default();
    while let Some(batch) = stream
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("the export stream broke: {:?} {}", s.code(), s.message()))?
    {
        for c in batch.changes {
            report.last_cursor = Some(c.cursor.clone());
            if layout.held_by_esr == Revoked::Skip && held_by_esr(&c) {
                report.held_by_esr += 1;
                continue;
            }
            if layout.revoked == Revoked::Skip && kind(&c) == "revoked" {
                report.skipped.push(c);
                continue;
            }
            let row = layout
                .columns
                .iter()
                .map(|col| col.value(&c, &layout.dates))
                .collect::<anyhow::Result<Vec<_>>>()?;
            writer.write_record(&row)?;
            report.written += 1;
        }
    }
    writer.flush()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample layout kept with the test fixtures, and the default's own file.
    const SAMPLE: &str = include_str!("../../../tests/fixtures/hr-export-layout.toml");
    const DEFAULT_FILE: &str =
        include_str!("../../../tests/fixtures/hr-export-default-layout.toml");

    fn refusal(text: &str) -> String {
        Layout::parse(text).unwrap_err().to_string()
    }

    fn change(kind: pb::TrainingRecordChangeKind) -> pb::TrainingRecordChange {
        pb::TrainingRecordChange {
            cursor: "7".into(),
            kind: kind as i32,
            employee_number: "40000001".into(),
            assignment_number: "40000001-02".into(),
            competence_id: "10492".into(),
            competence_name: "123|LOCAL|QSIR Practitioner|".into(),
            course_code: "QSIR-PRAC".into(),
            achieved_date: Some(Date {
                year: 2026,
                month: 3,
                day: 9,
            }),
            expiry_date: None,
            source: "trust/cohorts/spring".into(),
            provenance: pb::CompletionSource::Course as i32,
        }
    }

    fn row(layout: &Layout, c: &pb::TrainingRecordChange) -> Vec<String> {
        layout
            .columns()
            .iter()
            .map(|col| col.value(c, &layout.dates).unwrap())
            .collect()
    }

    #[test]
    fn the_default_layout_is_its_documented_file_and_an_empty_file() {
        assert_eq!(Layout::parse(DEFAULT_FILE).unwrap(), Layout::default());
        assert_eq!(Layout::parse("").unwrap(), Layout::default());
        let d = Layout::default();
        assert_eq!(
            row(&d, &change(pb::TrainingRecordChangeKind::Achieved)),
            [
                "7",
                "achieved",
                "40000001",
                "40000001-02",
                "10492",
                "123|LOCAL|QSIR Practitioner|",
                "QSIR-PRAC",
                "09/03/2026",
                "",
                "trust/cohorts/spring"
            ]
        );
    }

    #[test]
    fn a_layout_chooses_columns_their_order_headings_dates_and_delimiter() {
        let sample = Layout::parse(SAMPLE).unwrap();
        assert_eq!(sample.revoked, Revoked::Skip);
        assert_eq!(
            row(&sample, &change(pb::TrainingRecordChangeKind::Achieved))[4],
            "09-Mar-2026"
        );
        let custom = Layout::parse(
            r#"columns = ["competence_name", "employee_number", "achieved_date", "kind"]
               headers = ["Competence", "Employee Number", "Date Achieved", "Status"]
               date_format = "%Y%m%d"
               delimiter = "\t""#,
        )
        .unwrap();
        assert_eq!(
            row(&custom, &change(pb::TrainingRecordChangeKind::Revoked)),
            [
                "123|LOCAL|QSIR Practitioner|",
                "40000001",
                "20260309",
                "revoked"
            ]
        );
        assert_eq!(custom.headers.as_deref().map(<[String]>::len), Some(4));
        assert_eq!(custom.delimiter, b'\t');
        let bare = Layout::parse("header = false").unwrap();
        assert_eq!(bare.headers, None);
    }

    #[test]
    fn an_unknown_column_is_refused_listing_the_known_ones() {
        let said = refusal(r#"columns = ["employee_number", "nino"]"#);
        assert!(
            said.starts_with("columns: \"nino\" is not a column"),
            "{said}"
        );
        assert!(said.contains(&known_columns()), "{said}");
        assert!(refusal("columns = []").contains("competence_id"));
    }

    #[test]
    fn a_date_format_must_render_the_whole_date_and_nothing_else() {
        for ok in ["%d/%m/%Y", "%Y-%m-%d", "%d-%b-%Y", "%e %B %Y", "%d/%m/%y"] {
            assert!(DateFormat::parse(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("%Y", "whole date"),
            ("%m/%Y", "whole date"),
            ("%d/%m/%Y %H:%M", "a time or a zone"),
            ("%Q", "not a strftime format"),
            ("", "whole date"),
        ] {
            let said = refusal(&format!("date_format = {bad:?}"));
            assert!(said.starts_with("date_format: "), "{bad}: {said}");
            assert!(said.contains(why), "{bad}: {said}");
        }
    }

    #[test]
    fn other_bad_keys_are_named() {
        assert!(refusal(r#"delimiter = ";;""#).starts_with("delimiter: "));
        assert!(refusal(r#"delimiter = "a""#).starts_with("delimiter: "));
        assert!(refusal(r#"delimiter = '"'"#).starts_with("delimiter: "));
        assert!(refusal(r#"revoked = "drop""#).starts_with("revoked: "));
        assert!(refusal(r#"headers = ["one"]"#).starts_with("headers: 1 headings for 10"));
        assert!(refusal("header = false\nheaders = [\"a\"]").starts_with("headers: "));
        let said = refusal("colums = []");
        assert!(
            said.contains("colums") && said.contains("date_format"),
            "{said}"
        );
        let said = refusal("header = \"yes\"");
        assert!(said.contains("header") && said.contains("line 1"), "{said}");
        // A revocation must stay distinguishable from an achievement.
        let said = refusal(r#"columns = ["employee_number", "competence_id"]"#);
        assert!(said.contains("revoked = \"skip\""), "{said}");
        assert!(Layout::parse("columns = [\"employee_number\"]\nrevoked = \"skip\"").is_ok());
        assert!(refusal(r#"held_by_esr = "drop""#).starts_with("held_by_esr: "));
    }

    #[test]
    fn what_esr_holds_is_left_out_by_default_and_provenance_is_a_column_to_choose() {
        let mut transfer = change(pb::TrainingRecordChangeKind::Achieved);
        transfer.provenance = pb::CompletionSource::InterAuthorityTransfer as i32;
        let mut historic = change(pb::TrainingRecordChangeKind::Achieved);
        historic.provenance = pb::CompletionSource::HistoricRegister as i32;
        let here = change(pb::TrainingRecordChangeKind::Achieved);
        assert!(held_by_esr(&transfer));
        assert!(!held_by_esr(&historic) && !held_by_esr(&here));
        assert_eq!(Layout::default().held_by_esr, Revoked::Skip);
        assert!(!Layout::default().columns().contains(&Column::Provenance));
        let layout =
            Layout::parse("columns = [\"kind\", \"provenance\"]\nheld_by_esr = \"row\"").unwrap();
        assert_eq!(layout.held_by_esr, Revoked::Row);
        let written: Vec<Vec<String>> = [&here, &historic, &transfer]
            .iter()
            .map(|c| row(&layout, c))
            .collect();
        assert_eq!(
            written,
            [
                ["achieved", "course"],
                ["achieved", "historic"],
                ["achieved", "transfer"]
            ]
        );
    }

    #[test]
    fn a_date_that_is_no_date_fails_the_export_rather_than_leaving_a_gap() {
        let dates = DateFormat(DEFAULT_DATE_FORMAT.to_owned());
        let bad = Date {
            year: 2026,
            month: 2,
            day: 30,
        };
        assert!(dates.show(Some(&bad)).is_err());
        assert_eq!(dates.show(None).unwrap(), "");
    }
}
