//! The access context: who is calling, with which roles and sites, for which method.
//!
//! The gateway authenticates the caller's bearer token, then forwards this context to the
//! service in the `x-qi-access-context` metadata entry, signed (HS256) with a key shared only by
//! the gateway and the services. Services refuse any call without a valid context
//! ([`AccessLayer`]) and apply its site scope in their SQL. Two keys are accepted so the
//! key can rotate without downtime: sign with the new one once every service knows it.
//!
//! A caller who is a person also carries an ESR employee number (the token's
//! `QI_JWT_EMPLOYEE_CLAIM`). It is optional in the signed form, so contexts signed by a
//! gateway that predates it still verify while a rollout runs, and a caller without it
//! reads what it always could; the calls that need a person ask for it
//! ([`AccessContext::employee`], [`AccessContext::employee_for_membership`]).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use qi_names::{EmployeeNumber, SiteCode};
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::Error;
use crate::config::DEFAULT_EMPLOYEE_CLAIM;
use crate::verified::Verified;

/// The metadata entry that carries the signed context.
pub const ACCESS_HEADER: &str = "x-qi-access-context";
/// The audience of access contexts, so a user's bearer token can never pass for one.
const AUDIENCE: &str = "qi-internal";

/// Which sites a caller holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteScope {
    /// Trust-wide (`sites: ["*"]`): every site and the trust-wide resources.
    TrustWide,
    /// These sites only.
    Sites(BTreeSet<SiteCode>),
}

impl SiteScope {
    /// Reads the `sites` claim: `*` alone means trust-wide.
    pub fn from_claim(sites: &[String]) -> Result<Self, String> {
        if sites.iter().any(|s| s == "*") {
            return Ok(SiteScope::TrustWide);
        }
        sites
            .iter()
            .map(|s| SiteCode::parse(s))
            .collect::<Result<BTreeSet<_>, _>>()
            .map(SiteScope::Sites)
    }

    /// The claim form: `["*"]` or the codes.
    pub fn to_claim(&self) -> Vec<String> {
        match self {
            SiteScope::TrustWide => vec!["*".into()],
            SiteScope::Sites(s) => s.iter().map(|c| c.as_str().to_owned()).collect(),
        }
    }

    /// Whether the caller holds this site.
    pub fn holds(&self, site: &SiteCode) -> bool {
        match self {
            SiteScope::TrustWide => true,
            SiteScope::Sites(s) => s.contains(site),
        }
    }

    /// Whether the caller is trust-wide.
    pub fn is_trust_wide(&self) -> bool {
        matches!(self, SiteScope::TrustWide)
    }

    /// The site codes to filter SQL by, or `None` for every site (trust-wide callers).
    pub fn sql_filter(&self) -> Option<Vec<String>> {
        match self {
            SiteScope::TrustWide => None,
            SiteScope::Sites(s) => Some(s.iter().map(|c| c.as_str().to_owned()).collect()),
        }
    }
}

/// The caller as the gateway established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessContext {
    /// The token's subject.
    pub subject: String,
    /// The caller's roles.
    pub roles: Vec<String>,
    /// The caller's sites.
    pub sites: SiteScope,
    /// The full gRPC method path the context was issued for.
    pub method: String,
    /// The caller's ESR employee number, when its token carried one.
    pub employee: Option<EmployeeNumber>,
    /// The claim that carries it, as this component is configured: named to a caller whose
    /// token had none. Not signed: each side knows it from its own configuration.
    pub employee_claim: EmployeeClaim,
    /// When the caller's bearer token expires (seconds since the Unix epoch), as the gateway
    /// read it: a long stream (`WatchChanges`) ends there. `None` from a gateway that predates
    /// it, and for internal callers.
    pub token_expiry: Option<u64>,
}

/// The name of the token claim carrying the employee number (`QI_JWT_EMPLOYEE_CLAIM`),
/// shared by every context a component verifies rather than copied into each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmployeeClaim(Arc<str>);

impl EmployeeClaim {
    /// The configured name (checked by the config loader).
    pub fn new(name: &str) -> Self {
        EmployeeClaim(name.into())
    }
}

impl Default for EmployeeClaim {
    fn default() -> Self {
        EmployeeClaim::new(DEFAULT_EMPLOYEE_CLAIM)
    }
}

impl std::fmt::Display for EmployeeClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AccessContext {
    /// The context an internal consumer (the read model, a service following another's
    /// feed) signs for a call of `method` straight to a service, as DESIGN.md decides: it
    /// names itself (`internal:{name}`, as the service's logs and spans will show it), reads
    /// trust-wide, and writes nothing.
    pub fn internal(name: &str, method: &str) -> Self {
        AccessContext {
            subject: format!("internal:{name}"),
            roles: vec!["viewer".into()],
            sites: SiteScope::TrustWide,
            method: method.to_owned(),
            employee: None,
            employee_claim: Default::default(),
            token_expiry: None,
        }
    }

    /// The caller's employee number, for a call that reads what belongs to the person
    /// calling: `FAILED_PRECONDITION` without one (a service account, or a provider not yet
    /// sending the claim), naming the claim so whoever sets up the provider knows what to add.
    pub fn employee(&self) -> Result<&EmployeeNumber, Error> {
        self.employee
            .as_ref()
            .ok_or_else(|| Error::FailedPrecondition {
                reason: "NO_EMPLOYEE_NUMBER",
                message: format!(
                    "this call needs the caller's employee number: the token carries no `{}` claim",
                    self.employee_claim
                ),
            })
    }

    /// The caller's employee number, for an edit allowed to a project's team members:
    /// `PERMISSION_DENIED` without one, since membership cannot be shown (a refusal of the
    /// edit, not a broken request).
    pub fn employee_for_membership(&self) -> Result<&EmployeeNumber, Error> {
        self.employee_for_edit("team membership")
    }

    /// The caller's employee number, for an edit allowed to a person for who they are
    /// (`needs` says what: "team membership", "the caller to be its submitter"):
    /// `PERMISSION_DENIED` without one, naming the missing claim.
    pub fn employee_for_edit(&self, needs: &str) -> Result<&EmployeeNumber, Error> {
        self.employee.as_ref().ok_or_else(|| {
            Error::denied(format!(
                "this edit needs {needs}, which cannot be checked: the token carries no `{}` claim",
                self.employee_claim
            ))
        })
    }

    /// Whether the caller holds a role (`admin` holds every role).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role || r == "admin")
    }

    /// Reads the context the [`AccessLayer`] put on a request.
    pub fn of<T>(req: &tonic::Request<T>) -> Result<&AccessContext, Status> {
        req.extensions()
            .get::<AccessContext>()
            .ok_or_else(|| unauthenticated("no access context"))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    roles: Vec<String>,
    sites: Vec<String>,
    method: String,
    /// Absent (not null) without one; an older gateway never writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    employee: Option<String>,
    /// The caller's token expiry; optional like `employee`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    texp: Option<u64>,
    aud: String,
    exp: u64,
}

/// Signs access contexts (the gateway's half).
#[derive(Clone)]
pub struct AccessSigner {
    key: EncodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for AccessSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessSigner(..)")
    }
}

impl AccessSigner {
    /// A signer using `key`; contexts live `ttl` (the longest call they may authorize).
    pub fn new(key: &str, ttl: Duration) -> Self {
        AccessSigner {
            key: EncodingKey::from_secret(key.as_bytes()),
            ttl,
        }
    }

    /// Signs a context, as the value of [`ACCESS_HEADER`].
    pub fn sign(&self, ctx: &AccessContext) -> Result<String, jsonwebtoken::errors::Error> {
        let exp = SystemTime::now()
            .checked_add(self.ttl)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(u64::MAX, |d| d.as_secs());
        let claims = Claims {
            sub: ctx.subject.clone(),
            roles: ctx.roles.clone(),
            sites: ctx.sites.to_claim(),
            method: ctx.method.clone(),
            employee: ctx.employee.as_ref().map(|e| e.as_str().to_owned()),
            texp: ctx.token_expiry,
            aud: AUDIENCE.into(),
            exp,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
    }
}

/// Verifies access contexts with the current key or, during a rotation, the previous one
/// (the services' half).
#[derive(Clone)]
pub struct AccessVerifier {
    keys: Vec<DecodingKey>,
    validation: Validation,
    /// The gateway reuses a signed context for many calls: each is checked once.
    verified: Arc<Verified<AccessContext>>,
    /// Set on every context verified.
    employee_claim: EmployeeClaim,
}

/// The most verified contexts a service remembers.
const VERIFIED_MAX: usize = 10_000;

impl std::fmt::Debug for AccessVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessVerifier({} keys)", self.keys.len())
    }
}

impl AccessVerifier {
    /// A verifier accepting contexts signed with `current` or `previous`.
    pub fn new(current: &str, previous: Option<&str>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.leeway = 5;
        let keys = std::iter::once(current)
            .chain(previous)
            .map(|k| DecodingKey::from_secret(k.as_bytes()))
            .collect();
        AccessVerifier {
            keys,
            verified: Arc::new(Verified::new(VERIFIED_MAX, validation.leeway)),
            validation,
            employee_claim: EmployeeClaim::default(),
        }
    }

    /// Names `claim` (`QI_JWT_EMPLOYEE_CLAIM`) in the refusals of calls that need the
    /// caller's employee number.
    #[must_use]
    pub fn with_employee_claim(mut self, claim: &str) -> Self {
        self.employee_claim = EmployeeClaim::new(claim);
        self
    }

    /// Checks a signed context and that it was issued for `method`.
    pub fn verify(&self, token: &str, method: &str) -> Result<AccessContext, Status> {
        let ctx = match self.verified.get(token) {
            Some(ctx) => ctx,
            None => {
                let claims = self
                    .keys
                    .iter()
                    .find_map(|k| jsonwebtoken::decode::<Claims>(token, k, &self.validation).ok())
                    .ok_or_else(|| unauthenticated("invalid access context"))?
                    .claims;
                let sites = SiteScope::from_claim(&claims.sites)
                    .map_err(|_| unauthenticated("invalid access context"))?;
                let employee = claims
                    .employee
                    .as_deref()
                    .map(EmployeeNumber::parse)
                    .transpose()
                    .map_err(|_| unauthenticated("invalid access context"))?;
                let ctx = AccessContext {
                    subject: claims.sub,
                    roles: claims.roles,
                    sites,
                    method: claims.method,
                    employee,
                    employee_claim: self.employee_claim.clone(),
                    token_expiry: claims.texp,
                };
                self.verified.insert(token, ctx.clone(), claims.exp);
                ctx
            }
        };
        if ctx.method != method {
            return Err(unauthenticated(
                "access context was issued for another method",
            ));
        }
        Ok(ctx)
    }
}

/// Paths every server answers without an access context: health and reflection.
pub fn is_open_path(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// A tower layer that refuses calls without a valid access context (`UNAUTHENTICATED`) and
/// puts the verified [`AccessContext`] into the request's extensions.
#[derive(Debug, Clone)]
pub struct AccessLayer {
    verifier: Arc<AccessVerifier>,
}

impl AccessLayer {
    /// A layer verifying with `verifier`.
    pub fn new(verifier: Arc<AccessVerifier>) -> Self {
        AccessLayer { verifier }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service made by [`AccessLayer`].
#[derive(Debug, Clone)]
pub struct AccessService<S> {
    inner: S,
    verifier: Arc<AccessVerifier>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for AccessService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        if is_open_path(path) {
            return Box::pin(self.inner.call(req));
        }
        let verified = match req.headers().get(ACCESS_HEADER).map(|v| v.to_str()) {
            Some(Ok(token)) => self.verifier.verify(token, path),
            Some(Err(_)) | None => Err(unauthenticated(
                "missing access context: call through the gateway",
            )),
        };
        match verified {
            Ok(ctx) => {
                req.extensions_mut().insert(ctx);
                Box::pin(self.inner.call(req))
            }
            Err(status) => {
                tracing::debug!(path, %status, "refused a call without a valid access context");
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// A refusal of a call's credentials, with the ErrorInfo every QI error carries.
fn unauthenticated(message: &str) -> Status {
    Error::Unauthenticated {
        message: message.into(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(sites: &[&str]) -> AccessContext {
        AccessContext {
            subject: "nurse".into(),
            roles: vec!["viewer".into()],
            sites: SiteScope::from_claim(&sites.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap(),
            method: "/qi.training.v1.TrainingService/ListCohorts".into(),
            employee: None,
            employee_claim: EmployeeClaim::default(),
            token_expiry: None,
        }
    }

    #[test]
    fn a_context_round_trips_with_either_key_during_rotation() {
        let old = AccessSigner::new("old-key", Duration::from_secs(60));
        let new = AccessSigner::new("new-key", Duration::from_secs(60));
        let verifier = AccessVerifier::new("new-key", Some("old-key"));
        let c = ctx(&["BAS"]);
        for signer in [old, new] {
            let token = signer.sign(&c).unwrap();
            assert_eq!(verifier.verify(&token, &c.method).unwrap(), c);
        }
    }

    #[test]
    fn a_context_signed_with_an_unknown_key_or_for_another_method_is_refused() {
        let token = AccessSigner::new("stranger", Duration::from_secs(60))
            .sign(&ctx(&["BAS"]))
            .unwrap();
        let verifier = AccessVerifier::new("new-key", None);
        let err = verifier.verify(&token, "/x").unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);

        let c = ctx(&["BAS"]);
        let token = AccessSigner::new("new-key", Duration::from_secs(60))
            .sign(&c)
            .unwrap();
        let err = verifier
            .verify(&token, "/qi.training.v1.TrainingService/CreateCohort")
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        // Once verified and remembered, it is still bound to its method.
        assert_eq!(verifier.verify(&token, &c.method).unwrap(), c);
        assert_eq!(verifier.verify(&token, &c.method).unwrap(), c);
        let err = verifier
            .verify(&token, "/qi.training.v1.TrainingService/CreateCohort")
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn a_context_carries_the_employee_number_and_one_from_an_older_gateway_has_none() {
        let signer = AccessSigner::new("key", Duration::from_secs(60));
        let verifier = AccessVerifier::new("key", None);
        let mut c = ctx(&["BAS"]);
        c.employee = Some(EmployeeNumber::parse("00123456").unwrap());
        let token = signer.sign(&c).unwrap();
        assert_eq!(verifier.verify(&token, &c.method).unwrap(), c);

        // Signed by a gateway from before the field existed: no `employee` at all.
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(b"key"),
            )
            .unwrap()
        };
        let old = sign(
            serde_json::json!({"sub": "nurse", "roles": ["viewer"], "sites": ["BAS"],
            "method": c.method, "aud": AUDIENCE, "exp": exp}),
        );
        let read = verifier.verify(&old, &c.method).unwrap();
        assert_eq!(read.employee, None);
        assert_eq!(read, ctx(&["BAS"]));
        // And a context without a number says so by leaving the field out.
        let none = signer.sign(&ctx(&["BAS"])).unwrap();
        let payload = none.split('.').nth(1).unwrap();
        let payload =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap();
        assert!(!String::from_utf8(payload).unwrap().contains("employee"));

        // A number that is not one is not believed, even under the right key.
        let bad = sign(
            serde_json::json!({"sub": "nurse", "roles": ["viewer"], "sites": ["BAS"],
            "method": c.method, "aud": AUDIENCE, "exp": exp, "employee": "12a45"}),
        );
        let err = verifier.verify(&bad, &c.method).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn a_call_needing_a_person_names_the_missing_claim() {
        let verifier = AccessVerifier::new("key", None).with_employee_claim("esr_number");
        let c = ctx(&["BAS"]);
        let token = AccessSigner::new("key", Duration::from_secs(60))
            .sign(&c)
            .unwrap();
        let anonymous = verifier.verify(&token, &c.method).unwrap();

        let status = Status::from(anonymous.employee().unwrap_err());
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "this call needs the caller's employee number: the token carries no `esr_number` claim"
        );
        let status = Status::from(anonymous.employee_for_membership().unwrap_err());
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            status.message(),
            "this edit needs team membership, which cannot be checked: the token carries no `esr_number` claim"
        );
        let status = Status::from(
            anonymous
                .employee_for_edit("the caller to be its submitter")
                .unwrap_err(),
        );
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            status.message(),
            "this edit needs the caller to be its submitter, which cannot be checked: the token carries no `esr_number` claim"
        );
        // Unconfigured, the default claim is named.
        assert!(
            ctx(&["BAS"])
                .employee()
                .unwrap_err()
                .to_string()
                .contains("no `employee_number` claim")
        );

        let person = AccessContext {
            employee: Some(EmployeeNumber::parse("12345678").unwrap()),
            ..anonymous
        };
        assert_eq!(person.employee().unwrap().as_str(), "12345678");
        assert_eq!(
            person.employee_for_membership().unwrap().as_str(),
            "12345678"
        );
    }

    #[test]
    fn site_scope_reads_the_claim() {
        assert!(ctx(&["*"]).sites.is_trust_wide());
        let s = ctx(&["BAS", "SOU"]).sites;
        assert!(s.holds(&SiteCode::parse("SOU").unwrap()));
        assert!(!s.holds(&SiteCode::parse("BRM").unwrap()));
        assert_eq!(s.sql_filter().unwrap(), ["BAS", "SOU"]);
        assert!(SiteScope::from_claim(&["bas".into()]).is_err());
    }
}
