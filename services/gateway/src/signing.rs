//! Access contexts signed recently, kept as header values ready to forward: a dashboard
//! calling one method thousands of times needs one signature and one header value, not one
//! per call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use qi_platform::access::AccessSigner;
use qi_platform::{AccessContext, Error, SiteScope};
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};

/// The gateway's cache of signed contexts.
#[derive(Default)]
pub(crate) struct SignedContexts {
    cache: Mutex<Cache>,
}

/// The contexts, keyed by method, then subject; the roles and sites must match too.
#[derive(Default)]
struct Cache {
    by_method: HashMap<String, HashMap<String, Vec<SignedContext>>>,
    len: usize,
}

struct SignedContext {
    roles: Vec<String>,
    sites: SiteScope,
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
        let fresh = |c: &&SignedContext| {
            c.roles == ctx.roles
                && c.sites == ctx.sites
                && now.duration_since(c.signed_at) < CONTEXT_REUSE
        };
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
            entries.retain(|c| !(c.roles == ctx.roles && c.sites == ctx.sites));
            entries.push(SignedContext {
                roles: ctx.roles.clone(),
                sites: ctx.sites.clone(),
                value: value.clone(),
                signed_at: now,
            });
            // Counts insertions (a refresh too): a bound, not an exact size.
            cache.len += 1;
        }
        Ok(value)
    }
}
