//! `qi watch SERVICE`: tails a service's change feed (`WatchChanges`) through the gateway as
//! JSON lines (the proto3 JSON mapping, from the descriptors) on standard output, so an
//! integration engine can run it as it is. With a cursor file it resumes where it stopped
//! and keeps the file at the last change written; with a token command it fetches a new
//! token when the old one expires and resumes; when the gateway or the database goes away
//! it retries with a growing pause. Any other failure ends it (exit status 1).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use tonic::Code;

/// What `qi watch` was asked.
#[derive(Debug, Clone)]
pub struct WatchArgs {
    /// `training`, `projects` or `metrics`.
    pub service: String,
    /// The gateway's URL.
    pub gateway: String,
    /// A bearer token, when no command fetches one.
    pub token: Option<String>,
    /// A shell command printing a bearer token, run again when one expires.
    pub token_command: Option<String>,
    /// Resume after this cursor (wins over the cursor file's).
    pub from: Option<String>,
    /// Where the last cursor written is kept.
    pub cursor_file: Option<PathBuf>,
    /// Without a cursor, start now rather than at the oldest retained change.
    pub now: bool,
    /// Only these collections.
    pub collections: Vec<String>,
    /// Stop once caught up (for a nightly run), rather than following for ever.
    pub until_caught_up: bool,
    /// An internal consumer: follow the service itself, not through the gateway.
    pub internal: Option<Internal>,
}

/// An internal consumer (the read model, another service) following a feed straight from
/// the service that produces it, as DESIGN.md decides: with a trust-wide access context it
/// signs with the access key, naming itself (`internal:{name}`, role viewer).
#[derive(Clone)]
pub struct Internal {
    /// The service's own URL (e.g. `http://training:50052`).
    pub service_url: String,
    /// Who is consuming, as the service's logs and spans will name it.
    pub name: String,
    /// `QI_ACCESS_KEY`.
    pub key: String,
}

impl std::fmt::Debug for Internal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Internal")
            .field("service_url", &self.service_url)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Internal {
    /// A signed context for one call of `path` (lives a minute: enough to open the stream,
    /// which then runs as long as it is read).
    fn signed(&self, path: &str) -> Result<String, tonic::Status> {
        let ctx = qi_platform::AccessContext::internal(&self.name, path);
        qi_platform::access::AccessSigner::new(&self.key, Duration::from_secs(60))
            .sign(&ctx)
            .map_err(|e| tonic::Status::internal(format!("signing the access context: {e}")))
    }
}

/// The feed's request and message types, and the method path, of `service`.
struct FeedTypes {
    path: String,
    request: MessageDescriptor,
    response: MessageDescriptor,
}

fn feed_types(service: &str) -> anyhow::Result<FeedTypes> {
    let pool = DescriptorPool::decode(qi_proto::FILE_DESCRIPTOR_SET)
        .context("decoding the compiled descriptors")?;
    let (package, name) = match service {
        "training" => ("qi.training.v1", "TrainingService"),
        "projects" => ("qi.projects.v1", "ProjectService"),
        "metrics" => ("qi.metrics.v1", "MetricService"),
        other => anyhow::bail!("no service {other:?}: training, projects or metrics"),
    };
    let method = pool
        .get_service_by_name(&format!("{package}.{name}"))
        .and_then(|s| s.methods().find(|m| m.name() == "WatchChanges"))
        .with_context(|| format!("the {service} service publishes no change feed"))?;
    Ok(FeedTypes {
        path: format!("/{package}.{name}/WatchChanges"),
        request: method.input(),
        response: method.output(),
    })
}

/// The pause before retrying after the gateway or the database went away: doubling from
/// 1 s to 30 s, back to 1 s after a stream that delivered.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often the cursor file is rewritten while changes stream in.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Runs `qi watch` until the feed fails for good (or, with `until_caught_up`, until it is
/// caught up); writes to `out`.
pub async fn run(args: &WatchArgs, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let types = feed_types(&args.service)?;
    let mut cursor = match (&args.from, &args.cursor_file) {
        (Some(from), _) => from.clone(),
        (None, Some(file)) => read_cursor(file)?,
        (None, None) => String::new(),
    };
    let mut token = match args.internal {
        Some(_) => String::new(),
        None => current_token(args)?,
    };
    let mut pause = RETRY_FIRST;
    loop {
        let ended = follow(args, &types, &token, &mut cursor, out).await;
        if let Some(file) = &args.cursor_file {
            save_cursor(file, &cursor)?;
        }
        let status = match ended {
            Ok(Delivered::CaughtUp) => return Ok(()),
            Ok(Delivered::Some) => {
                pause = RETRY_FIRST;
                continue;
            }
            Err(status) => status,
        };
        let retry = matches!(
            status.code(),
            Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded | Code::Unknown
        );
        if status.code() == Code::Unauthenticated && args.token_command.is_some() {
            eprintln!("qi watch: {}; fetching a new token", status.message());
            token = current_token(args)?;
        } else if retry {
            eprintln!(
                "qi watch: the feed ended ({:?}: {}); resuming in {} s",
                status.code(),
                status.message(),
                pause.as_secs()
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        } else {
            anyhow::bail!(
                "WatchChanges failed: {:?}: {}",
                status.code(),
                status.message()
            );
        }
    }
}

/// How a stream ended without failing.
enum Delivered {
    /// The stream ended cleanly (the server went away between messages): resume.
    Some,
    /// Caught up, and asked to stop there.
    CaughtUp,
}

/// One stream: from `cursor`, writing each change as a JSON line and moving `cursor`.
async fn follow(
    args: &WatchArgs,
    types: &FeedTypes,
    token: &str,
    cursor: &mut String,
    out: &mut impl std::io::Write,
) -> Result<Delivered, tonic::Status> {
    let url = match &args.internal {
        Some(internal) => internal.service_url.clone(),
        None => args.gateway.clone(),
    };
    let channel = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| tonic::Status::invalid_argument(format!("the URL: {e}")))?
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("connecting to the gateway: {e}")))?;
    let mut request = DynamicMessage::new(types.request.clone());
    let set = |m: &mut DynamicMessage, field: &str, v: prost_reflect::Value| {
        m.set_field_by_name(field, v);
    };
    if cursor.is_empty() {
        let start = if args.now { 2 } else { 1 };
        set(
            &mut request,
            "start",
            prost_reflect::Value::EnumNumber(start),
        );
    } else {
        set(
            &mut request,
            "cursor",
            prost_reflect::Value::String(cursor.clone()),
        );
    }
    let collections = args
        .collections
        .iter()
        .map(|c| prost_reflect::Value::String(c.clone()))
        .collect();
    set(
        &mut request,
        "collections",
        prost_reflect::Value::List(collections),
    );
    let mut request = tonic::Request::new(Bytes::from(request.encode_to_vec()));
    let (key, value) = match &args.internal {
        Some(internal) => (
            qi_platform::access::ACCESS_HEADER,
            internal.signed(&types.path)?,
        ),
        None => ("authorization", format!("Bearer {token}")),
    };
    let value = value
        .parse()
        .map_err(|_| tonic::Status::unauthenticated("the credential is not valid header text"))?;
    request.metadata_mut().insert(key, value);
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("the gateway: {e}")))?;
    let path = types
        .path
        .parse()
        .map_err(|_| tonic::Status::internal("the method path"))?;
    let mut stream = grpc
        .server_streaming(request, path, qi_platform::codec::BytesCodec)
        .await?
        .into_inner();
    let options = SerializeOptions::new().stringify_64_bit_integers(true);
    let mut saved = Instant::now();
    while let Some(bytes) = stream.message().await? {
        let message = DynamicMessage::decode(types.response.clone(), bytes)
            .map_err(|e| tonic::Status::internal(format!("an undecodable change: {e}")))?;
        let is_checkpoint = message
            .get_field_by_name("kind")
            .and_then(|k| k.as_enum_number())
            == Some(6);
        let mut line = Vec::new();
        let mut json = serde_json::Serializer::new(&mut line);
        message
            .serialize_with_options(&mut json, &options)
            .map_err(|e| tonic::Status::internal(format!("a change as JSON: {e}")))?;
        line.push(b'\n');
        out.write_all(&line)
            .and_then(|()| out.flush())
            .map_err(|e| tonic::Status::internal(format!("writing the output: {e}")))?;
        if let Some(c) = message.get_field_by_name("cursor")
            && let Some(c) = c.as_str()
        {
            c.clone_into(cursor);
        }
        if let Some(file) = &args.cursor_file
            && saved.elapsed() >= SAVE_EVERY
        {
            save_cursor(file, cursor)
                .map_err(|e| tonic::Status::internal(format!("saving the cursor: {e:#}")))?;
            saved = Instant::now();
        }
        // A checkpoint comes only when the feed has nothing more for the caller.
        if is_checkpoint && args.until_caught_up {
            return Ok(Delivered::CaughtUp);
        }
    }
    Ok(Delivered::Some)
}

fn current_token(args: &WatchArgs) -> anyhow::Result<String> {
    if let Some(command) = &args.token_command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .output()
            .with_context(|| format!("running the token command {command:?}"))?;
        anyhow::ensure!(
            out.status.success(),
            "the token command {command:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let token = String::from_utf8(out.stdout)
            .context("the token command printed something that is not text")?;
        return Ok(token.trim().to_owned());
    }
    args.token.clone().context(
        "give a token (--token or QI_TOKEN) or a command that prints one (--token-command)",
    )
}

fn read_cursor(file: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("reading the cursor file {}", file.display())),
    }
}

/// Replaces the cursor file whole (written beside it, then renamed), so a crash leaves the
/// old cursor or the new one, never half of one.
fn save_cursor(file: &Path, cursor: &str) -> anyhow::Result<()> {
    if cursor.is_empty() {
        return Ok(());
    }
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing beside {}", file.display()))?;
    writeln!(tmp, "{cursor}")?;
    tmp.persist(file)
        .with_context(|| format!("replacing the cursor file {}", file.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_has_a_feed_to_watch_and_nothing_else_does() {
        for service in ["training", "projects", "metrics"] {
            let types = feed_types(service).unwrap_or_else(|e| panic!("{service}: {e:#}"));
            assert!(types.path.ends_with("/WatchChanges"), "{}", types.path);
            assert!(types.response.get_field_by_name("cursor").is_some());
        }
        assert!(feed_types("gateway").is_err());
    }
}
