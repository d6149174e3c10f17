//! The one configuration loader: every setting comes from a `QI_*` environment variable,
//! with defaults that make `qi up` work untouched. Tests build a [`Config`] from a map
//! through [`Config::from_lookup`] instead of mutating the process environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::access::SiteCode;

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

/// Every setting of the suite. Each field documents its variable and default.
#[derive(Debug, Clone)]
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
    /// `QI_TRAINING_URL`, `QI_PROJECTS_URL`, `QI_METRICS_URL`: where the gateway finds the
    /// services when they run apart (`qi serve gateway`); ignored by `qi up`.
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
}

/// How the gateway checks bearer tokens.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// `QI_JWT_SECRET`: an HS256 shared secret (development only; `qi up` generates one).
    pub hs256_secret: Option<String>,
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
}

/// The access-context signing keys.
#[derive(Debug, Clone, Default)]
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
            },
            jwt: JwtConfig {
                hs256_secret: get("QI_JWT_SECRET"),
                jwks_file: get("QI_JWKS_FILE").map(PathBuf::from),
                jwks_url: get("QI_JWKS_URL"),
                issuer: get("QI_JWT_ISSUER").unwrap_or_else(|| "qi-dev".into()),
                audience: get("QI_JWT_AUDIENCE").unwrap_or_else(|| "qi".into()),
                leeway_secs: parse(&get, "QI_JWT_LEEWAY_SECS", Some(30))?,
            },
            access_keys: AccessKeys {
                current: get("QI_ACCESS_KEY"),
                previous: get("QI_ACCESS_KEY_PREVIOUS"),
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
    fn empty_values_mean_the_default() {
        let c = load(&[("QI_DATABASE_URL", " "), ("QI_LISTEN", "0.0.0.0:6000")]).unwrap();
        assert!(c.database_url.is_none());
        assert_eq!(c.listen.port(), 6000);
    }
}
