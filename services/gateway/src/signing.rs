//! Access contexts signed recently, kept as header values ready to forward: a dashboard
//! calling one method thousands of times needs one signature and one header value, not one
//! per call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use qi_platform::access::AccessSigner;
use qi_platform::{AccessContext, EmployeeNumber, Error, SiteScope};
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};

/// The gateway's cache of signed contexts.
#[derive(Default)]
pub(crate) struct SignedContexts {
    cache: Mutex<Cache>,
}

/// The contexts, keyed by method, then subject; the roles, sites and employee number must
/// match too (one subject may come with different tokens, and a context carries them all).
#[derive(Default)]
struct Cache {
    by_method: HashMap<String, HashMap<String, Vec<SignedContext>>>,
    len: usize,
}

struct SignedContext {
    roles: Vec<String>,
    sites: SiteScope,
    employee: Option<EmployeeNumber>,
    token_expiry: Option<u64>,
    value: MetadataValue<Ascii>,
    signed_at: Instant,
}

/// How long a signed context is reused. The signer's contexts live at least 60 s beyond the
/// longest call (see `component`), so one reused at the end of this still outlives any call.
const CONTEXT_REUSE: Duration = Duration::from_secs(30);
/// The most signed contexts kept.
const CONTEXTS_MAX: usize = 10_000;

impl SignedContexts {
    /// The signed access context for `ctx` as a header value, reused while fresh (forwarded
    /// calls and the overview's sub-calls alike).
    pub(crate) fn signed(
        &self,
        signer: &AccessSigner,
        ctx: &AccessContext,
    ) -> Result<MetadataValue<Ascii>, Status> {
        let now = Instant::now();
        let fresh =
            |c: &&SignedContext| c.is_for(ctx) && now.duration_since(c.signed_at) < CONTEXT_REUSE;
        if let Ok(cache) = self.cache.lock()
            && let Some(hit) = cache
                .by_method
                .get(&ctx.method)
                .and_then(|m| m.get(&ctx.subject))
                .and_then(|v| v.iter().find(fresh))
        {
            return Ok(hit.value.clone());
        }
        let signed = signer.sign(ctx).map_err(|e| {
            Error::Internal(anyhow::Error::new(e).context("signing the access context"))
        })?;
        let value = MetadataValue::try_from(signed).map_err(|e| {
            Error::Internal(anyhow::Error::new(e).context("the signed access context as a header"))
        })?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len >= CONTEXTS_MAX {
                *cache = Cache::default();
            }
            let entries = cache
                .by_method
                .entry(ctx.method.clone())
                .or_default()
                .entry(ctx.subject.clone())
                .or_default();
            entries.retain(|c| !c.is_for(ctx));
            entries.push(SignedContext {
                roles: ctx.roles.clone(),
                sites: ctx.sites.clone(),
                employee: ctx.employee.clone(),
                token_expiry: ctx.token_expiry,
                value: value.clone(),
                signed_at: now,
            });
            // Counts insertions (a refresh too): a bound, not an exact size.
            cache.len += 1;
        }
        Ok(value)
    }
}

impl SignedContext {
    /// Whether this was signed for `ctx` (already found under its method and subject):
    /// every other field the signed form carries must be the same.
    fn is_for(&self, ctx: &AccessContext) -> bool {
        self.roles == ctx.roles
            && self.sites == ctx.sites
            && self.employee == ctx.employee
            && self.token_expiry == ctx.token_expiry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qi_platform::access::AccessVerifier;

    #[test]
    fn callers_differing_only_by_employee_number_never_share_a_context() {
        let signer = AccessSigner::new("key", Duration::from_secs(60));
        let verifier = AccessVerifier::new("key", None);
        let contexts = SignedContexts::default();
        let caller = |employee: Option<&str>| AccessContext {
            subject: "ward-7".into(),
            roles: vec!["viewer".into()],
            sites: SiteScope::TrustWide,
            method: "/qi.training.v1.TrainingService/ListCohorts".into(),
            employee: employee.map(|e| EmployeeNumber::parse(e).unwrap()),
            employee_claim: Default::default(),
            token_expiry: None,
        };
        let read = |ctx: &AccessContext| {
            let value = contexts.signed(&signer, ctx).unwrap();
            verifier
                .verify(value.to_str().unwrap(), &ctx.method)
                .unwrap()
                .employee
                .map(String::from)
        };
        // Each in turn, twice: the second round is served from the cache, and each must
        // still get its own.
        for _ in 0..2 {
            for employee in [None, Some("12345678"), Some("87654321")] {
                assert_eq!(read(&caller(employee)).as_deref(), employee);
            }
        }
        let cache = contexts.cache.lock().unwrap();
        assert_eq!(cache.len, 3, "three signatures, then three hits");
        let held = &cache.by_method[&caller(None).method]["ward-7"];
        assert_eq!(held.len(), 3);
    }
}
