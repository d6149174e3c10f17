//! The one configuration loader: every setting comes from a `QI_*` environment variable,
//! with defaults that make `qi up` work untouched. Tests build a [`Config`] from a map
//! through [`Config::from_lookup`] instead of mutating the process environment.
//!
//! Secrets (the token secret, the access keys, a password in the database URL) never
//! appear in `Debug` output nor in a [`ConfigError`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use qi_names::SiteCode;

/// A configuration value that could not be used; names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration {var}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// The value found.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (development default).
    Text,
    /// One JSON object a line (production).
    Json,
}

/// The fewest bytes a shared secret (`QI_JWT_SECRET`, `QI_ACCESS_KEY`) may have: HS256's
/// key should be at least as long as its 256-bit output (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// Every setting of the suite. Each field documents its variable and default.
#[derive(Clone)]
pub struct Config {
    /// `QI_DATABASE_URL`: PostgreSQL URL. Unset: `qi up` starts a private cluster; `qi serve`
    /// and `qi migrate` refuse to start.
    pub database_url: Option<String>,
    /// `QI_MIGRATION_DATABASE_URL` (default: `QI_DATABASE_URL`): the owner role's URL, used
    /// by `qi migrate`, `qi maintain` and a `qi serve` that finds migrations pending. When its
    /// user differs from `QI_DATABASE_URL`'s, that runtime role is created (if the owner may)
    /// and granted only what serving needs.
    pub migration_database_url: Option<String>,
    /// `QI_DATA_DIR` (default `./.qi`): where `qi up` keeps its private cluster and dev secrets.
    pub data_dir: PathBuf,
    /// `QI_LISTEN` (default `127.0.0.1:50051`): the address the gateway (`qi up`) or the one
    /// component (`qi serve`) listens on.
    pub listen: SocketAddr,
    /// `QI_SITES` (default `BAS,BRM,SOU`): the trust's site codes.
    pub sites: Vec<SiteCode>,
    /// `QI_TRAINING_URL`, `QI_PROJECTS_URL`, `QI_METRICS_URL`, `QI_INSIGHTS_URL`: where the
    /// gateway finds the services (and the read model its feeds) when they run apart (`qi
    /// serve`); ignored by `qi up`.
    pub backends: Backends,
    /// Token checking by the gateway.
    pub jwt: JwtConfig,
    /// `QI_ACCESS_KEY` (required except in `qi up`, which generates one) and
    /// `QI_ACCESS_KEY_PREVIOUS` (optional, still accepted during a rotation): the keys that
    /// sign the access context the gateway forwards to the services.
    pub access_keys: AccessKeys,
    /// `QI_REQUEST_TIMEOUT_MS` (default 10000): the deadline of a call that carries none.
    pub request_timeout: Duration,
    /// `QI_BULK_TIMEOUT_MS` (default 1800000, 30 minutes): the deadline of a bulk call (the
    /// streaming methods: the HR sync in, trained-staff records out) that carries none, and
    /// the cap on those that do: a national-size extract fits without tuning.
    pub bulk_timeout: Duration,
    /// `QI_CONCURRENCY_LIMIT` (default 512): requests served at once by one server;
    /// beyond it callers get `RESOURCE_EXHAUSTED` at once.
    pub concurrency_limit: usize,
    /// `QI_RATE_LIMIT_PER_SUBJECT` (default 200, 0 = off): calls a second one caller may make
    /// through the gateway on average; beyond it `RESOURCE_EXHAUSTED`.
    pub rate_limit_per_subject: u32,
    /// `QI_RATE_LIMIT_BURST` (default 400): the burst above that rate.
    pub rate_limit_burst: u32,
    /// `QI_BACKEND_CHECK_INTERVAL_MS` (default 2000): how often the gateway checks each
    /// service's health, which its own health reports.
    pub backend_check_interval: Duration,
    /// `QI_TRUSTED_PROXIES` (default none): comma-separated addresses or CIDR ranges of the
    /// proxies (the ingress controller) whose `X-Forwarded-For` the gateway believes when
    /// judging a caller's address.
    pub trusted_proxies: Vec<Cidr>,
    /// `QI_AUTH_FAILURE_RATE` (default 5, 0 = off): failed authentications a second one client
    /// address may make (burst ten times that) before the gateway refuses its calls
    /// `RESOURCE_EXHAUSTED` without looking at their tokens.
    pub auth_failure_rate: u32,
    /// `QI_CORS_ALLOWED_ORIGINS` (default none: same-origin only): comma-separated origins
    /// (`https://intranet.example.nhs.uk`, scheme and host and any port, no path) whose pages
    /// may call the gateway from a browser, by gRPC-Web or HTTP/JSON.
    pub cors_allowed_origins: Vec<String>,
    /// `QI_AUDIT_QUEUE` (default 50000, at least 1): audit events the gateway holds while
    /// its database cannot take them; when they are all held, it refuses new calls.
    pub audit_queue: usize,
    /// `QI_AUDIT_RETENTION_DAYS` (default 400, 0 = keep for ever): how long audit events
    /// are kept. Monthly partitions whose whole month is older are dropped by `qi maintain`.
    pub audit_retention_days: u32,
    /// `QI_MAINTENANCE_INTERVAL_MS` (default 3600000): how often `qi up` runs the audit
    /// retention itself (in Kubernetes a CronJob runs `qi maintain`).
    pub maintenance_interval: Duration,
    /// `QI_IDEMPOTENCY_PURGE_INTERVAL_MS` (default 600000): how often each service deletes
    /// request ids older than the retry window.
    pub idempotency_purge_interval: Duration,
    /// `QI_SHUTDOWN_DRAIN_DELAY_MS` (default 0; 5000 in Kubernetes): how long a stopping server
    /// reports NOT_SERVING, still serving, before it stops accepting.
    pub drain_delay: Duration,
    /// `QI_SHUTDOWN_GRACE_MS` (default 20000): the ceiling on finishing in-flight calls.
    pub shutdown_grace: Duration,
    /// `QI_DB_MAX_CONNECTIONS` (default 10): pool size per service.
    pub db_max_connections: u32,
    /// `QI_DB_ACQUIRE_TIMEOUT_MS` (default 3000): how long a call waits for a pooled
    /// connection before failing with `UNAVAILABLE`.
    pub db_acquire_timeout: Duration,
    /// `QI_RUN_CHART_BELOW_POINTS` (default 15, at least 1): the QMS dashboard reads a
    /// metric with fewer periods than this by a run chart instead of its SPC icons.
    pub run_chart_below_points: usize,
    /// `QI_IDEA_REVIEW_DAYS` (default 30, at least 1): the portfolio's idea funnel counts an
    /// idea waiting longer than this in submitted or under review as overdue.
    pub idea_review_days: u32,
    /// `QI_CHANGES_RETENTION_DAYS` (default 30, 1 to 3650): how long each service keeps its
    /// change feed (`WatchChanges`); a cursor older than that is OUT_OF_RANGE.
    pub changes_retention_days: u32,
    /// `QI_CHANGES_IDLE_TIMEOUT_MS` (default 60000): a change feed whose consumer has read
    /// nothing for this long, with changes waiting, is ended (its memory stays bounded).
    pub changes_idle_timeout: Duration,
    /// `QI_CHANGES_POLL_MS` (default 100): how often each service replica looks for newly
    /// committed changes while any feed is open, waking every open feed at once.
    pub changes_poll: Duration,
    /// `QI_LOG_FORMAT` (`text` default, or `json`).
    pub log_format: LogFormat,
    /// `QI_LOG` (default `info`): an `EnvFilter` directive.
    pub log_filter: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: when set, spans are exported over OTLP/gRPC.
    pub otlp_endpoint: Option<String>,
}

/// Where the gateway finds each service.
#[derive(Debug, Clone)]
pub struct Backends {
    /// `QI_TRAINING_URL` (default `http://127.0.0.1:50052`).
    pub training: String,
    /// `QI_PROJECTS_URL` (default `http://127.0.0.1:50053`).
    pub projects: String,
    /// `QI_METRICS_URL` (default `http://127.0.0.1:50054`).
    pub metrics: String,
    /// `QI_INSIGHTS_URL` (default `http://127.0.0.1:50055`): the read model.
    pub insights: String,
}

/// How the gateway checks bearer tokens.
#[derive(Clone)]
pub struct JwtConfig {
    /// `QI_JWT_SECRET`: an HS256 shared secret of at least [`MIN_SECRET_BYTES`] bytes
    /// (development only; `qi up` generates one). Ignored when a JWKS is configured, unless
    /// `allow_hs256_with_jwks`.
    pub hs256_secret: Option<String>,
    /// `QI_JWT_ALLOW_HS256` (default `false`): accept HS256 tokens signed with
    /// `QI_JWT_SECRET` alongside a JWKS. Off, a JWKS deployment refuses them, so a leaked
    /// development secret cannot mint production tokens.
    pub allow_hs256_with_jwks: bool,
    /// `QI_JWKS_FILE`: a JWKS file of RS256/ES256 public keys, selected by `kid` (production).
    pub jwks_file: Option<PathBuf>,
    /// `QI_JWKS_URL`: where to fetch that JWKS over HTTPS instead (an identity provider's
    /// `jwks_uri`); refreshed as the file is. Set at most one of the two.
    pub jwks_url: Option<String>,
    /// `QI_JWT_ISSUER` (default `qi-dev`): the required `iss`.
    pub issuer: String,
    /// `QI_JWT_AUDIENCE` (default `qi`): the required `aud`.
    pub audience: String,
    /// `QI_JWT_LEEWAY_SECS` (default 30): clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// `QI_JWT_MAX_LIFETIME_SECS` (default 86400, 24 h; at least 1): the longest a token may
    /// live, `exp - iat`; a longer one, or one without `iat`, is refused.
    pub max_lifetime: Duration,
    /// `QI_JWT_EMPLOYEE_CLAIM` (default [`DEFAULT_EMPLOYEE_CLAIM`]): the token claim carrying
    /// the caller's ESR employee number, when the caller is a person (identity providers
    /// carry it as an extension attribute, under a name of the trust's choosing). Read by the
    /// gateway, written by `qi token --employee`, and named by the services when a call needs
    /// it and the token had none.
    pub employee_claim: String,
}

/// The claim that carries a caller's employee number unless `QI_JWT_EMPLOYEE_CLAIM` says
/// otherwise.
pub const DEFAULT_EMPLOYEE_CLAIM: &str = "employee_number";

/// The claims a QI token already gives a meaning to: the employee number cannot be one.
const RESERVED_CLAIMS: [&str; 9] = [
    "sub", "roles", "sites", "iss", "aud", "exp", "iat", "nbf", "jti",
];

/// The access-context signing keys, each at least [`MIN_SECRET_BYTES`] bytes.
#[derive(Clone, Default)]
pub struct AccessKeys {
    /// The key that signs (and verifies).
    pub current: Option<String>,
    /// A previous key still accepted for verification while a rotation rolls out.
    pub previous: Option<String>,
}

impl Config {
    /// Loads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Loads the configuration from any variable lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let sites = get("QI_SITES").unwrap_or_else(|| "BAS,BRM,SOU".into());
        let sites = sites
            .split(',')
            .map(|s| {
                SiteCode::parse(s.trim()).map_err(|reason| ConfigError {
                    var: "QI_SITES",
                    value: sites.clone(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let log_format = match get("QI_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    var: "QI_LOG_FORMAT",
                    value: other.into(),
                    reason: "expected `text` or `json`".into(),
                });
            }
        };
        if let (Some(_), Some(url)) = (get("QI_JWKS_FILE"), get("QI_JWKS_URL")) {
            return Err(ConfigError {
                var: "QI_JWKS_URL",
                value: url,
                reason: "QI_JWKS_FILE is set too: keys come from one place".into(),
            });
        }
        Ok(Config {
            database_url: get("QI_DATABASE_URL"),
            migration_database_url: get("QI_MIGRATION_DATABASE_URL"),
            data_dir: get("QI_DATA_DIR").map_or_else(|| PathBuf::from(".qi"), PathBuf::from),
            listen: parse(&get, "QI_LISTEN", "127.0.0.1:50051".parse().ok())?,
            sites,
            backends: Backends {
                training: get("QI_TRAINING_URL").unwrap_or_else(|| "http://127.0.0.1:50052".into()),
                projects: get("QI_PROJECTS_URL").unwrap_or_else(|| "http://127.0.0.1:50053".into()),
                metrics: get("QI_METRICS_URL").unwrap_or_else(|| "http://127.0.0.1:50054".into()),
                insights: get("QI_INSIGHTS_URL").unwrap_or_else(|| "http://127.0.0.1:50055".into()),
            },
            jwt: JwtConfig {
                hs256_secret: secret(&get, "QI_JWT_SECRET")?,
                allow_hs256_with_jwks: parse(&get, "QI_JWT_ALLOW_HS256", Some(false))?,
                jwks_file: get("QI_JWKS_FILE").map(PathBuf::from),
                jwks_url: get("QI_JWKS_URL"),
                issuer: get("QI_JWT_ISSUER").unwrap_or_else(|| "qi-dev".into()),
                audience: get("QI_JWT_AUDIENCE").unwrap_or_else(|| "qi".into()),
                leeway_secs: parse(&get, "QI_JWT_LEEWAY_SECS", Some(30))?,
                max_lifetime: max_lifetime(&get)?,
                employee_claim: employee_claim(&get)?,
            },
            access_keys: AccessKeys {
                current: secret(&get, "QI_ACCESS_KEY")?,
                previous: secret(&get, "QI_ACCESS_KEY_PREVIOUS")?,
            },
            request_timeout: millis(&get, "QI_REQUEST_TIMEOUT_MS", 10_000)?,
            bulk_timeout: millis(&get, "QI_BULK_TIMEOUT_MS", 1_800_000)?,
            concurrency_limit: parse(&get, "QI_CONCURRENCY_LIMIT", Some(512))?,
            rate_limit_per_subject: parse(&get, "QI_RATE_LIMIT_PER_SUBJECT", Some(200))?,
            rate_limit_burst: parse(&get, "QI_RATE_LIMIT_BURST", Some(400))?,
            backend_check_interval: millis(&get, "QI_BACKEND_CHECK_INTERVAL_MS", 2_000)?,
            trusted_proxies: get("QI_TRUSTED_PROXIES")
                .map(|v| Cidr::parse_list(&v))
                .transpose()
                .map_err(|(value, reason)| ConfigError {
                    var: "QI_TRUSTED_PROXIES",
                    value,
                    reason,
                })?
                .unwrap_or_default(),
            auth_failure_rate: parse(&get, "QI_AUTH_FAILURE_RATE", Some(5))?,
            cors_allowed_origins: get("QI_CORS_ALLOWED_ORIGINS")
                .map(|v| origins(&v))
                .transpose()
                .map_err(|(value, reason)| ConfigError {
                    var: "QI_CORS_ALLOWED_ORIGINS",
                    value,
                    reason,
                })?
                .unwrap_or_default(),
            audit_queue: parse(&get, "QI_AUDIT_QUEUE", Some(50_000))?.max(1),
            audit_retention_days: parse(&get, "QI_AUDIT_RETENTION_DAYS", Some(400))?,
            maintenance_interval: positive_millis(&get, "QI_MAINTENANCE_INTERVAL_MS", 3_600_000)?,
            idempotency_purge_interval: positive_millis(
                &get,
                "QI_IDEMPOTENCY_PURGE_INTERVAL_MS",
                600_000,
            )?,
            drain_delay: millis(&get, "QI_SHUTDOWN_DRAIN_DELAY_MS", 0)?,
            shutdown_grace: millis(&get, "QI_SHUTDOWN_GRACE_MS", 20_000)?,
            db_max_connections: parse(&get, "QI_DB_MAX_CONNECTIONS", Some(10))?,
            db_acquire_timeout: millis(&get, "QI_DB_ACQUIRE_TIMEOUT_MS", 3_000)?,
            run_chart_below_points: parse(&get, "QI_RUN_CHART_BELOW_POINTS", Some(15))?.max(1),
            idea_review_days: review_days(&get)?,
            changes_retention_days: days_in(&get, "QI_CHANGES_RETENTION_DAYS", 30)?,
            changes_idle_timeout: positive_millis(&get, "QI_CHANGES_IDLE_TIMEOUT_MS", 60_000)?,
            changes_poll: positive_millis(&get, "QI_CHANGES_POLL_MS", 100)?,
            log_format,
            log_filter: get("QI_LOG").unwrap_or_else(|| "info".into()),
            otlp_endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        })
    }

    /// The URL migrations and retention run with: `QI_MIGRATION_DATABASE_URL`, else
    /// `QI_DATABASE_URL` (one role for everything, as before roles were split).
    pub fn owner_database_url(&self) -> Option<&str> {
        self.migration_database_url
            .as_deref()
            .or(self.database_url.as_deref())
    }

    /// The configuration with every default, as `qi up` on a new machine sees it.
    pub fn defaults() -> Self {
        Self::from_lookup(|_| None).unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Cidr::parse_one(text.trim())
    }
}

/// An address range: `10.0.0.0/8`, `fd00::/8`, or one address (`192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `addr` is in the range (an IPv4 address mapped into IPv6 counts as IPv4).
    pub fn contains(&self, addr: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        let (a, n, bits) = match (addr, self.network) {
            (IpAddr::V4(a), IpAddr::V4(n)) => {
                (u128::from(a.to_bits()), u128::from(n.to_bits()), 32)
            }
            (IpAddr::V6(a), IpAddr::V6(n)) => (a.to_bits(), n.to_bits(), 128),
            _ => return false,
        };
        let host_bits = bits - u32::from(self.prefix);
        host_bits >= bits || (a >> host_bits) == (n >> host_bits)
    }

    fn parse_one(text: &str) -> Result<Self, String> {
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let network: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an address or CIDR range"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {max}"))?
        };
        Ok(Cidr { network, prefix })
    }

    /// A comma-separated list; the error holds the bad item and why.
    fn parse_list(list: &str) -> Result<Vec<Self>, (String, String)> {
        list.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Cidr::parse_one(t).map_err(|reason| (t.to_owned(), reason)))
            .collect()
    }
}

/// Web origins as a browser sends them in `Origin`: `http` or `https`, a host, an optional
/// port, nothing after. Lower-cased, as browsers serialise them. A wildcard is refused: the
/// gateway answers bearer-token calls, and "any page may call" is never what a trust means.
fn origins(list: &str) -> Result<Vec<String>, (String, String)> {
    list.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let origin = t.to_ascii_lowercase();
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let bad = |reason: &str| (t.to_owned(), reason.to_owned());
            match host {
                _ if origin == "*" || origin.contains('*') => {
                    Err(bad("wildcards are not allowed: list each origin"))
                }
                None => Err(bad("an origin starts http:// or https://")),
                Some(h) if h.is_empty() || h.contains(['/', '?', '#', '@', ' ']) => Err(bad(
                    "an origin is scheme://host[:port], with no path (no trailing /)",
                )),
                Some(_) => Ok(origin),
            }
        })
        .collect()
}

/// `QI_IDEA_REVIEW_DAYS`: 1 to 3650 days (ten years; beyond that no idea is overdue).
fn review_days(get: &impl Fn(&str) -> Option<String>) -> Result<u32, ConfigError> {
    days_in(get, "QI_IDEA_REVIEW_DAYS", 30)
}

/// A number of days from 1 to 3650 (ten years).
fn days_in(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u32,
) -> Result<u32, ConfigError> {
    let days: u32 = parse(get, var, Some(default))?;
    if (1..=3650).contains(&days) {
        Ok(days)
    } else {
        Err(ConfigError {
            var,
            value: days.to_string(),
            reason: "must be from 1 to 3650 days".into(),
        })
    }
}

fn parse<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: Option<T>,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match get(var) {
        Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError {
            var,
            value: v.clone(),
            reason: e.to_string(),
        }),
        None => default.ok_or_else(|| ConfigError {
            var,
            value: String::new(),
            reason: "required".into(),
        }),
    }
}

/// A shared secret, refused when shorter than [`MIN_SECRET_BYTES`]; the error gives its
/// length, never its value.
fn secret(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Option<String>, ConfigError> {
    match get(var) {
        Some(v) if v.len() < MIN_SECRET_BYTES => Err(ConfigError {
            var,
            value: format!("<{} bytes, not shown>", v.len()),
            reason: format!(
                "a secret needs at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -base64 32`)"
            ),
        }),
        other => Ok(other),
    }
}

fn max_lifetime(get: &impl Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    const VAR: &str = "QI_JWT_MAX_LIFETIME_SECS";
    match parse(get, VAR, Some(86_400u64))? {
        0 => Err(ConfigError {
            var: VAR,
            value: "0".into(),
            reason: "a token must be allowed to live at least a second".into(),
        }),
        secs => Ok(Duration::from_secs(secs)),
    }
}

/// The employee-number claim's name: what identity providers use for a claim (letters,
/// digits, `_ - . : /`, so a namespaced URI such as `https://trust.nhs.uk/esr` fits), at
/// most 200 bytes, and not a claim the token already uses for something else.
fn employee_claim(get: &impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    const VAR: &str = "QI_JWT_EMPLOYEE_CLAIM";
    let Some(claim) = get(VAR) else {
        return Ok(DEFAULT_EMPLOYEE_CLAIM.into());
    };
    let claim = claim.trim().to_owned();
    let refuse = |reason: String| ConfigError {
        var: VAR,
        value: claim.clone(),
        reason,
    };
    let sane = claim.len() <= 200
        && claim
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b));
    if !sane {
        return Err(refuse(
            "a claim name is at most 200 letters, digits and `_ - . : /`".into(),
        ));
    }
    if RESERVED_CLAIMS.contains(&claim.as_str()) {
        return Err(refuse(format!(
            "`{claim}` already means something else in a QI token"
        )));
    }
    Ok(claim)
}

/// Stands in for a secret in `Debug` output: whether it is set, never what it is.
struct Redacted<'a>(&'a Option<String>);

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Some(<redacted>)"
        } else {
            "None"
        })
    }
}

/// A database URL with its password, if any, replaced.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL: not shown>".into();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:<redacted>@{host}{tail}")
        }
        // A password may also come as a query parameter.
        None if tail.contains("password=") => format!("{scheme}://{authority}<query redacted>"),
        None => url.to_owned(),
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "database_url",
                &self.database_url.as_deref().map(without_password),
            )
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("sites", &self.sites)
            .field("backends", &self.backends)
            .field("jwt", &self.jwt)
            .field("access_keys", &self.access_keys)
            .field("request_timeout", &self.request_timeout)
            .field("concurrency_limit", &self.concurrency_limit)
            .field("rate_limit_per_subject", &self.rate_limit_per_subject)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("backend_check_interval", &self.backend_check_interval)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("auth_failure_rate", &self.auth_failure_rate)
            .field("cors_allowed_origins", &self.cors_allowed_origins)
            .field("audit_queue", &self.audit_queue)
            .field("drain_delay", &self.drain_delay)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("db_max_connections", &self.db_max_connections)
            .field("db_acquire_timeout", &self.db_acquire_timeout)
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .field("otlp_endpoint", &self.otlp_endpoint)
            .finish()
    }
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("hs256_secret", &Redacted(&self.hs256_secret))
            .field("allow_hs256_with_jwks", &self.allow_hs256_with_jwks)
            .field("jwks_file", &self.jwks_file)
            .field("jwks_url", &self.jwks_url)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .field("max_lifetime", &self.max_lifetime)
            .field("employee_claim", &self.employee_claim)
            .finish()
    }
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeys")
            .field("current", &Redacted(&self.current))
            .field("previous", &Redacted(&self.previous))
            .finish()
    }
}

fn millis(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    parse(get, var, Some(default)).map(Duration::from_millis)
}

/// A period: milliseconds, at least 1 (a timer of zero would spin).
fn positive_millis(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    let ms: u64 = parse(get, var, Some(default))?;
    if ms == 0 {
        return Err(ConfigError {
            var,
            value: "0".into(),
            reason: "must be at least 1".into(),
        });
    }
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_run_the_reference_trust_on_loopback() {
        let c = Config::defaults();
        assert_eq!(c.listen.to_string(), "127.0.0.1:50051");
        let sites: Vec<_> = c.sites.iter().map(|s| s.as_str().to_owned()).collect();
        assert_eq!(sites, ["BAS", "BRM", "SOU"]);
        assert!(c.database_url.is_none());
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.audit_retention_days, 400);
    }

    #[test]
    fn migrations_fall_back_to_the_one_database_url() {
        let c = load(&[("QI_DATABASE_URL", "postgres://app@db/qi")]).unwrap();
        assert_eq!(c.owner_database_url(), Some("postgres://app@db/qi"));
        let c = load(&[
            ("QI_DATABASE_URL", "postgres://app@db/qi"),
            ("QI_MIGRATION_DATABASE_URL", "postgres://owner@db/qi"),
        ])
        .unwrap();
        assert_eq!(c.owner_database_url(), Some("postgres://owner@db/qi"));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = load(&[("QI_CONCURRENCY_LIMIT", "lots")]).unwrap_err();
        assert_eq!(err.var, "QI_CONCURRENCY_LIMIT");
        let err = load(&[("QI_SITES", "BAS,b!")]).unwrap_err();
        assert_eq!(err.var, "QI_SITES");
        let err = load(&[("QI_AUDIT_RETENTION_DAYS", "-1")]).unwrap_err();
        assert_eq!(err.var, "QI_AUDIT_RETENTION_DAYS");
        let err = load(&[("QI_IDEMPOTENCY_PURGE_INTERVAL_MS", "0")]).unwrap_err();
        assert_eq!(err.var, "QI_IDEMPOTENCY_PURGE_INTERVAL_MS");
        let err = load(&[("QI_LOG_FORMAT", "xml")]).unwrap_err();
        assert_eq!(err.var, "QI_LOG_FORMAT");
        let err = load(&[
            ("QI_JWKS_FILE", "/k.json"),
            ("QI_JWKS_URL", "https://idp/k"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "QI_JWKS_URL");
    }

    #[test]
    fn a_short_secret_is_refused_naming_its_variable_not_its_value() {
        let short = "dev-secret-of-31-bytes-xxxxxxxx";
        assert_eq!(short.len(), 31);
        for var in ["QI_JWT_SECRET", "QI_ACCESS_KEY", "QI_ACCESS_KEY_PREVIOUS"] {
            let err = load(&[(var, short)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(!err.to_string().contains(short), "{err}");
            assert!(err.to_string().contains("31 bytes"), "{err}");
        }
        let long = "x".repeat(MIN_SECRET_BYTES);
        let c = load(&[("QI_JWT_SECRET", &long), ("QI_ACCESS_KEY", &long)]).unwrap();
        assert_eq!(c.jwt.hs256_secret.as_deref(), Some(long.as_str()));
        let err = load(&[("QI_JWT_MAX_LIFETIME_SECS", "0")]).unwrap_err();
        assert_eq!(err.var, "QI_JWT_MAX_LIFETIME_SECS");
        assert_eq!(
            Config::defaults().jwt.max_lifetime,
            Duration::from_secs(86_400)
        );
        assert!(!Config::defaults().jwt.allow_hs256_with_jwks);
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let jwt = "j".repeat(40);
        let key = "k".repeat(40);
        let old = "o".repeat(40);
        let c = load(&[
            ("QI_JWT_SECRET", &jwt),
            ("QI_ACCESS_KEY", &key),
            ("QI_ACCESS_KEY_PREVIOUS", &old),
            (
                "QI_DATABASE_URL",
                "postgres://qi:hunter2@db:5432/qi?sslmode=require",
            ),
        ])
        .unwrap();
        let shown = format!("{c:?} {:?} {:?} {c:#?}", c.jwt, c.access_keys);
        for secret in [jwt.as_str(), &key, &old, "hunter2"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("postgres://qi:<redacted>@db:5432/qi?sslmode=require"));
        assert!(shown.contains("listen"), "the rest is still shown");
        assert_eq!(
            without_password("postgres:///qi?host=/tmp&password=hunter2"),
            "postgres://<query redacted>"
        );
        assert_eq!(without_password("postgres://db/qi"), "postgres://db/qi");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let c = load(&[("QI_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7,fd00::/8")]).unwrap();
        let has = |a: &str| {
            c.trusted_proxies
                .iter()
                .any(|p| p.contains(a.parse().unwrap()))
        };
        assert!(has("10.1.2.3") && has("192.0.2.7") && has("fd00::1") && has("::ffff:10.9.9.9"));
        assert!(!has("11.0.0.1") && !has("192.0.2.8") && !has("fe00::1"));
        assert!(
            load(&[("QI_TRUSTED_PROXIES", "0.0.0.0/0")])
                .unwrap()
                .trusted_proxies[0]
                .contains("203.0.113.9".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0.0/x"] {
            assert_eq!(
                load(&[("QI_TRUSTED_PROXIES", bad)]).unwrap_err().var,
                "QI_TRUSTED_PROXIES"
            );
        }
    }

    #[test]
    fn cors_origins_are_exact_web_origins_and_none_by_default() {
        assert!(Config::defaults().cors_allowed_origins.is_empty());
        let c = load(&[(
            "QI_CORS_ALLOWED_ORIGINS",
            " https://Intranet.example.nhs.uk, http://127.0.0.1:8765 ,",
        )])
        .unwrap();
        assert_eq!(
            c.cors_allowed_origins,
            ["https://intranet.example.nhs.uk", "http://127.0.0.1:8765"]
        );
        for bad in [
            "*",
            "https://*.example.nhs.uk",
            "intranet.example.nhs.uk",
            "https://intranet.example.nhs.uk/",
            "https://intranet.example.nhs.uk/app",
            "ftp://intranet",
            "https://",
        ] {
            let e = load(&[("QI_CORS_ALLOWED_ORIGINS", bad)]).unwrap_err();
            assert_eq!((e.var, e.value.as_str()), ("QI_CORS_ALLOWED_ORIGINS", bad));
        }
    }

    #[test]
    fn the_employee_claim_is_a_claim_name_the_token_does_not_use_otherwise() {
        assert_eq!(Config::defaults().jwt.employee_claim, "employee_number");
        for good in [
            "esr_number",
            "extension_6f1c2f0e_employeeNumber",
            "https://trust.nhs.uk/claims/esr",
        ] {
            let c = load(&[("QI_JWT_EMPLOYEE_CLAIM", good)]).unwrap();
            assert_eq!(c.jwt.employee_claim, good);
        }
        let long = "x".repeat(201);
        for bad in ["employee number", "emp\"no", "sub", "roles", long.as_str()] {
            let err = load(&[("QI_JWT_EMPLOYEE_CLAIM", bad)]).unwrap_err();
            assert_eq!(err.var, "QI_JWT_EMPLOYEE_CLAIM", "{bad}");
        }
    }

    #[test]
    fn empty_values_mean_the_default() {
        let c = load(&[("QI_DATABASE_URL", " "), ("QI_LISTEN", "0.0.0.0:6000")]).unwrap();
        assert!(c.database_url.is_none());
        assert_eq!(c.listen.port(), 6000);
    }
}
