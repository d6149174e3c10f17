//! `qi export COLLECTION`: writes a collection through the gateway, page by page, as JSON
//! lines (the proto3 JSON mapping) or CSV, for a nightly extract (issue 37). Memory stays at
//! one page whatever the collection's size. Rows come oldest change first (under each parent
//! the collection is read from, in turn) and `--since` reads only what changed after a time;
//! the run ends by saying where the next should resume (its newest change less
//! [`qi_platform::extract::RESUME_OVERLAP`]).

use std::io::Write;

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions, Value};

/// The collections `qi export` writes, with the List that reads them.
struct Collection {
    name: &'static str,
    /// The service that serves the List, by full name.
    service: &'static str,
    /// The List.
    rpc: &'static str,
    /// The response's repeated field.
    items: &'static str,
    /// The parents read, in turn, for the whole collection: `{site}` stands for `-` (every
    /// site the token holds), or `--site`'s code, which leaves out the parents without it
    /// (the trust-wide rows, which are at no site).
    parents: &'static [&'static str],
}

const TRAINING: &str = "qi.training.v1.TrainingService";
const PROJECTS: &str = "qi.projects.v1.ProjectService";
const METRICS: &str = "qi.metrics.v1.MetricService";

const COLLECTIONS: [Collection; 9] = [
    Collection {
        name: "staff",
        service: TRAINING,
        rpc: "ListStaff",
        items: "staff",
        parents: &["sites/{site}"],
    },
    Collection {
        name: "cohorts",
        service: TRAINING,
        rpc: "ListCohorts",
        items: "cohorts",
        parents: &["sites/{site}", "trust"],
    },
    Collection {
        name: "enrolments",
        service: TRAINING,
        rpc: "ListEnrolments",
        items: "enrolments",
        parents: &["sites/{site}/cohorts/-", "trust/cohorts/-"],
    },
    Collection {
        name: "completions",
        service: TRAINING,
        rpc: "ListCompletions",
        items: "completions",
        parents: &["sites/{site}"],
    },
    Collection {
        name: "ideas",
        service: PROJECTS,
        rpc: "ListIdeas",
        items: "ideas",
        parents: &["sites/{site}"],
    },
    Collection {
        name: "projects",
        service: PROJECTS,
        rpc: "ListProjects",
        items: "projects",
        parents: &["sites/{site}"],
    },
    Collection {
        name: "pdsa-cycles",
        service: PROJECTS,
        rpc: "ListPdsaCycles",
        items: "pdsa_cycles",
        parents: &["sites/{site}/projects/-"],
    },
    Collection {
        name: "metrics",
        service: METRICS,
        rpc: "ListMetrics",
        items: "metrics",
        parents: &["sites/{site}", "trust"],
    },
    Collection {
        name: "measurements",
        service: METRICS,
        rpc: "ListMeasurements",
        items: "measurements",
        parents: &["sites/{site}/metrics/-", "trust/metrics/-"],
    },
];

/// The names `qi export` takes, for its usage.
pub const COLLECTION_NAMES: [&str; 9] = [
    "staff",
    "cohorts",
    "enrolments",
    "completions",
    "ideas",
    "projects",
    "pdsa-cycles",
    "metrics",
    "measurements",
];

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object a line.
    Jsonl,
    /// A header of the item's top-level fields (JSON names), then a row each; a nested
    /// message or a list is a cell of compact JSON.
    Csv,
}

/// What `qi export` was asked.
#[derive(Debug, Clone)]
pub struct ExportArgs {
    /// One of [`COLLECTION_NAMES`].
    pub collection: String,
    /// Only rows changed after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only this site's rows (default: every site the token holds).
    pub site: Option<String>,
    /// How rows are written.
    pub format: Format,
    /// The gateway's URL.
    pub gateway: String,
    /// A bearer token with a reading role.
    pub token: String,
    /// Rows asked for a page (the Lists give at most 500).
    pub page_size: i32,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// Rows written.
    pub rows: u64,
    /// Where the next run should resume (`--since`): the newest change written less the
    /// overlap, or the `--since` given when nothing changed.
    pub resume: Option<DateTime<Utc>>,
}

/// Runs `qi export`, writing rows to `out` and progress (on a terminal) to `progress`.
pub async fn run(
    args: &ExportArgs,
    out: &mut impl Write,
    progress: &mut impl Write,
    on_terminal: bool,
) -> anyhow::Result<Exported> {
    let collection = COLLECTIONS
        .iter()
        .find(|c| c.name == args.collection)
        .with_context(|| {
            format!(
                "no collection {:?}: {}",
                args.collection,
                COLLECTION_NAMES.join(", ")
            )
        })?;
    let pool = DescriptorPool::decode(qi_proto::FILE_DESCRIPTOR_SET)
        .context("decoding the compiled descriptors")?;
    let method = pool
        .get_service_by_name(collection.service)
        .and_then(|s| s.methods().find(|m| m.name() == collection.rpc))
        .context("the List is not in the contracts")?;
    let path: http::uri::PathAndQuery = format!("/{}/{}", collection.service, collection.rpc)
        .parse()
        .context("the method path")?;
    let site = args.site.as_deref().unwrap_or("-");
    let parents: Vec<String> = collection
        .parents
        .iter()
        .filter(|p| args.site.is_none() || p.contains("{site}"))
        .map(|p| p.replace("{site}", site))
        .collect();
    let item = match method
        .output()
        .get_field_by_name(collection.items)
        .map(|f| f.kind())
    {
        Some(prost_reflect::Kind::Message(m)) => m,
        _ => anyhow::bail!("{} has no list of {}", collection.rpc, collection.items),
    };
    let channel = tonic::transport::Endpoint::from_shared(args.gateway.clone())
        .with_context(|| format!("the gateway URL {:?}", args.gateway))?
        .connect()
        .await
        .with_context(|| format!("connecting to the gateway at {}", args.gateway))?;
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES);
    let mut writer = Writer::new(args.format, &item, out)?;
    let options = SerializeOptions::new().stringify_64_bit_integers(true);
    let (mut rows, mut newest) = (0u64, None::<DateTime<Utc>>);
    for parent in &parents {
        let mut page_token = String::new();
        loop {
            let mut request = DynamicMessage::new(method.input());
            request.set_field_by_name("parent", Value::String(parent.clone()));
            request.set_field_by_name("page_size", Value::I32(args.page_size));
            request.set_field_by_name("page_token", Value::String(page_token.clone()));
            // Leavers too: an extract must see a person's leaving.
            if method.input().get_field_by_name("show_inactive").is_some() {
                request.set_field_by_name("show_inactive", Value::Bool(true));
            }
            request.set_field_by_name("order_by", Value::String("update_time".into()));
            if let Some(since) = args.since {
                let since = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                let filter = format!("update_time > \"{since}\"");
                request.set_field_by_name("filter", Value::String(filter));
            }
            let mut call = tonic::Request::new(Bytes::from(request.encode_to_vec()));
            call.metadata_mut().insert(
                "authorization",
                format!("Bearer {}", args.token)
                    .parse()
                    .context("the token is not valid header text")?,
            );
            grpc.ready().await.context("the gateway")?;
            let answer = grpc
                .unary(call, path.clone(), qi_platform::codec::BytesCodec)
                .await
                .map_err(|s| {
                    anyhow::anyhow!(
                        "{} under {parent}: {:?}: {} (after {rows} rows)",
                        collection.name,
                        s.code(),
                        s.message()
                    )
                })?
                .into_inner();
            let page =
                DynamicMessage::decode(method.output(), answer).context("an undecodable answer")?;
            let items = page
                .get_field_by_name(collection.items)
                .and_then(|v| v.as_list().map(<[Value]>::to_vec))
                .unwrap_or_default();
            for value in &items {
                let Some(message) = value.as_message() else {
                    continue;
                };
                let json = message
                    .serialize_with_options(serde_json::value::Serializer, &options)
                    .context("a row as JSON")?;
                if let Some(t) = json.get("updateTime").and_then(serde_json::Value::as_str)
                    && let Ok(t) = DateTime::parse_from_rfc3339(t)
                {
                    newest = newest.max(Some(t.with_timezone(&Utc)));
                }
                writer.row(&json)?;
                rows += 1;
            }
            if on_terminal {
                write!(progress, "\r{}: {rows} rows", collection.name)?;
                progress.flush()?;
            }
            page_token = page
                .get_field_by_name("next_page_token")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            if page_token.is_empty() {
                break;
            }
        }
    }
    writer.finish()?;
    if on_terminal {
        writeln!(progress)?;
    }
    let resume = newest
        .map(|t| t - qi_platform::extract::RESUME_OVERLAP)
        .or(args.since);
    Ok(Exported { rows, resume })
}

/// Writes rows in a format.
enum Writer<'a, W: Write> {
    Jsonl(&'a mut W),
    Csv {
        csv: Box<csv::Writer<&'a mut W>>,
        /// The item's top-level fields, by JSON name, in the contract's order.
        columns: Vec<String>,
    },
}

impl<'a, W: Write> Writer<'a, W> {
    /// A writer; a CSV one writes its header at once, so an empty extract still has it.
    fn new(format: Format, item: &MessageDescriptor, out: &'a mut W) -> anyhow::Result<Self> {
        Ok(match format {
            Format::Jsonl => Writer::Jsonl(out),
            Format::Csv => {
                let columns: Vec<String> =
                    item.fields().map(|f| f.json_name().to_owned()).collect();
                let mut csv = Box::new(csv::Writer::from_writer(out));
                csv.write_record(&columns)?;
                Writer::Csv { csv, columns }
            }
        })
    }

    fn row(&mut self, json: &serde_json::Value) -> anyhow::Result<()> {
        match self {
            Writer::Jsonl(out) => {
                serde_json::to_writer(&mut **out, json)?;
                out.write_all(b"\n")?;
            }
            Writer::Csv { csv, columns } => {
                // Text as it is, a date as YYYY-MM-DD, numbers and booleans as JSON writes
                // them, anything else nested as compact JSON, an absent (default) field empty.
                let cells = columns.iter().map(|c| match json.get(c) {
                    None | Some(serde_json::Value::Null) => String::new(),
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => date(other).unwrap_or_else(|| other.to_string()),
                });
                csv.write_record(cells)?;
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Writer::Jsonl(out) => out.flush()?,
            Writer::Csv { mut csv, .. } => csv.flush()?,
        }
        Ok(())
    }
}

/// A `google.type.Date` in its JSON form (`{"year":2026,"month":12,"day":7}`, nothing else)
/// as `2026-12-07`, the form a spreadsheet reads as a date.
fn date(value: &serde_json::Value) -> Option<String> {
    let fields = value.as_object()?;
    let part = |k: &str| fields.get(k).and_then(serde_json::Value::as_i64);
    let (year, month, day) = (part("year")?, part("month")?, part("day")?);
    (fields.len() == 3).then(|| format!("{year:04}-{month:02}-{day:02}"))
}

#[cfg(test)]
mod tests {
    use super::date;

    #[test]
    fn a_date_cell_reads_as_a_date_and_nothing_else_does() {
        let d = serde_json::json!({"year": 2026, "month": 12, "day": 7});
        assert_eq!(date(&d).as_deref(), Some("2026-12-07"));
        for other in [
            serde_json::json!({"year": 2026, "month": 12}),
            serde_json::json!({"year": 2026, "month": 12, "day": 7, "site": "BAS"}),
            serde_json::json!(["2026"]),
        ] {
            assert_eq!(date(&other), None, "{other}");
        }
    }
}
