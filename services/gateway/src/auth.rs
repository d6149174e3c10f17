//! Bearer-token authentication. Production tokens are RS256 or ES256, checked against a
//! JWKS (a file, or an identity provider's URL) and selected by `kid`; development tokens
//! are HS256 with a shared secret (minted by `qi token`), refused where a JWKS is
//! configured unless `QI_JWT_ALLOW_HS256` says otherwise. The algorithm is pinned per key,
//! and `exp`, `iat`, `iss`, `aud` and `sub` are required (jsonwebtoken checks `iss`/`aud`
//! only when told they are required); a token may live at most `QI_JWT_MAX_LIFETIME_SECS`
//! (`exp - iat`), so a stolen one is not good for months. JWKS keys that are not for
//! signatures, whose `alg` disagrees with the key, or RSA keys under 2048 bits are ignored
//! with a warning.
//!
//! A caller who is a person carries its ESR employee number in the claim
//! `QI_JWT_EMPLOYEE_CLAIM` names, as a string or a non-negative integer (providers emit
//! both). It is checked by the rule the training service holds staff to; a token without it
//! is a caller like any other, and one with a malformed number is refused whole.
//!
//! Keys rotate without a restart: the JWKS is read again every few minutes and when a
//! token names a `kid` not yet known (at most every few seconds). A file is read in line,
//! on the call that needs it; a URL is fetched by a background task, so the call that
//! names a new `kid` is refused and the calls after the fetch pass. A failed read keeps
//! the keys already held, so a broken publication does not lock everyone out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use qi_platform::config::JwtConfig;
use qi_platform::verified::Verified;
use qi_platform::{EmployeeNumber, Error, SiteScope};
use serde::{Deserialize, Serialize};
use tonic::Status;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's subject.
    pub subject: String,
    /// The token's roles.
    pub roles: Vec<String>,
    /// The token's sites.
    pub sites: SiteScope,
    /// The caller's ESR employee number, when the token carries one.
    pub employee: Option<EmployeeNumber>,
    /// When the token expires (seconds since the Unix epoch): a stream ends there.
    pub expires: u64,
}

impl Principal {
    /// Whether the caller holds any of `roles` (admin holds them all).
    pub fn has_any_role(&self, roles: &[String]) -> bool {
        self.roles
            .iter()
            .any(|r| r == "admin" || roles.iter().any(|want| want == r))
    }
}

/// The claims of a QI bearer token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Subject.
    pub sub: String,
    /// Roles: `viewer`, `contributor`, `improvement_team`, `hr_sync`, `admin`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Site codes, or `*` for trust-wide.
    #[serde(default)]
    pub sites: Vec<String>,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at (seconds since the epoch): required, to bound the token's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Every other claim. The employee number is read from here, because its claim's name
    /// is configured (`QI_JWT_EMPLOYEE_CLAIM`), not fixed.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// How often the JWKS is read again, so keys rotate (and are revoked) without a restart.
const JWKS_REFRESH: Duration = Duration::from_secs(300);
/// The least time between reads prompted by an unknown `kid` (a new key being rolled out).
const JWKS_UNKNOWN_KID_REREAD: Duration = Duration::from_secs(2);
/// How long one fetch of a JWKS URL may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest JWKS document accepted (a few keys take a few KiB).
const JWKS_MAX_BYTES: usize = 1024 * 1024;
/// The smallest RSA modulus accepted (NIST SP 800-131A: shorter keys are disallowed).
const RSA_MIN_BITS: usize = 2048;

/// Keys by `kid`, and when they were read.
struct KeySet {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    read_at: Instant,
}

type Keys = HashMap<String, (DecodingKey, Algorithm)>;

/// Where the JWKS comes from.
enum KeySource {
    /// No JWKS: HS256 only.
    None,
    /// A file, read again in line when due.
    File(PathBuf),
    /// A URL, fetched by a background task; `wake` asks it for an early fetch.
    Url {
        url: String,
        wake: Arc<tokio::sync::Notify>,
        task: tokio::task::AbortHandle,
    },
}

/// The most verified tokens remembered.
const VERIFIED_MAX: usize = 10_000;

/// Checks bearer tokens.
pub struct Authenticator {
    /// Tokens already verified.
    verified: Verified<Principal>,
    hs256: Option<DecodingKey>,
    source: KeySource,
    jwks: Arc<RwLock<KeySet>>,
    validation: Validation,
    /// The longest `exp - iat` accepted, in seconds.
    max_lifetime: u64,
    /// The claim carrying the caller's employee number (`QI_JWT_EMPLOYEE_CLAIM`).
    employee_claim: String,
}

impl Drop for Authenticator {
    fn drop(&mut self) {
        if let KeySource::Url { task, .. } = &self.source {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.hs256.is_some())
            .field(
                "jwks",
                &match &self.source {
                    KeySource::None => "none".to_owned(),
                    KeySource::File(path) => path.display().to_string(),
                    KeySource::Url { url, .. } => url.clone(),
                },
            )
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds the authenticator from configuration; at least one key source is required.
    /// A JWKS URL is fetched once here (startup fails if it cannot be), then kept fresh by
    /// a task on the current Tokio runtime.
    pub fn new(config: &JwtConfig) -> anyhow::Result<Self> {
        let jwks = match (&config.jwks_file, &config.jwks_url) {
            (Some(_), Some(_)) => anyhow::bail!("set QI_JWKS_FILE or QI_JWKS_URL, not both"),
            (Some(path), None) => load_jwks(path)?,
            (None, Some(url)) => fetch_at_startup(url)?,
            (None, None) => HashMap::new(),
        };
        let has_jwks = !jwks.is_empty();
        let jwks_configured = config.jwks_file.is_some() || config.jwks_url.is_some();
        let hs256 = match &config.hs256_secret {
            // Where the identity provider issues tokens, a development secret must not be
            // able to mint them too, unless the deployment says so by name.
            Some(_) if jwks_configured && !config.allow_hs256_with_jwks => {
                tracing::warn!(
                    "QI_JWT_SECRET is ignored: HS256 tokens are refused while a JWKS is \
                     configured (set QI_JWT_ALLOW_HS256=true to accept them)"
                );
                None
            }
            Some(s) => Some(DecodingKey::from_secret(s.as_bytes())),
            None => None,
        };
        if hs256.is_none() && !has_jwks {
            anyhow::bail!(
                "no token keys: set QI_JWKS_FILE (production) or QI_JWT_SECRET (development)"
            );
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.leeway = config.leeway_secs;
        validation.validate_nbf = true;
        let jwks = Arc::new(RwLock::new(KeySet {
            keys: jwks,
            read_at: Instant::now(),
        }));
        let source = match (&config.jwks_file, &config.jwks_url) {
            (Some(path), _) => KeySource::File(path.clone()),
            (None, Some(url)) => {
                let wake = Arc::new(tokio::sync::Notify::new());
                let runtime = tokio::runtime::Handle::try_current()
                    .context("QI_JWKS_URL needs a Tokio runtime to refresh the keys")?;
                let task = runtime
                    .spawn(refresh_from_url(url.clone(), jwks.clone(), wake.clone()))
                    .abort_handle();
                KeySource::Url {
                    url: url.clone(),
                    wake,
                    task,
                }
            }
            (None, None) => KeySource::None,
        };
        Ok(Authenticator {
            verified: Verified::new(VERIFIED_MAX, validation.leeway),
            hs256,
            source,
            jwks,
            validation,
            max_lifetime: config.max_lifetime.as_secs(),
            employee_claim: config.employee_claim.clone(),
        })
    }

    /// The claim read for the caller's employee number (`QI_JWT_EMPLOYEE_CLAIM`).
    pub fn employee_claim(&self) -> &str {
        &self.employee_claim
    }

    /// Authenticates the value of an `authorization` header.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, Status> {
        let header = header.ok_or_else(|| unauthenticated("missing bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthenticated("authorization is not a bearer token"))?;
        if let Some(principal) = self.verified.get(token) {
            return Ok(principal);
        }
        let (principal, exp) = self.verify(token)?;
        self.verified.insert(token, principal.clone(), exp);
        Ok(principal)
    }

    /// Checks a token's signature and claims; returns the caller and the token's expiry.
    fn verify(&self, token: &str) -> Result<(Principal, u64), Status> {
        let head =
            jsonwebtoken::decode_header(token).map_err(|_| unauthenticated("malformed token"))?;
        // The key decides the algorithm; the token's `alg` must match it exactly.
        let (key, alg) = match (head.alg, head.kid.as_deref()) {
            (Algorithm::HS256, _) => (
                self.hs256
                    .as_ref()
                    .ok_or_else(|| unauthenticated("unexpected token algorithm"))?,
                Algorithm::HS256,
            ),
            (Algorithm::RS256 | Algorithm::ES256, Some(kid)) => {
                let (key, alg) = self
                    .jwks_key(kid)
                    .ok_or_else(|| unauthenticated("unknown token key id"))?;
                return self.finish(token, &key, alg, head.alg);
            }
            _ => return Err(unauthenticated("unexpected token algorithm")),
        };
        self.finish(token, key, alg, head.alg)
    }

    /// A key from the JWKS. A file is read again when due or when the `kid` is unknown (a
    /// key being rolled out), at most every few seconds; for a URL the background task is
    /// asked to fetch, and this call goes without.
    fn jwks_key(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        let path = match &self.source {
            KeySource::None => return None,
            KeySource::File(path) => path,
            KeySource::Url { wake, .. } => {
                let found = self.jwks.read().ok()?.keys.get(kid).cloned();
                if found.is_none() {
                    wake.notify_one();
                }
                return found;
            }
        };
        let (found, age) = {
            let set = self.jwks.read().ok()?;
            (set.keys.get(kid).cloned(), set.read_at.elapsed())
        };
        let due = age > JWKS_REFRESH || (found.is_none() && age > JWKS_UNKNOWN_KID_REREAD);
        if !due {
            return found;
        }
        match load_jwks(path) {
            Ok(keys) => {
                let key = keys.get(kid).cloned();
                if let Ok(mut set) = self.jwks.write() {
                    *set = KeySet {
                        keys,
                        read_at: Instant::now(),
                    };
                }
                key
            }
            Err(e) => {
                // Keep the keys we have; a broken file must not lock everyone out.
                tracing::error!(error = %e, "re-reading the JWKS file failed; keeping the previous keys");
                if let Ok(mut set) = self.jwks.write() {
                    set.read_at = Instant::now();
                }
                found
            }
        }
    }

    fn finish(
        &self,
        token: &str,
        key: &DecodingKey,
        alg: Algorithm,
        sent: Algorithm,
    ) -> Result<(Principal, u64), Status> {
        if sent != alg {
            return Err(unauthenticated("unexpected token algorithm"));
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| unauthenticated(format!("invalid token: {}", describe(&e))))?
            .claims;
        // `iat` is required above; a token living longer than allowed is refused whole.
        let lifetime = claims.exp.saturating_sub(claims.iat.unwrap_or(0));
        if claims.iat.is_none() || lifetime > self.max_lifetime {
            return Err(unauthenticated(format!(
                "invalid token: it lives longer than {} s (exp - iat)",
                self.max_lifetime
            )));
        }
        let sites = SiteScope::from_claim(&claims.sites)
            .map_err(|e| unauthenticated(format!("invalid token: sites: {e}")))?;
        let employee = employee(&claims, &self.employee_claim)?;
        Ok((
            Principal {
                subject: claims.sub,
                roles: claims.roles,
                sites,
                employee,
                expires: claims.exp,
            },
            claims.exp,
        ))
    }
}

/// The employee number a token carries under `claim`: a string, or a non-negative integer
/// read as its decimal digits (so a number with leading zeros must come as a string).
/// Absent or null, there is none. The refusal names the claim and never echoes the value.
fn employee(claims: &Claims, claim: &str) -> Result<Option<EmployeeNumber>, Status> {
    use serde_json::Value;
    let number = match claims.other.get(claim) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => EmployeeNumber::parse(s).ok(),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| EmployeeNumber::parse(&n.to_string()).ok()),
        Some(Value::Bool(_) | Value::Array(_) | Value::Object(_)) => None,
    };
    number.map(Some).ok_or_else(|| {
        unauthenticated(format!(
            "invalid token: `{claim}` is not an ESR employee number (5 to 12 digits, as a \
             string or a non-negative integer)"
        ))
    })
}

/// A refused bearer token, with the ErrorInfo every QI error carries.
pub(crate) fn unauthenticated(message: impl Into<String>) -> Status {
    Error::Unauthenticated {
        message: message.into(),
    }
    .into()
}

#[expect(
    clippy::wildcard_enum_match_arm,
    reason = "jsonwebtoken's ErrorKind is non-exhaustive; the rest need no own words"
)]
fn describe(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        ErrorKind::InvalidAlgorithm => "unexpected algorithm",
        ErrorKind::Json(_) => "claims of the wrong type",
        _ => "rejected",
    }
}

fn load_jwks(path: &Path) -> anyhow::Result<Keys> {
    let text =
        std::fs::read(path).with_context(|| format!("reading QI_JWKS_FILE {}", path.display()))?;
    parse_jwks(&text).with_context(|| format!("QI_JWKS_FILE {}", path.display()))
}

/// Fetches a JWKS URL once.
async fn fetch_jwks(client: &reqwest::Client, url: &str) -> anyhow::Result<Keys> {
    let mut response = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("fetching QI_JWKS_URL {url}"))?;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("reading QI_JWKS_URL {url}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > JWKS_MAX_BYTES {
            anyhow::bail!("QI_JWKS_URL {url}: the document exceeds {JWKS_MAX_BYTES} bytes");
        }
    }
    parse_jwks(&body).with_context(|| format!("QI_JWKS_URL {url}"))
}

fn jwks_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(JWKS_FETCH_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("building the JWKS HTTP client")
}

/// The first fetch, before the gateway serves: a few tries, then startup fails naming the
/// URL. It runs on a thread of its own so it can block whether or not a runtime is current.
fn fetch_at_startup(url: &str) -> anyhow::Result<Keys> {
    if !url.starts_with("https://") {
        tracing::warn!(
            url,
            "QI_JWKS_URL is not HTTPS: use it only on loopback or in tests"
        );
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("a runtime for the first JWKS fetch")?;
                runtime.block_on(async {
                    let client = jwks_client()?;
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        match fetch_jwks(&client, url).await {
                            Ok(keys) => return Ok(keys),
                            Err(e) if tries >= 3 => return Err(e),
                            Err(e) => {
                                tracing::warn!(error = %format!("{e:#}"), "fetching the JWKS; retrying");
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                        }
                    }
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the first JWKS fetch panicked"))?
    })
}

/// Keeps the keys of a JWKS URL fresh: every [`JWKS_REFRESH`], and soon after `wake` (an
/// unknown `kid`), never closer together than [`JWKS_UNKNOWN_KID_REREAD`]. A failed fetch
/// is logged and the keys held are kept.
async fn refresh_from_url(url: String, keys: Arc<RwLock<KeySet>>, wake: Arc<tokio::sync::Notify>) {
    let client = match jwks_client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the JWKS will not be refreshed");
            return;
        }
    };
    let mut last = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(JWKS_REFRESH.saturating_sub(last.elapsed())) => {}
            () = wake.notified() => {
                let wait = JWKS_UNKNOWN_KID_REREAD.saturating_sub(last.elapsed());
                tokio::time::sleep(wait).await;
            }
        }
        last = Instant::now();
        match fetch_jwks(&client, &url).await {
            Ok(fresh) => {
                if let Ok(mut set) = keys.write() {
                    *set = KeySet {
                        keys: fresh,
                        read_at: last,
                    };
                }
                tracing::debug!(url, "JWKS refreshed");
            }
            Err(e) => tracing::error!(
                error = %format!("{e:#}"),
                "refreshing the JWKS failed; keeping the previous keys"
            ),
        }
    }
}

#[expect(
    clippy::wildcard_enum_match_arm,
    reason = "every key type but RSA and P-256 is refused, including future ones"
)]
fn parse_jwks(text: &[u8]) -> anyhow::Result<Keys> {
    let set: JwkSet = serde_json::from_slice(text).context("not a JWKS")?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let kid = jwk
            .common
            .key_id
            .clone()
            .context("every JWKS key needs a `kid`")?;
        let alg = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            _ => anyhow::bail!(
                "JWKS key {kid}: only RSA (RS256) and EC P-256 (ES256) keys are accepted"
            ),
        };
        if let Some(why) = unfit(jwk, alg) {
            tracing::warn!(kid, why, "ignoring a JWKS key");
            continue;
        }
        let key = DecodingKey::from_jwk(jwk).with_context(|| format!("JWKS key {kid}"))?;
        keys.insert(kid, (key, alg));
    }
    Ok(keys)
}

/// Why a published key must not verify our tokens, if it must not: meant for encryption,
/// published for another algorithm, on another curve, or an RSA key too short to trust.
#[expect(
    clippy::wildcard_enum_match_arm,
    reason = "every key type but RSA and P-256 is refused before this"
)]
fn unfit(jwk: &jsonwebtoken::jwk::Jwk, alg: Algorithm) -> Option<&'static str> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm, PublicKeyUse};
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return Some("its `use` is not `sig`"),
    }
    let agrees = matches!(
        (&jwk.common.key_algorithm, alg),
        (None, _)
            | (Some(KeyAlgorithm::RS256), Algorithm::RS256)
            | (Some(KeyAlgorithm::ES256), Algorithm::ES256)
    );
    if !agrees {
        return Some("its `alg` is not the algorithm of its key (RS256 for RSA, ES256 for P-256)");
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                rsa.n.trim_end_matches('='),
            )
            .ok()?;
            let bits = n
                .iter()
                .position(|b| *b != 0)
                .map_or(0, |i| (n.len() - i) * 8 - n[i].leading_zeros() as usize);
            (bits < RSA_MIN_BITS).then_some("its RSA modulus is shorter than 2048 bits")
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve != EllipticCurve::P256 => {
            Some("its curve is not P-256")
        }
        _ => None,
    }
}

/// Mints a development (HS256) token, as `qi token` prints it.
pub fn mint_dev_token(
    secret: &str,
    config: &JwtConfig,
    subject: &str,
    roles: &[String],
    sites: &[String],
    ttl: Duration,
) -> anyhow::Result<String> {
    mint_dev_token_for(secret, config, subject, roles, sites, None, ttl)
}

/// Mints a development token for a person: [`mint_dev_token`] with the employee number,
/// when given, under the configured claim (`QI_JWT_EMPLOYEE_CLAIM`), as `qi token
/// --employee` prints it.
pub fn mint_dev_token_for(
    secret: &str,
    config: &JwtConfig,
    subject: &str,
    roles: &[String],
    sites: &[String],
    employee: Option<&EmployeeNumber>,
    ttl: Duration,
) -> anyhow::Result<String> {
    if ttl > config.max_lifetime {
        anyhow::bail!(
            "a token may live at most {} s (QI_JWT_MAX_LIFETIME_SECS): ask for less",
            config.max_lifetime.as_secs()
        );
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: subject.to_owned(),
        roles: roles.to_vec(),
        sites: sites.to_vec(),
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
        exp: now + ttl.as_secs(),
        iat: Some(now),
        nbf: Some(now),
        other: employee
            .map(|e| (config.employee_claim.clone(), e.as_str().into()))
            .into_iter()
            .collect(),
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn config() -> JwtConfig {
        JwtConfig {
            hs256_secret: Some("dev-secret".into()),
            allow_hs256_with_jwks: false,
            jwks_file: None,
            jwks_url: None,
            issuer: "qi-dev".into(),
            audience: "qi".into(),
            leeway_secs: 30,
            max_lifetime: Duration::from_secs(86_400),
            employee_claim: "employee_number".into(),
        }
    }

    fn token(claims: &serde_json::Value, secret: &str, alg: Algorithm) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({"sub": "nurse", "roles": ["viewer"], "sites": ["BAS"],
            "iss": "qi-dev", "aud": "qi", "exp": now() + 600, "iat": now()})
    }

    #[test]
    fn a_token_must_say_when_it_was_issued_and_live_no_longer_than_allowed() {
        let auth = Authenticator::new(&config()).unwrap();
        let bearer =
            |c: &serde_json::Value| format!("Bearer {}", token(c, "dev-secret", Algorithm::HS256));
        assert!(auth.authenticate(Some(&bearer(&claims()))).is_ok());
        let mut no_iat = claims();
        no_iat.as_object_mut().unwrap().remove("iat");
        let mut too_long = claims();
        too_long["iat"] = serde_json::json!(now() - 86_400);
        let mut just_a_day = claims();
        just_a_day["iat"] = serde_json::json!(now() + 600 - 86_400);
        for (what, c) in [("no iat", no_iat), ("a day and ten minutes", too_long)] {
            let err = auth.authenticate(Some(&bearer(&c))).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{what}");
        }
        assert!(auth.authenticate(Some(&bearer(&just_a_day))).is_ok());
        // `qi token` cannot mint what the gateway would refuse.
        let c = config();
        let mint = |hours: u64| {
            mint_dev_token(
                "dev-secret",
                &c,
                "me",
                &[],
                &["*".into()],
                Duration::from_secs(hours * 3600),
            )
        };
        assert!(mint(25).is_err());
        assert!(
            auth.authenticate(Some(&format!("Bearer {}", mint(24).unwrap())))
                .is_ok()
        );
    }

    #[test]
    fn hs256_tokens_are_refused_beside_a_jwks_unless_allowed_by_name() {
        let jwks = std::env::temp_dir().join(format!("qi-jwks-{}.json", std::process::id()));
        std::fs::copy(format!("{FIXTURES}/jwks.json"), &jwks).unwrap();
        let hs = format!(
            "Bearer {}",
            token(&claims(), "dev-secret", Algorithm::HS256)
        );
        let mut c = config();
        c.jwks_file = Some(jwks.clone());
        let auth = Authenticator::new(&c).unwrap();
        let err = auth.authenticate(Some(&hs)).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(
            auth.authenticate(Some(&format!("Bearer {}", es256_token("test-es256"))))
                .is_ok()
        );
        c.allow_hs256_with_jwks = true;
        let auth = Authenticator::new(&c).unwrap();
        assert!(auth.authenticate(Some(&hs)).is_ok());
        let _ = std::fs::remove_file(jwks);
    }

    #[test]
    fn jwks_keys_unfit_for_our_signatures_are_ignored() {
        let published = std::fs::read_to_string(format!("{FIXTURES}/jwks.json")).unwrap();
        let ec: serde_json::Value = serde_json::from_str(&key_json(&published, "ec")).unwrap();
        let with = |kid: &str, field: &str, value: serde_json::Value| {
            let mut k = ec.clone();
            k["kid"] = serde_json::json!(kid);
            k[field] = value;
            k
        };
        let rsa = |kid: &str, bytes: usize| {
            let mut n = vec![0xffu8; bytes];
            n[0] = 0x80;
            serde_json::json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "e": "AQAB",
                "n": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, n)})
        };
        let mut no_use = with("ec-no-use", "kid", serde_json::json!("ec-no-use"));
        no_use.as_object_mut().unwrap().remove("use");
        let set = serde_json::json!({"keys": [
            with("ec-sig", "use", serde_json::json!("sig")),
            no_use,
            with("ec-enc", "use", serde_json::json!("enc")),
            with("ec-says-rs256", "alg", serde_json::json!("RS256")),
            with("ec-p384", "crv", serde_json::json!("P-384")),
            rsa("rsa-2048", 256),
            rsa("rsa-1024", 128),
        ]});
        let keys = parse_jwks(set.to_string().as_bytes()).unwrap();
        let mut kids: Vec<_> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["ec-no-use", "ec-sig", "rsa-2048"]);
    }

    #[test]
    fn a_minted_token_authenticates() {
        let auth = Authenticator::new(&config()).unwrap();
        let t = mint_dev_token(
            "dev-secret",
            &config(),
            "ward-7",
            &["viewer".into()],
            &["*".into()],
            Duration::from_secs(60),
        )
        .unwrap();
        let p = auth.authenticate(Some(&format!("Bearer {t}"))).unwrap();
        assert_eq!(p.subject, "ward-7");
        assert!(p.sites.is_trust_wide());
    }

    #[test]
    fn the_employee_number_is_read_from_the_configured_claim_by_secret_and_jwks_alike() {
        let jwks = std::env::temp_dir().join(format!("qi-jwks-emp-{}.json", std::process::id()));
        std::fs::copy(format!("{FIXTURES}/jwks.json"), &jwks).unwrap();
        let mut c = config();
        c.employee_claim = "extension_esr".into();
        c.jwks_file = Some(jwks.clone());
        c.allow_hs256_with_jwks = true;
        let auth = Authenticator::new(&c).unwrap();
        let with = |value: Option<serde_json::Value>| {
            let mut claims = claims();
            if let Some(v) = value {
                claims["extension_esr"] = v;
            }
            claims
        };
        let by_secret = |claims: &serde_json::Value| {
            format!("Bearer {}", token(claims, "dev-secret", Algorithm::HS256))
        };
        let by_jwks = |claims: &serde_json::Value| {
            format!("Bearer {}", es256_token_with("test-es256", claims))
        };
        for bearer in [
            &by_secret as &dyn Fn(&serde_json::Value) -> String,
            &by_jwks,
        ] {
            for (value, want) in [
                (None, None),
                (Some(serde_json::Value::Null), None),
                (Some(serde_json::json!("00123456")), Some("00123456")),
                (Some(serde_json::json!(12_345_678)), Some("12345678")),
            ] {
                let p = auth
                    .authenticate(Some(&bearer(&with(value.clone()))))
                    .unwrap();
                assert_eq!(p.employee.as_ref().map(|e| e.as_str()), want, "{value:?}");
            }
            // The default claim's name means nothing under another configuration.
            let mut other = claims();
            other["employee_number"] = serde_json::json!("12345678");
            assert_eq!(
                auth.authenticate(Some(&bearer(&other))).unwrap().employee,
                None
            );
            for bad in [
                serde_json::json!("98x7654"),
                serde_json::json!("9876"),
                serde_json::json!(9876),
                serde_json::json!(-98_765_432),
                serde_json::json!(98_765.5),
                serde_json::json!(true),
                serde_json::json!(["98765432"]),
            ] {
                let err = auth
                    .authenticate(Some(&bearer(&with(Some(bad.clone())))))
                    .unwrap_err();
                assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad}");
                assert!(
                    err.message().contains("`extension_esr`"),
                    "{}",
                    err.message()
                );
                let shown = bad.to_string();
                let digits = shown.trim_matches(|c| c == '"' || c == '[' || c == ']');
                assert!(!err.message().contains(digits), "{}", err.message());
            }
        }
        let _ = std::fs::remove_file(jwks);
    }

    #[test]
    fn a_token_minted_for_a_person_carries_the_number_under_the_configured_claim() {
        let mut c = config();
        c.employee_claim = "esr".into();
        let number = EmployeeNumber::parse("12345678").unwrap();
        let t = mint_dev_token_for(
            "dev-secret",
            &c,
            "ward-7",
            &["viewer".into()],
            &["BAS".into()],
            Some(&number),
            Duration::from_secs(60),
        )
        .unwrap();
        let p = Authenticator::new(&c)
            .unwrap()
            .authenticate(Some(&format!("Bearer {t}")))
            .unwrap();
        assert_eq!(p.employee, Some(number));
        // Read under the default claim, the same token carries no number.
        let p = Authenticator::new(&config())
            .unwrap()
            .authenticate(Some(&format!("Bearer {t}")))
            .unwrap();
        assert_eq!(p.employee, None);
    }

    #[test]
    fn bad_tokens_are_unauthenticated() {
        let auth = Authenticator::new(&config()).unwrap();
        let mut cases = vec![
            ("no header".to_owned(), None),
            ("not bearer".into(), Some("Basic abc".to_owned())),
            ("garbage".into(), Some("Bearer not.a.jwt".into())),
            (
                "bad signature".into(),
                Some(format!(
                    "Bearer {}",
                    token(&claims(), "other", Algorithm::HS256)
                )),
            ),
            (
                "HS384".into(),
                Some(format!(
                    "Bearer {}",
                    token(&claims(), "dev-secret", Algorithm::HS384)
                )),
            ),
        ];
        for (what, field, value) in [
            ("expired", "exp", serde_json::json!(now() - 3600)),
            ("wrong issuer", "iss", serde_json::json!("elsewhere")),
            ("wrong audience", "aud", serde_json::json!("other")),
            (
                "roles of the wrong type",
                "roles",
                serde_json::json!("admin"),
            ),
            (
                "sites of the wrong type",
                "sites",
                serde_json::json!({"BAS": true}),
            ),
            ("a bad site code", "sites", serde_json::json!(["bas"])),
            ("not yet valid", "nbf", serde_json::json!(now() + 3600)),
        ] {
            let mut c = claims();
            c[field] = value;
            cases.push((
                what.into(),
                Some(format!(
                    "Bearer {}",
                    token(&c, "dev-secret", Algorithm::HS256)
                )),
            ));
        }
        let mut c = claims();
        c.as_object_mut().unwrap().remove("aud");
        cases.push((
            "no audience".into(),
            Some(format!(
                "Bearer {}",
                token(&c, "dev-secret", Algorithm::HS256)
            )),
        ));
        for (what, header) in cases {
            let err = auth.authenticate(header.as_deref()).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{what}");
        }
    }

    /// A JWKS served over real HTTP on loopback: the status and body it answers with can
    /// be changed while it runs, and it counts the requests it has answered.
    struct JwksServer {
        url: String,
        answer: Arc<Mutex<(u16, String)>>,
        served: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl JwksServer {
        async fn start(body: String) -> JwksServer {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!(
                "http://{}/.well-known/jwks.json",
                listener.local_addr().unwrap()
            );
            let answer = Arc::new(Mutex::new((200, body)));
            let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (a, n) = (answer.clone(), served.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut socket, _)) = listener.accept().await else {
                        return;
                    };
                    let (a, n) = (a.clone(), n.clone());
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => request.extend_from_slice(&buf[..k]),
                            }
                        }
                        let (status, body) = a.lock().unwrap().clone();
                        let head = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(body.as_bytes()).await;
                        let _ = socket.shutdown().await;
                        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    });
                }
            });
            JwksServer {
                url,
                answer,
                served,
            }
        }

        fn publish(&self, status: u16, body: String) {
            *self.answer.lock().unwrap() = (status, body);
        }

        fn served(&self) -> usize {
            self.served.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");

    fn es256_token(kid: &str) -> String {
        es256_token_with(kid, &claims())
    }

    fn es256_token_with(kid: &str, claims: &serde_json::Value) -> String {
        let pem = std::fs::read_to_string(format!("{FIXTURES}/es256-test-key.pem")).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&der)).unwrap()
    }

    /// Polls until `ok` holds (bounded, so a broken refresh fails the test, not hangs it).
    async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Multi-threaded: the first fetch blocks the thread building the authenticator, and the
    // server must answer it from another.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_from_a_jwks_url_rotate_without_a_restart_and_survive_a_bad_refresh() {
        let published = std::fs::read_to_string(format!("{FIXTURES}/jwks.json")).unwrap();
        // The key starts under another kid: the one the new tokens name is rolled out later.
        let server = JwksServer::start(published.replace("test-es256", "first")).await;
        let mut c = config();
        c.hs256_secret = None;
        c.jwks_url = Some(server.url.clone());
        let auth = Authenticator::new(&c).unwrap();
        let bearer = |kid: &str| format!("Bearer {}", es256_token(kid));
        let first = bearer("first");
        let p = auth.authenticate(Some(&first)).unwrap();
        assert_eq!(p.subject, "nurse");

        let rolled = bearer("test-es256");
        let err = auth.authenticate(Some(&rolled)).unwrap_err();
        assert_eq!(
            err.code(),
            tonic::Code::Unauthenticated,
            "not yet published"
        );
        // Rotation: the provider now serves both kids; the gateway fetches on the unknown kid.
        let both = format!(
            r#"{{"keys": [{}, {}]}}"#,
            key_json(&published, "first"),
            key_json(&published, "test-es256")
        );
        server.publish(200, both);
        eventually("the rolled-out key is accepted", || {
            auth.authenticate(Some(&rolled)).is_ok()
        })
        .await;

        // The provider breaks: a refresh fails, and the keys held still work.
        let before = server.served();
        server.publish(500, "oops".into());
        let unknown = bearer("unknown");
        eventually("a refresh is tried against the broken provider", || {
            let _ = auth.authenticate(Some(&unknown));
            server.served() > before
        })
        .await;
        let fresh_first = format!("Bearer {}", es256_token("first"));
        assert!(auth.authenticate(Some(&fresh_first)).is_ok());
        assert!(auth.authenticate(Some(&rolled)).is_ok());
        assert_eq!(
            auth.authenticate(Some(&unknown)).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    /// The fixture's one key, under `kid`.
    fn key_json(published: &str, kid: &str) -> String {
        let set: serde_json::Value = serde_json::from_str(published).unwrap();
        let mut key = set["keys"][0].clone();
        key["kid"] = serde_json::json!(kid);
        key.to_string()
    }

    #[test]
    fn a_jwks_url_that_cannot_be_fetched_fails_startup_naming_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        drop(listener);
        let mut c = config();
        c.jwks_url = Some(url.clone());
        let err = Authenticator::new(&c).unwrap_err();
        assert!(format!("{err:#}").contains(&url), "{err:#}");
    }

    #[test]
    fn a_configuration_without_keys_is_refused() {
        let mut c = config();
        c.hs256_secret = None;
        assert!(Authenticator::new(&c).is_err());
    }
}
