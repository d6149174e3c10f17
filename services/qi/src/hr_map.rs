//! `qi hr map import FILE.csv` and `qi hr map export`: the ESR mapping (which site, and
//! which ward, an ESR organisation or location code stands for) as a CSV file, through the
//! gateway with a token like any other client: `hr_sync` or `improvement_team`, and a site
//! caller maps codes to its own sites only.
//!
//! The CSV has a header row naming these columns, in any order: `kind`, `code`, `site`
//! (required), `ward`, `display_name`. `kind` is `organisation` or `location`; `site` a site
//! code; `ward` empty, a ward id of that site (`ash`) or its name (`sites/BAS/wards/ash`).
//! A header with an unknown or a missing column is refused whole; a bad row is refused
//! alone, by its line and column, and the rest apply. Importing the same file again changes
//! nothing; a code the file maps to another site than before moves there when the caller
//! holds both sites.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, bail};
use qi_platform::SiteCode;
use qi_platform::names;
use qi_proto::training as pb;

use crate::hr::{LocalReject, client};

/// The columns of a mapping CSV, in the order the export writes them.
pub const MAP_COLUMNS: [&str; 5] = ["kind", "code", "site", "ward", "display_name"];

/// The columns every mapping CSV must have.
const REQUIRED: [&str; 3] = ["kind", "code", "site"];

/// Mappings per `BatchUpsertEsrMappings` call (the contract's bound).
const BATCH: usize = 1_000;

/// One readable line of a mapping CSV: its line number, site and mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct MapLine {
    /// The CSV line (1 is the header).
    pub line: u64,
    /// The site code the mapping is under.
    pub site: String,
    /// The mapping, its name set.
    pub mapping: pb::EsrMapping,
}

/// A mapping CSV as read: the readable lines and the lines refused.
#[derive(Debug, Default)]
pub struct ReadMap {
    /// Every readable line.
    pub lines: Vec<MapLine>,
    /// The lines refused, by line and column.
    pub rejects: Vec<LocalReject>,
}

/// The header's complaint: what is wrong, and the columns a mapping CSV has.
fn header_error(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}: a mapping CSV's columns are {} (kind, code and site required)",
        MAP_COLUMNS.join(", ")
    )
}

/// Reads a mapping CSV: checks its header, then each line on its own.
pub fn read_map(input: impl std::io::Read) -> anyhow::Result<ReadMap> {
    let (reader, index) = crate::hr::open_csv(input, &MAP_COLUMNS, &REQUIRED, header_error)?;
    let mut read = ReadMap::default();
    // (kind, code) → the line that mapped it first.
    let mut seen: HashMap<(String, String), u64> = HashMap::new();
    for (i, record) in reader.into_records().enumerate() {
        let line = i as u64 + 2;
        let reject = |column: &str, reason: String| LocalReject {
            line,
            column: column.to_owned(),
            reason,
        };
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                read.rejects.push(reject("", e.to_string()));
                continue;
            }
        };
        let get = |c: &str| {
            index
                .get(c)
                .and_then(|&i| record.get(i))
                .unwrap_or("")
                .to_owned()
        };
        match to_mapping(&get) {
            Ok(m) => {
                let key = (m.kind.clone(), m.code.clone());
                if let Some(first) = seen.get(&key) {
                    read.rejects.push(reject(
                        "code",
                        format!("{} {} is mapped on line {first} already", key.0, key.1),
                    ));
                    continue;
                }
                seen.insert(key, line);
                read.lines.push(MapLine {
                    line,
                    site: m.site,
                    mapping: m.mapping,
                });
            }
            Err((column, reason)) => read.rejects.push(reject(column, reason)),
        }
    }
    Ok(read)
}

/// A line checked: its kind and code (for duplicates), site and mapping.
struct Checked {
    kind: String,
    code: String,
    site: String,
    mapping: pb::EsrMapping,
}

fn to_mapping(get: &impl Fn(&str) -> String) -> Result<Checked, (&'static str, String)> {
    let kind = get("kind").to_ascii_lowercase();
    if !matches!(kind.as_str(), "organisation" | "location") {
        return Err((
            "kind",
            format!("{:?} is not organisation or location", get("kind")),
        ));
    }
    let code = get("code");
    let code_ok = (1..=60).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !code_ok {
        return Err((
            "code",
            format!("{code:?} is not a code: 1 to 60 letters, digits, `-`, `_` or `.`"),
        ));
    }
    let site = SiteCode::parse(&get("site"))
        .map_err(|e| ("site", e.to_string()))?
        .to_string();
    let ward = match get("ward") {
        w if w.is_empty() || w.contains('/') => w,
        w => {
            names::validate_id("ward", &w).map_err(|e| ("ward", e.to_string()))?;
            format!("sites/{site}/wards/{w}")
        }
    };
    let mapping = pb::EsrMapping {
        name: format!("sites/{site}/esrMappings/{kind}.{code}"),
        ward,
        display_name: get("display_name"),
        ..Default::default()
    };
    Ok(Checked {
        code,
        kind,
        site,
        mapping,
    })
}

/// What an import did, for the report and the exit status.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MapReport {
    /// Mappings added.
    pub created: u64,
    /// Mappings changed (or moved here from another site).
    pub updated: u64,
    /// Mappings already as the file has them.
    pub unchanged: u64,
    /// Lines refused: unreadable here, or refused by the service.
    pub refused: u64,
}

impl MapReport {
    /// Whether any line was applied (added, changed or found as it is).
    pub fn applied_any(&self) -> bool {
        self.created + self.updated + self.unchanged > 0
    }
}

/// The CSV column a service field names (`esr_mappings[3].ward` → `ward`).
fn column_of(field: &str) -> &str {
    match field.rsplit('.').next().unwrap_or(field) {
        "ward" => "ward",
        "display_name" => "display_name",
        _ => "code",
    }
}

/// `qi hr map import`: sends the file's mappings a site at a time (in batches of a
/// thousand) to `BatchUpsertEsrMappings`, and reports every refused line on `out`, by line
/// and column, then the totals. A site the caller may not map to refuses its lines and
/// the other sites still apply.
pub async fn import(
    gateway: &str,
    token: &str,
    file: &Path,
    out: &mut impl Write,
) -> anyhow::Result<MapReport> {
    let input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let read = read_map(std::io::BufReader::new(input))?;
    let mut client = client(gateway, token).await?;
    let mut report = MapReport {
        refused: read.rejects.len() as u64,
        ..Default::default()
    };
    let mut refusals: Vec<LocalReject> = read.rejects;
    let mut by_site: BTreeMap<String, Vec<MapLine>> = BTreeMap::new();
    for l in read.lines {
        by_site.entry(l.site.clone()).or_default().push(l);
    }
    for (site, lines) in by_site {
        for chunk in lines.chunks(BATCH) {
            let req = pb::BatchUpsertEsrMappingsRequest {
                parent: format!("sites/{site}"),
                esr_mappings: chunk.iter().map(|l| l.mapping.clone()).collect(),
                request_id: uuid::Uuid::new_v4().to_string(),
            };
            let resp = match client.batch_upsert_esr_mappings(req).await {
                Ok(r) => r.into_inner(),
                Err(s) if is_refusal(s.code()) => {
                    // The caller may not map to this site (or the site is not the
                    // trust's): its lines are refused, the other sites' still apply.
                    report.refused += chunk.len() as u64;
                    refusals.extend(chunk.iter().map(|l| LocalReject {
                        line: l.line,
                        column: "site".into(),
                        reason: format!("{:?}: {}", s.code(), s.message()),
                    }));
                    continue;
                }
                Err(s) => bail!(
                    "BatchUpsertEsrMappings failed: {:?} {}",
                    s.code(),
                    s.message()
                ),
            };
            report.created += u64::try_from(resp.created).unwrap_or(0);
            report.updated += u64::try_from(resp.updated).unwrap_or(0);
            report.unchanged += u64::try_from(resp.unchanged).unwrap_or(0);
            let mut refused_here = std::collections::BTreeSet::new();
            for r in resp.rejected {
                let line = usize::try_from(r.index)
                    .ok()
                    .and_then(|i| chunk.get(i))
                    .map_or(0, |l| l.line);
                refused_here.insert(r.index);
                refusals.push(LocalReject {
                    line,
                    column: column_of(&r.field).to_owned(),
                    reason: r.reason,
                });
            }
            report.refused += refused_here.len() as u64;
        }
    }
    refusals.sort_by_key(|r| r.line);
    for r in &refusals {
        writeln!(out, "line {}: {}: {}", r.line, r.column, r.reason)?;
    }
    writeln!(
        out,
        "mappings: created {}, updated {}, unchanged {}, refused {}",
        report.created, report.updated, report.unchanged, report.refused
    )?;
    Ok(report)
}

/// Whether a failed call refused this batch's site (and only it), rather than failed.
fn is_refusal(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::PermissionDenied | tonic::Code::InvalidArgument | tonic::Code::NotFound
    )
}

/// `qi hr map export`: writes every mapping of the caller's sites as a mapping CSV (the
/// columns [`MAP_COLUMNS`], the ward as its full name) to `out`; returns how many.
pub async fn export(gateway: &str, token: &str, out: &mut impl Write) -> anyhow::Result<u64> {
    let mut client = client(gateway, token).await?;
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(MAP_COLUMNS)?;
    let mut written = 0;
    let mut page_token = String::new();
    loop {
        let page = client
            .list_esr_mappings(pb::ListEsrMappingsRequest {
                parent: "sites/-".into(),
                page_size: 500,
                page_token: page_token.clone(),
                kind: 0,
            })
            .await
            .map_err(|s| anyhow::anyhow!("ListEsrMappings failed: {:?} {}", s.code(), s.message()))?
            .into_inner();
        for m in page.esr_mappings {
            let kind = match pb::EsrCodeKind::try_from(m.kind) {
                Ok(pb::EsrCodeKind::Organisation) => "organisation",
                Ok(pb::EsrCodeKind::Location) => "location",
                Ok(pb::EsrCodeKind::Unspecified) | Err(_) => continue,
            };
            let site = m.site.strip_prefix("sites/").unwrap_or(&m.site);
            writer.write_record([kind, &m.code, site, &m.ward, &m.display_name])?;
            written += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    writer.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_is_read_alone_and_a_bad_one_named_by_line_and_column() {
        let csv = "kind,code,site,ward,display_name\n\
                   location,BAS-MAIN,BAS,,Basildon University Hospital\n\
                   organisation,CC-ASH,BAS,ash,Ash ward\n\
                   organisation,CC-ELM,SOU,sites/SOU/wards/elm,\n\
                   site,X,BAS,,\n\
                   location,BAD CODE,BAS,,\n\
                   location,L2,bas,,\n\
                   location,L3,BAS,Ash Ward,\n\
                   LOCATION,BAS-MAIN,BRM,,\n";
        let read = read_map(csv.as_bytes()).unwrap();
        let names: Vec<_> = read
            .lines
            .iter()
            .map(|l| (l.line, l.mapping.name.as_str(), l.mapping.ward.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (2, "sites/BAS/esrMappings/location.BAS-MAIN", ""),
                (
                    3,
                    "sites/BAS/esrMappings/organisation.CC-ASH",
                    "sites/BAS/wards/ash"
                ),
                (
                    4,
                    "sites/SOU/esrMappings/organisation.CC-ELM",
                    "sites/SOU/wards/elm"
                ),
            ]
        );
        let refused: Vec<_> = read
            .rejects
            .iter()
            .map(|r| (r.line, r.column.as_str()))
            .collect();
        assert_eq!(
            refused,
            [
                (5, "kind"),
                (6, "code"),
                (7, "site"),
                (8, "ward"),
                (9, "code")
            ]
        );
        assert!(
            read.rejects[4].reason.contains("line 2"),
            "{:?}",
            read.rejects
        );
    }

    #[test]
    fn a_wrong_header_is_refused_whole_listing_the_columns() {
        for header in [
            "kind,code,ward\n",
            "kind,code,site,cost_centre\n",
            "kind,kind,code,site\n",
        ] {
            let e = read_map(header.as_bytes()).unwrap_err().to_string();
            assert!(
                e.contains("kind, code, site, ward, display_name"),
                "{header}: {e}"
            );
        }
    }
}
