//! The demo trust's workforce, as an ESR extract would give it, loaded through the HR sync
//! (`SyncStaff`, the client stream `qi hr import` uses). Names are generated; a few people
//! have a second assignment, and a few are leavers.

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};
use qi_platform::convert::{date, timestamp};
use qi_proto::training as pb;

use super::rng::{Rng, person};
use super::{AS_OF, Api, call, day, failed};
use crate::seed::SITES;

/// Rows per `SyncStaff` message, as `qi hr import` sends them.
const BATCH: usize = 1_000;

/// Each site's share of the workforce, in thousandths.
const SITE_SHARE: [u32; 3] = [373, 327, 300];

/// Job roles with their pay band.
type Roles = &'static [(&'static str, &'static str)];

/// Staff groups (national codes) with their share, a job role and a pay band for each.
const GROUPS: [(&str, u32, Roles); 8] = [
    (
        "03",
        30,
        &[
            ("Staff Nurse", "Band 5"),
            ("Senior Staff Nurse", "Band 6"),
            ("Ward Sister", "Band 7"),
            ("Matron", "Band 8a"),
        ],
    ),
    (
        "07",
        20,
        &[
            ("Healthcare Assistant", "Band 2"),
            ("Senior Healthcare Assistant", "Band 3"),
            ("Nursing Associate", "Band 4"),
        ],
    ),
    (
        "08",
        20,
        &[
            ("Ward Clerk", "Band 2"),
            ("Medical Secretary", "Band 3"),
            ("Service Manager", "Band 8a"),
            ("Data Analyst", "Band 6"),
        ],
    ),
    (
        "01",
        12,
        &[
            ("Consultant", "Consultant"),
            ("Specialty Doctor", "Specialty Doctor"),
            ("Registrar", "Specialty Registrar"),
            ("Foundation Doctor", "Foundation Year 2"),
        ],
    ),
    (
        "04",
        8,
        &[
            ("Physiotherapist", "Band 6"),
            ("Occupational Therapist", "Band 6"),
            ("Dietitian", "Band 5"),
            ("Speech and Language Therapist", "Band 7"),
        ],
    ),
    (
        "09",
        6,
        &[("Porter", "Band 2"), ("Domestic Assistant", "Band 2")],
    ),
    (
        "05",
        3,
        &[("Pharmacist", "Band 7"), ("Pharmacy Technician", "Band 5")],
    ),
    ("06", 1, &[("Biomedical Scientist", "Band 6")]),
];

/// One generated member of staff.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    /// The ESR employee number.
    pub(crate) employee: String,
    /// Their site code.
    pub(crate) site: &'static str,
    pub(crate) forename: &'static str,
    pub(crate) surname: &'static str,
    /// Still employed (leavers are in the extract, deactivated).
    pub(crate) active: bool,
    hire: NaiveDate,
    group: &'static str,
    role: &'static str,
    band: &'static str,
    second_assignment: bool,
}

impl Person {
    /// The training service's name for them.
    pub(crate) fn name(&self) -> String {
        format!("sites/{}/staff/{}", self.site, self.employee)
    }

    /// "Forename Surname".
    pub(crate) fn display(&self) -> String {
        format!("{} {}", self.forename, self.surname)
    }
}

/// The whole workforce, and per site a fixed shuffle of the people still employed, from
/// which learners and project teams are drawn.
#[derive(Debug, Clone)]
pub(crate) struct Workforce {
    pub(crate) people: Vec<Person>,
    pools: BTreeMap<&'static str, Vec<usize>>,
}

impl Workforce {
    /// The `k`-th person of `site`'s pool (wrapping round).
    pub(crate) fn at(&self, site: &str, k: usize) -> &Person {
        let pool = &self.pools[site];
        &self.people[pool[k % pool.len()]]
    }
}

/// Generates a workforce of `total` people.
pub(crate) fn workforce(total: u32) -> Workforce {
    let mut people = Vec::with_capacity(total as usize);
    let mut pools: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
    let mut next = 0u32;
    for (s, (site, _)) in SITES.iter().enumerate() {
        let n = if s + 1 == SITES.len() {
            total - next
        } else {
            total * SITE_SHARE[s] / 1000
        };
        for i in next..next + n {
            let mut r = Rng::of("staff", u64::from(i));
            let (forename, surname) = person(&mut r);
            let (group, _, roles) = GROUPS[pick_group(&mut r)];
            let (role, band) = *r.pick(roles);
            // One in fifty has left; the rest are employed.
            let active = !r.chance(0.02);
            let hire = day(1995, 1, 1) + chrono::Days::new(r.below(9_000));
            let idx = people.len();
            if active {
                pools.entry(site).or_default().push(idx);
            }
            people.push(Person {
                employee: format!("{}", 20_000_001 + i),
                site,
                forename,
                surname,
                active,
                hire,
                group,
                role,
                band,
                second_assignment: r.chance(0.04),
            });
        }
        next += n;
    }
    for (s, pool) in pools.values_mut().enumerate() {
        Rng::of("pool", s as u64).shuffle(pool);
    }
    Workforce { people, pools }
}

fn pick_group(r: &mut Rng) -> usize {
    let weighted: Vec<(usize, u32)> = GROUPS.iter().enumerate().map(|(i, g)| (i, g.1)).collect();
    *r.weighted(&weighted)
}

/// The ESR rows of a person: the primary assignment, and a second one for a few.
fn rows(p: &Person) -> Vec<pb::EsrRow> {
    let site_name = SITES
        .iter()
        .find(|(c, _)| *c == p.site)
        .map_or("", |(_, n)| *n);
    let leave = (!p.active).then(|| AS_OF - Months::new(2));
    let primary = pb::EsrRow {
        employee_number: p.employee.clone(),
        assignment_number: p.employee.clone(),
        primary_assignment: true,
        forename: p.forename.into(),
        surname: p.surname.into(),
        work_email: format!(
            "{}.{}{}@demo-trust.invalid",
            p.forename.to_lowercase(),
            p.surname.to_lowercase(),
            &p.employee[5..]
        ),
        staff_group: p.group.into(),
        job_role: p.role.into(),
        position_title: p.role.into(),
        pay_band: p.band.into(),
        organisation: format!("{site_name} {}", p.role),
        site: p.site.into(),
        assignment_status: if p.active {
            "Active Assignment".into()
        } else {
            "Terminate Assignment".into()
        },
        person_type: if p.active { "Employee" } else { "Ex-employee" }.into(),
        hire_date: Some(date(p.hire)),
        assignment_start_date: Some(date(p.hire)),
        termination_date: leave.map(date),
        ..Default::default()
    };
    let mut out = vec![primary.clone()];
    if p.second_assignment && p.active {
        out.push(pb::EsrRow {
            assignment_number: format!("{}-02", p.employee),
            primary_assignment: false,
            job_role: "Bank".into(),
            position_title: format!("Bank {}", p.role),
            ..primary
        });
    }
    out
}

/// Streams the workforce to `SyncStaff` as one delta extract, dated [`AS_OF`] so that
/// sending it again changes nothing.
pub(crate) async fn sync(api: &Api, staff: &Workforce) -> anyhow::Result<pb::SyncStaffResponse> {
    let all: Vec<pb::EsrRow> = staff.people.iter().flat_map(rows).collect();
    let extract_time = AS_OF.and_hms_opt(6, 0, 0).map(|t| timestamp(t.and_utc()));
    let mut messages = vec![pb::SyncStaffRequest {
        mode: pb::SyncMode::Delta as i32,
        extract_id: "demo-esr-extract".into(),
        extract_time,
        rows: Vec::new(),
        complete: false,
    }];
    for chunk in all.chunks(BATCH) {
        messages.push(pb::SyncStaffRequest {
            rows: chunk.to_vec(),
            ..Default::default()
        });
    }
    if let Some(last) = messages.last_mut() {
        last.complete = true;
    }
    let resp = call(|| {
        let mut c = api.training.clone();
        let m = messages.clone();
        async move { c.sync_staff(tokio_stream::iter(m)).await }
    })
    .await
    .map_err(|s| failed(s, "syncing the demo staff"))?;
    if let Some(r) = resp.rejected.first() {
        anyhow::bail!(
            "the HR sync refused {} demo rows, e.g. row {} ({}): {} {}",
            resp.rejected.len(),
            r.row_number,
            r.employee_number,
            r.field,
            r.reason
        );
    }
    Ok(resp)
}
