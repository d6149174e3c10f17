//! Bearer-token authentication. Production tokens are RS256 or ES256, checked against a
//! JWKS file and selected by `kid`; development tokens are HS256 with a shared secret
//! (minted by `qi token`). The algorithm is pinned per key, and `exp`, `iss`, `aud` and
//! `sub` are required (jsonwebtoken checks `iss`/`aud` only when told they are required).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use qi_platform::SiteScope;
use qi_platform::config::JwtConfig;
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
    /// Not before (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// How often the JWKS file is read again, so keys rotate (and are revoked) without a restart.
const JWKS_REFRESH: Duration = Duration::from_secs(300);
/// The least time between reads prompted by an unknown `kid` (a new key being rolled out).
const JWKS_UNKNOWN_KID_REREAD: Duration = Duration::from_secs(2);

/// Keys by `kid`, and when they were read.
struct KeySet {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    read_at: Instant,
}

/// The most verified tokens remembered.
const VERIFIED_MAX: usize = 10_000;

/// Checks bearer tokens.
pub struct Authenticator {
    /// Tokens already verified, with their expiry: a dashboard sends one token thousands of
    /// times, and each needs its signature checked once.
    verified: Mutex<HashMap<String, (Principal, u64)>>,
    hs256: Option<DecodingKey>,
    jwks_file: Option<PathBuf>,
    jwks: RwLock<KeySet>,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.hs256.is_some())
            .field("jwks_file", &self.jwks_file)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds the authenticator from configuration; at least one key source is required.
    pub fn new(config: &JwtConfig) -> anyhow::Result<Self> {
        let jwks = match &config.jwks_file {
            Some(path) => load_jwks(path)?,
            None => HashMap::new(),
        };
        let has_jwks = !jwks.is_empty();
        let hs256 = config
            .hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        if hs256.is_none() && !has_jwks {
            anyhow::bail!(
                "no token keys: set QI_JWKS_FILE (production) or QI_JWT_SECRET (development)"
            );
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.leeway = config.leeway_secs;
        validation.validate_nbf = true;
        Ok(Authenticator {
            verified: Mutex::default(),
            hs256,
            jwks_file: config.jwks_file.clone(),
            jwks: RwLock::new(KeySet {
                keys: jwks,
                read_at: Instant::now(),
            }),
            validation,
        })
    }

    /// Authenticates the value of an `authorization` header.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, Status> {
        let header = header.ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Status::unauthenticated("authorization is not a bearer token"))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Ok(mut verified) = self.verified.lock()
            && let Some((principal, exp)) = verified.get(token)
        {
            if now <= exp.saturating_add(self.validation.leeway) {
                return Ok(principal.clone());
            }
            verified.remove(token);
        }
        let (principal, exp) = self.verify(token)?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
            verified.insert(token.to_owned(), (principal.clone(), exp));
        }
        Ok(principal)
    }

    /// Checks a token's signature and claims; returns the caller and the token's expiry.
    fn verify(&self, token: &str) -> Result<(Principal, u64), Status> {
        let head = jsonwebtoken::decode_header(token)
            .map_err(|_| Status::unauthenticated("malformed token"))?;
        // The key decides the algorithm; the token's `alg` must match it exactly.
        let (key, alg) = match (head.alg, head.kid.as_deref()) {
            (Algorithm::HS256, _) => (
                self.hs256
                    .as_ref()
                    .ok_or_else(|| Status::unauthenticated("unexpected token algorithm"))?,
                Algorithm::HS256,
            ),
            (Algorithm::RS256 | Algorithm::ES256, Some(kid)) => {
                let (key, alg) = self
                    .jwks_key(kid)
                    .ok_or_else(|| Status::unauthenticated("unknown token key id"))?;
                return self.finish(token, &key, alg, head.alg);
            }
            _ => return Err(Status::unauthenticated("unexpected token algorithm")),
        };
        self.finish(token, key, alg, head.alg)
    }

    /// A key from the JWKS file, reading the file again when it is due or when the `kid`
    /// is unknown (a key being rolled out), at most every few seconds.
    fn jwks_key(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        let path = self.jwks_file.as_ref()?;
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
            return Err(Status::unauthenticated("unexpected token algorithm"));
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| Status::unauthenticated(format!("invalid token: {}", describe(&e))))?
            .claims;
        let sites = SiteScope::from_claim(&claims.sites)
            .map_err(|e| Status::unauthenticated(format!("invalid token: sites: {e}")))?;
        Ok((
            Principal {
                subject: claims.sub,
                roles: claims.roles,
                sites,
            },
            claims.exp,
        ))
    }
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

#[expect(
    clippy::wildcard_enum_match_arm,
    reason = "every key type but RSA and P-256 is refused, including future ones"
)]
fn load_jwks(path: &Path) -> anyhow::Result<HashMap<String, (DecodingKey, Algorithm)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading QI_JWKS_FILE {}", path.display()))?;
    let set: JwkSet = serde_json::from_str(&text)
        .with_context(|| format!("QI_JWKS_FILE {} is not a JWKS", path.display()))?;
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
        let key = DecodingKey::from_jwk(jwk).with_context(|| format!("JWKS key {kid}"))?;
        keys.insert(kid, (key, alg));
    }
    Ok(keys)
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
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: subject.to_owned(),
        roles: roles.to_vec(),
        sites: sites.to_vec(),
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
        exp: now + ttl.as_secs(),
        nbf: Some(now),
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

    fn config() -> JwtConfig {
        JwtConfig {
            hs256_secret: Some("dev-secret".into()),
            jwks_file: None,
            issuer: "qi-dev".into(),
            audience: "qi".into(),
            leeway_secs: 30,
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
            "iss": "qi-dev", "aud": "qi", "exp": now() + 600})
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

    #[test]
    fn a_configuration_without_keys_is_refused() {
        let mut c = config();
        c.hs256_secret = None;
        assert!(Authenticator::new(&c).is_err());
    }
}
