//! Bounds on what a request decodes to, checked on its encoded bytes before it is decoded.
//!
//! A decoded message costs far more than its encoding: an empty element of a repeated
//! message field is two bytes on the wire and a whole struct in memory (2,090,000 of them in
//! a 4 MB `BatchCreateMeasurements` grew a service by 600 MB before its handler could refuse
//! them). So every repeated field reachable from a request declares its most elements in the
//! contract (`(qi.common.v1.max_items)`), and [`check_request`] counts them on the wire,
//! without allocating, before prost decodes anything: in the services' codec
//! ([`BoundedCodec`], which the generated servers use) and in the gateway's scan.
//! Everything else a request decodes to is at most its encoded size (strings, bytes,
//! scalars), so the bounds, with the message-size limit, bound the whole.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::LazyLock;

use prost::Message;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
use prost_reflect::{Cardinality, DescriptorPool, Kind, MessageDescriptor};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt as _};

/// The ErrorInfo domain of every QI error (the services' `qi_platform::error::DOMAIN`).
pub const ERROR_DOMAIN: &str = "qi";

/// Bounds of repeated fields in types we import, which cannot carry our option. A field
/// mask names fields of one resource, none of which has more than a few dozen.
const FOREIGN: &[(&str, u32)] = &[("google.protobuf.FieldMask.paths", 100)];

/// Nesting beyond which prost refuses a message (its recursion limit), so the scan need
/// not look deeper.
const MAX_DEPTH: u32 = 100;

/// A repeated field holding more elements than its bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooMany {
    /// The field's path in the request, e.g. `measurements` or `project.wards`.
    pub field: String,
    /// Its bound.
    pub max: u32,
}

impl std::fmt::Display for TooMany {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid request: {}: holds more than {max} entries: send at most {max} in one message",
            self.field,
            max = self.max
        )
    }
}

impl From<TooMany> for Status {
    /// INVALID_ARGUMENT with the services' details (`BadRequest` naming the field, and
    /// `ErrorInfo` `INVALID_FIELDS`), so a refusal reads the same from the gateway and from
    /// a service.
    fn from(e: TooMany) -> Status {
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation(&e.field, format!("at most {} entries", e.max));
        details.set_error_info(
            "INVALID_FIELDS",
            ERROR_DOMAIN,
            HashMap::from([("fields".to_owned(), e.field.clone())]),
        );
        Status::with_error_details(tonic::Code::InvalidArgument, e.to_string(), details)
    }
}

/// Checks the encoded request `bytes` of the message type `package.Name` against the
/// bounds of its repeated fields. A type that is no method's request passes unchecked (a
/// client decoding a response); so do malformed bytes, which prost then refuses itself
/// (having allocated no more than the bounds allow before reaching the fault).
pub fn check_request(package: &str, name: &str, bytes: &[u8]) -> Result<(), TooMany> {
    let limits = &*LIMITS;
    match limits.requests.get(package).and_then(|m| m.get(name)) {
        Some(&plan) => limits.scan(plan, bytes, &mut Counts::default(), &mut Vec::new(), 0),
        None => Ok(()),
    }
}

/// The bound of every repeated field reachable from a request, by message and field
/// (`qi.metrics.v1.BatchCreateMeasurementsRequest.measurements`); `None` marks one without
/// a declared bound, which accepts no element. For the test that every field has one.
pub fn declared() -> Vec<(String, Option<u32>)> {
    let mut out: Vec<_> = LIMITS
        .plans
        .iter()
        .flat_map(|p| {
            p.fields
                .iter()
                .filter(|f| f.repeated)
                .map(|f| (format!("{}.{}", p.name, f.name), f.declared))
        })
        .collect();
    out.sort();
    out
}

static LIMITS: LazyLock<Limits> = LazyLock::new(|| {
    // The descriptor set is compiled into this crate: it always decodes.
    let pool = DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET).unwrap_or_else(|e| {
        panic!("the compiled descriptor set does not decode: {e}");
    });
    Limits::new(&pool)
});

/// The scan plans of every message reachable from a request.
struct Limits {
    plans: Vec<Plan>,
    /// Method request types (package, then name) to their plan.
    requests: HashMap<String, HashMap<String, usize>>,
}

/// What the scan needs of one message: only the fields that are repeated or can hold a
/// repeated field, directly or deeper; the others are skipped.
struct Plan {
    name: String,
    fields: Vec<FieldPlan>,
}

struct FieldPlan {
    number: u32,
    name: String,
    repeated: bool,
    /// The declared bound (a repeated field without one accepts none).
    declared: Option<u32>,
    elem: Elem,
}

#[derive(Clone, Copy)]
enum Elem {
    /// A message, scanned by the plan at this index.
    Message(usize),
    /// A message that holds no repeated field: counted, not scanned.
    Opaque,
    /// A string or bytes.
    Delimited,
    /// A scalar packed in `n`-byte units (fixed32/float 4, fixed64/double 8) or, when 0,
    /// varints; sent unpacked it has this wire type.
    Scalar(usize, WireType),
}

/// Elements counted so far in one message (with what merged singular fields hold).
#[derive(Default)]
struct Counts {
    items: HashMap<u32, u64>,
    merged: HashMap<u32, Counts>,
}

/// A step of the path to the field being scanned, for naming it.
struct Step<'a> {
    name: &'a str,
    index: Option<u64>,
}

impl Limits {
    fn new(pool: &DescriptorPool) -> Limits {
        let option = pool.get_extension_by_name("qi.common.v1.max_items");
        let mut limits = Limits {
            plans: Vec::new(),
            requests: HashMap::new(),
        };
        let mut index = HashMap::new();
        for method in pool
            .services()
            .filter(|s| s.full_name().starts_with("qi."))
            .flat_map(|s| s.methods().collect::<Vec<_>>())
        {
            let input = method.input();
            let plan = limits.plan(&input, option.as_ref(), &mut index);
            limits
                .requests
                .entry(input.package_name().to_owned())
                .or_default()
                .insert(input.name().to_owned(), plan);
        }
        limits.prune();
        limits
    }

    /// The plan of `message`, built once (recursive types included).
    fn plan(
        &mut self,
        message: &MessageDescriptor,
        option: Option<&prost_reflect::ExtensionDescriptor>,
        index: &mut HashMap<String, usize>,
    ) -> usize {
        if let Some(&i) = index.get(message.full_name()) {
            return i;
        }
        let at = self.plans.len();
        index.insert(message.full_name().to_owned(), at);
        self.plans.push(Plan {
            name: message.full_name().to_owned(),
            fields: Vec::new(),
        });
        let mut fields = Vec::new();
        for field in message.fields() {
            let repeated = field.cardinality() == Cardinality::Repeated;
            let elem = match field.kind() {
                Kind::Message(inner) => Elem::Message(self.plan(&inner, option, index)),
                Kind::String | Kind::Bytes => Elem::Delimited,
                Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => {
                    Elem::Scalar(8, WireType::SixtyFourBit)
                }
                Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => {
                    Elem::Scalar(4, WireType::ThirtyTwoBit)
                }
                Kind::Int32
                | Kind::Int64
                | Kind::Uint32
                | Kind::Uint64
                | Kind::Sint32
                | Kind::Sint64
                | Kind::Bool
                | Kind::Enum(_) => Elem::Scalar(0, WireType::Varint),
            };
            if !repeated && !matches!(elem, Elem::Message(_)) {
                continue;
            }
            let full = format!("{}.{}", message.full_name(), field.name());
            let declared = option
                .filter(|o| field.options().has_extension(o))
                .and_then(|o| field.options().get_extension(o).as_u32())
                .or_else(|| FOREIGN.iter().find(|(f, _)| *f == full).map(|(_, n)| *n));
            fields.push(FieldPlan {
                number: field.number(),
                name: field.name().to_owned(),
                repeated,
                declared,
                elem,
            });
        }
        self.plans[at].fields = fields;
        at
    }

    /// Marks messages without repeated fields (at any depth) opaque and drops the singular
    /// fields leading only to them, so the scan skips them at the cost of a length read.
    fn prune(&mut self) {
        let n = self.plans.len();
        let mut holds = vec![false; n];
        // A fixed point: a message holds a repeated field if one of its own is repeated or
        // one of its messages holds one.
        loop {
            let mut changed = false;
            for i in 0..n {
                if holds[i] {
                    continue;
                }
                let h = self.plans[i]
                    .fields
                    .iter()
                    .any(|f| f.repeated || matches!(f.elem, Elem::Message(j) if j < n && holds[j]));
                if h {
                    holds[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        for plan in &mut self.plans {
            for f in &mut plan.fields {
                if let Elem::Message(j) = f.elem
                    && j < n
                    && !holds[j]
                {
                    f.elem = Elem::Opaque;
                }
            }
            plan.fields
                .retain(|f| f.repeated || matches!(f.elem, Elem::Message(_)));
        }
    }

    /// Counts the repeated fields of one message (of plan `plan`) in `buf` into `counts`.
    fn scan<'a>(
        &'a self,
        plan: usize,
        mut buf: &[u8],
        counts: &mut Counts,
        path: &mut Vec<Step<'a>>,
        depth: u32,
    ) -> Result<(), TooMany> {
        let Some(plan) = self.plans.get(plan) else {
            return Ok(());
        };
        while !buf.is_empty() {
            let Ok((number, wire_type)) = decode_key(&mut buf) else {
                return Ok(());
            };
            let Some(field) = plan.fields.iter().find(|f| f.number == number) else {
                if skip_field(wire_type, number, &mut buf, DecodeContext::default()).is_err() {
                    return Ok(());
                }
                continue;
            };
            let value = if wire_type == WireType::LengthDelimited {
                let Ok(len) = decode_varint(&mut buf) else {
                    return Ok(());
                };
                let Some(len) = usize::try_from(len).ok().filter(|l| *l <= buf.len()) else {
                    return Ok(());
                };
                let (value, rest) = buf.split_at(len);
                buf = rest;
                Some(value)
            } else {
                if skip_field(wire_type, number, &mut buf, DecodeContext::default()).is_err() {
                    return Ok(());
                }
                None
            };
            if field.repeated {
                // Elements sent with the wrong wire type are refused by prost unread.
                let n = match (field.elem, value) {
                    (Elem::Scalar(0, _), Some(v)) => {
                        v.iter().filter(|b| **b & 0x80 == 0).count() as u64
                    }
                    (Elem::Scalar(width, _), Some(v)) => v.len().div_ceil(width) as u64,
                    (Elem::Scalar(_, unpacked), None) if unpacked == wire_type => 1,
                    (Elem::Message(_) | Elem::Opaque | Elem::Delimited, Some(_)) => 1,
                    _ => 0,
                };
                let count = counts.items.entry(number).or_default();
                *count += n;
                let count = *count;
                let max = field.declared.unwrap_or(0);
                if count > u64::from(max) {
                    return Err(TooMany {
                        field: field_path(path, &field.name),
                        max,
                    });
                }
                if let (Elem::Message(inner), Some(v)) = (field.elem, value)
                    && depth < MAX_DEPTH
                {
                    // Each element is a message of its own.
                    path.push(Step {
                        name: &field.name,
                        index: Some(count.saturating_sub(1)),
                    });
                    self.scan(inner, v, &mut Counts::default(), path, depth + 1)?;
                    path.pop();
                }
            } else if let (Elem::Message(inner), Some(v)) = (field.elem, value)
                && depth < MAX_DEPTH
            {
                // Occurrences of a singular message merge when decoded: count them together.
                let merged = counts.merged.entry(number).or_default();
                path.push(Step {
                    name: &field.name,
                    index: None,
                });
                self.scan(inner, v, merged, path, depth + 1)?;
                path.pop();
            }
        }
        Ok(())
    }
}

fn field_path(path: &[Step<'_>], name: &str) -> String {
    let mut out = String::new();
    for step in path {
        out.push_str(step.name);
        if let Some(i) = step.index {
            out.push_str(&format!("[{i}]"));
        }
        out.push('.');
    }
    out.push_str(name);
    out
}

/// The generated clients' and servers' codec: prost's, with a request's repeated fields
/// counted against their bounds before it is decoded ([`check_request`]).
#[derive(Debug, Clone)]
pub struct BoundedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        BoundedCodec(PhantomData)
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + prost::Name + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder(ProstDecoder::default())
    }
}

/// Decodes `U` once its bounds hold.
#[derive(Debug, Clone)]
pub struct BoundedDecoder<U>(ProstDecoder<U>);

impl<U> Decoder for BoundedDecoder<U>
where
    U: Message + Default + prost::Name,
{
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use bytes::Buf as _;
        // tonic hands over one whole message in one contiguous buffer.
        if buf.chunk().len() == buf.remaining() {
            check_request(U::PACKAGE, U::NAME, buf.chunk())?;
        } else {
            let whole = buf.copy_to_bytes(buf.remaining());
            check_request(U::PACKAGE, U::NAME, &whole)?;
            return U::decode(whole).map(Some).map_err(|e| not_a_message(&e));
        }
        U::decode(buf).map(Some).map_err(|e| not_a_message(&e))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// Bytes that are not the method's request are the caller's fault (tonic's own decoder says
/// INTERNAL): INVALID_ARGUMENT naming the request, as any other bad input.
fn not_a_message(e: &prost::DecodeError) -> Status {
    Status::invalid_argument(format!("request: not a valid message ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{metrics, projects, training};
    use prost::Name as _;

    fn check<M: prost::Name + Message>(m: &M) -> Result<(), TooMany> {
        check_request(M::PACKAGE, M::NAME, &m.encode_to_vec())
    }

    fn empties(parent: &str, n: usize) -> Vec<u8> {
        let mut bytes = metrics::BatchCreateMeasurementsRequest {
            parent: parent.into(),
            ..Default::default()
        }
        .encode_to_vec();
        for _ in 0..n {
            bytes.extend_from_slice(&[0x12, 0x00]);
        }
        bytes
    }

    #[test]
    fn every_repeated_field_a_request_can_hold_declares_its_bound() {
        let missing: Vec<_> = declared()
            .into_iter()
            .filter(|(_, max)| max.is_none())
            .map(|(field, _)| field)
            .collect();
        assert!(
            missing.is_empty(),
            "no (qi.common.v1.max_items): {missing:?}"
        );
        assert!(declared().contains(&(
            "qi.metrics.v1.BatchCreateMeasurementsRequest.measurements".into(),
            Some(10_000)
        )));
    }

    #[test]
    fn the_issue_shape_is_refused_before_decoding_and_names_the_field() {
        let name = metrics::BatchCreateMeasurementsRequest::NAME;
        let ok = empties("sites/BAS/metrics/los", 10_000);
        assert_eq!(check_request("qi.metrics.v1", name, &ok), Ok(()));
        let hostile = empties("sites/BAS/metrics/los", 2_090_000);
        let err = check_request("qi.metrics.v1", name, &hostile).unwrap_err();
        assert_eq!(
            err,
            TooMany {
                field: "measurements".into(),
                max: 10_000
            }
        );
        let status = Status::from(err);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations[0].field, "measurements");
    }

    #[test]
    fn packed_and_unpacked_scalars_are_counted_alike() {
        let packed = metrics::ComputeSpcRequest {
            values: vec![1.0; 20_001],
            ..Default::default()
        };
        assert_eq!(check(&packed).unwrap_err().field, "values");
        // The same values sent unpacked, one key each.
        let mut unpacked = Vec::new();
        for _ in 0..20_001 {
            unpacked.push(0x09);
            unpacked.extend_from_slice(&1.0f64.to_le_bytes());
        }
        assert!(check_request("qi.metrics.v1", "ComputeSpcRequest", &unpacked).is_err());
        unpacked.truncate(unpacked.len() - 9);
        assert_eq!(
            check_request("qi.metrics.v1", "ComputeSpcRequest", &unpacked),
            Ok(())
        );
    }

    #[test]
    fn nested_fields_are_named_by_their_path_and_merged_occurrences_count_together() {
        let project = |wards: usize| projects::CreateProjectRequest {
            parent: "sites/BAS".into(),
            project: Some(projects::Project {
                wards: vec![String::new(); wards],
                ..Default::default()
            }),
            ..Default::default()
        };
        let max = declared()
            .into_iter()
            .find(|(f, _)| f == "qi.projects.v1.Project.wards")
            .and_then(|(_, m)| m)
            .unwrap() as usize;
        assert_eq!(check(&project(max)), Ok(()));
        assert_eq!(check(&project(max + 1)).unwrap_err().field, "project.wards");
        // Two occurrences of `project`, each within the bound, decode to one over it.
        let half = project(max / 2 + 1).encode_to_vec();
        let both = [half.clone(), half].concat();
        let decoded = projects::CreateProjectRequest::decode(both.as_slice()).unwrap();
        assert!(decoded.project.unwrap().wards.len() > max);
        assert!(check_request("qi.projects.v1", "CreateProjectRequest", &both).is_err());
    }

    #[test]
    fn the_bound_of_a_stream_applies_to_each_message() {
        let max = declared()
            .into_iter()
            .find(|(f, _)| f == "qi.training.v1.SyncStaffRequest.rows")
            .and_then(|(_, m)| m)
            .unwrap() as usize;
        let message = |n| training::SyncStaffRequest {
            rows: vec![training::EsrRow::default(); n],
            ..Default::default()
        };
        assert_eq!(check(&message(max)), Ok(()));
        assert_eq!(check(&message(max + 1)).unwrap_err().field, "rows");
    }

    #[test]
    fn responses_and_malformed_bytes_are_left_to_prost() {
        let response = metrics::ListMeasurementsResponse {
            measurements: vec![Default::default(); 20_000],
            ..Default::default()
        };
        assert_eq!(check(&response), Ok(()));
        assert_eq!(
            check_request(
                "qi.metrics.v1",
                "BatchCreateMeasurementsRequest",
                &[0x12, 0xff]
            ),
            Ok(())
        );
    }

    /// Whenever prost accepts mutated bytes, no repeated field of what it decoded holds
    /// more than the scan let through.
    #[test]
    fn the_scan_never_lets_through_more_than_prost_decodes() {
        let seed = projects::CreateProjectRequest {
            parent: "sites/BAS".into(),
            project: Some(projects::Project {
                wards: vec!["a".into(); 3],
                participating_sites: vec!["BAS".into(); 2],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec();
        let seeds = [seed.clone(), [seed.clone(), seed].concat()];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let max = |name: &str| {
            declared()
                .into_iter()
                .find(|(f, _)| f == name)
                .and_then(|(_, m)| m)
                .unwrap() as usize
        };
        let (wards, sites) = (
            max("qi.projects.v1.Project.wards"),
            max("qi.projects.v1.Project.participating_sites"),
        );
        for i in 0..20_000 {
            let mut bytes = seeds[i % seeds.len()].clone();
            for _ in 0..=next() % 3 {
                let at = (next() % (bytes.len() as u64 + 1)) as usize;
                match next() % 3 {
                    0 if at < bytes.len() => bytes[at] ^= 1 << (next() % 8),
                    1 => bytes.insert(at, next() as u8),
                    _ => {
                        // Repeats a run, which is how counts grow.
                        let end = (at + (next() % 24) as usize).min(bytes.len());
                        let run = bytes[at..end].repeat(1 + (next() % 40) as usize);
                        bytes.splice(at..at, run);
                    }
                }
            }
            let passed = check_request("qi.projects.v1", "CreateProjectRequest", &bytes).is_ok();
            if let Ok(decoded) = projects::CreateProjectRequest::decode(bytes.as_slice())
                && passed
            {
                let p = decoded.project.unwrap_or_default();
                assert!(p.wards.len() <= wards, "{bytes:02x?}");
                assert!(p.participating_sites.len() <= sites, "{bytes:02x?}");
            }
        }
    }
}
