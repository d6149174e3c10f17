//! Access policies read from the compiled contracts: every method of every `qi.*` service
//! carries a `(qi.common.v1.access)` option, resolved here once at startup into a table the
//! gateway consults per call. A method without a usable policy is kept in the table as
//! refused, so it fails closed rather than falling through.

use std::collections::HashMap;

use prost_reflect::{DescriptorPool, Kind, MethodDescriptor, Value};

/// Whether a call reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads only.
    Read,
    /// Changes state (also the reading of an unspecified mode).
    Write,
}

/// A method's resolved policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Roles allowed (any one); `admin` is always allowed.
    pub roles: Vec<String>,
    /// The field numbers leading to the resource name or parent, outermost first; empty
    /// when the request names no site.
    pub resource_path: Vec<u32>,
    /// The dotted field path, for messages.
    pub resource_field: String,
    /// Read or write.
    pub mode: Mode,
    /// Only trust-wide callers.
    pub trust_wide_only: bool,
    /// The resource is shared with sites its name does not carry (a project's participating
    /// sites): a caller of another site is let through, and the service checks the sites.
    pub shared_across_sites: bool,
}

/// What the gateway knows of one method.
#[derive(Debug, Clone)]
pub struct Method {
    /// `/package.Service/Method`.
    pub path: String,
    /// `package.Service`.
    pub service: String,
    /// The policy, or why the method has none (then it is refused).
    pub policy: Result<Policy, String>,
    /// Whether the client streams.
    pub client_streaming: bool,
    /// Whether the server streams.
    pub server_streaming: bool,
    /// The request's message type, whose repeated fields are bounded in the contract.
    pub input: RequestType,
}

/// A request message type, as `qi_proto::limits::check_request` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestType {
    /// `qi.metrics.v1`.
    pub package: String,
    /// `BatchCreateMeasurementsRequest`.
    pub name: String,
}

impl RequestType {
    /// Refuses `message` (of this type) if a repeated field holds more than its bound:
    /// counted on the wire, so the gateway never decodes it and the service is never sent it.
    pub(crate) fn check_bounds(&self, message: &[u8]) -> Result<(), tonic::Status> {
        qi_proto::limits::check_request(&self.package, &self.name, message)
            .map_err(tonic::Status::from)
    }
}

/// Every method of every `qi.` service in `pool`, by path.
pub fn load(pool: &DescriptorPool) -> HashMap<String, Method> {
    let ext = pool.get_extension_by_name("qi.common.v1.access");
    pool.services()
        .filter(|s| s.full_name().starts_with("qi."))
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .map(|m| {
            let path = format!("/{}/{}", m.parent_service().full_name(), m.name());
            let policy = match &ext {
                Some(ext) => resolve(&m, ext),
                None => Err("the contracts lack the qi.common.v1.access option".into()),
            };
            let method = Method {
                path: path.clone(),
                service: m.parent_service().full_name().to_owned(),
                policy,
                client_streaming: m.is_client_streaming(),
                server_streaming: m.is_server_streaming(),
                input: RequestType {
                    package: m.input().package_name().to_owned(),
                    name: m.input().name().to_owned(),
                },
            };
            (path, method)
        })
        .collect()
}

fn resolve(
    m: &MethodDescriptor,
    ext: &prost_reflect::ExtensionDescriptor,
) -> Result<Policy, String> {
    let options = m.options();
    if !options.has_extension(ext) {
        return Err("no access policy".into());
    }
    let value = options.get_extension(ext);
    let Value::Message(policy) = value.as_ref() else {
        return Err("the access option is not a message".into());
    };
    let roles = match policy.get_field_by_name("roles").as_deref() {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let text = |name: &str| {
        policy
            .get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let resource_field = text("resource_field");
    let mode = match policy
        .get_field_by_name("mode")
        .and_then(|v| v.as_enum_number())
    {
        Some(1) => Mode::Read,
        _ => Mode::Write,
    };
    let flag = |name: &str| {
        policy
            .get_field_by_name(name)
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    };
    let trust_wide_only = flag("trust_wide_only");
    let shared_across_sites = flag("shared_across_sites");
    let resource_path = field_path(m, &resource_field)?;
    if mode == Mode::Write && resource_path.is_empty() && !trust_wide_only {
        return Err(
            "a write must name its resource field or be trust_wide_only (no implicit scope)".into(),
        );
    }
    if shared_across_sites && resource_path.is_empty() {
        return Err("shared_across_sites needs the resource field it applies to".into());
    }
    Ok(Policy {
        roles,
        resource_path,
        resource_field,
        mode,
        trust_wide_only,
        shared_across_sites,
    })
}

/// Resolves a dotted field path of the method's input to field numbers, checking each
/// step exists, is singular, and that the last is a string.
fn field_path(m: &MethodDescriptor, dotted: &str) -> Result<Vec<u32>, String> {
    if dotted.is_empty() {
        return Ok(Vec::new());
    }
    let mut message = m.input();
    let mut numbers = Vec::new();
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let field = message
            .get_field_by_name(part)
            .ok_or_else(|| format!("resource_field `{dotted}`: no field `{part}`"))?;
        if field.is_list() || field.is_map() {
            return Err(format!("resource_field `{dotted}`: `{part}` is repeated"));
        }
        numbers.push(field.number());
        let last = i + 1 == parts.len();
        match (field.kind(), last) {
            (Kind::String, true) => {}
            (Kind::Message(inner), false) => message = inner,
            _ => {
                return Err(format!(
                    "resource_field `{dotted}`: `{part}` has the wrong type"
                ));
            }
        }
    }
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn methods() -> HashMap<String, Method> {
        let pool = DescriptorPool::decode(qi_proto::FILE_DESCRIPTOR_SET).unwrap();
        load(&pool)
    }

    #[test]
    fn every_method_of_every_service_has_a_usable_access_policy() {
        let methods = methods();
        assert!(methods.len() >= 12, "found only {} methods", methods.len());
        let missing: Vec<String> = methods
            .values()
            .filter_map(|m| m.policy.as_ref().err().map(|e| format!("{}: {e}", m.path)))
            .collect();
        assert!(
            missing.is_empty(),
            "methods without a usable policy: {missing:#?}"
        );
    }

    #[test]
    fn policies_are_read_from_the_contract() {
        let methods = methods();
        let m = &methods["/qi.training.v1.TrainingService/CreateCohort"];
        let p = m.policy.as_ref().unwrap();
        assert_eq!(p.roles, ["improvement_team"]);
        assert_eq!(p.resource_path, [1]);
        assert_eq!(p.mode, Mode::Write);
        let p = methods["/qi.projects.v1.ProjectService/CreateSite"]
            .policy
            .clone()
            .unwrap();
        assert!(p.trust_wide_only);
        assert!(p.roles.is_empty());
        assert!(!p.shared_across_sites);
        let p = methods["/qi.projects.v1.ProjectService/UpdateProject"]
            .policy
            .clone()
            .unwrap();
        assert!(p.shared_across_sites);
    }

    #[test]
    fn every_service_of_the_suite_is_covered() {
        let methods = methods();
        for service in [
            "qi.training.v1.TrainingService",
            "qi.projects.v1.ProjectService",
            "qi.metrics.v1.MetricService",
        ] {
            assert!(methods.values().any(|m| m.service == service), "{service}");
        }
    }
}
