//! The demo trust's workforce, as an ESR extract would give it: generated names, a few
//! people with a second assignment, a few leavers, and per site a fixed shuffle of those
//! still employed, from which learners and project teams are drawn. Like a real extract,
//! its rows carry no site, only ESR codes: each site's location, and an organisation (cost
//! centre) that for nurses and healthcare assistants is their ward's; the trust's ESR
//! mapping ([`esr_mappings`]) places them.

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};
use qi_platform::convert::date;
use qi_proto::training as pb;

use crate::demo::data::people::{GROUPS, SITE_SHARE};
use crate::demo::rng::{Rng, person};
use crate::demo::{AS_OF, day};
use crate::seed::{SITES, WARDS};

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
    /// Their name for life, `staff/{employee_number}` (#25).
    pub(crate) fn name(&self) -> String {
        format!("staff/{}", self.employee)
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

/// A site's ESR location code.
fn location(site: &str) -> String {
    format!("{site}-MAIN")
}

/// The ESR organisation (cost centre) code of a ward of a site.
fn ward_cost_centre(site: &str, ward: &str) -> String {
    format!("CC-{site}-{}", ward.to_uppercase())
}

/// The ESR organisation code of a site's staff who work on no one ward.
fn site_cost_centre(site: &str) -> String {
    format!("CC-{site}-CORP")
}

/// The trust's ESR mapping, by site: each site's location (no ward), its wards' cost
/// centres (their ward) and its other staff's cost centre (no ward).
pub(crate) fn esr_mappings() -> Vec<(&'static str, Vec<pb::EsrMapping>)> {
    SITES
        .iter()
        .map(|(site, name)| {
            let at = |id: String, ward: String, title: String| pb::EsrMapping {
                name: format!("sites/{site}/esrMappings/{id}"),
                ward,
                display_name: title,
                ..Default::default()
            };
            let mut all = vec![
                at(
                    format!("location.{}", location(site)),
                    String::new(),
                    (*name).to_owned(),
                ),
                at(
                    format!("organisation.{}", site_cost_centre(site)),
                    String::new(),
                    format!("{name}: corporate and clinical support"),
                ),
            ];
            all.extend(WARDS.iter().map(|ward| {
                at(
                    format!("organisation.{}", ward_cost_centre(site, ward)),
                    format!("sites/{site}/wards/{ward}"),
                    format!("{name}: {ward} ward"),
                )
            }));
            (*site, all)
        })
        .collect()
}

/// The ESR rows of a person: the primary assignment, and a second one for a few. No site:
/// their location and organisation codes, which the mapping places.
pub(crate) fn rows(p: &Person) -> Vec<pb::EsrRow> {
    // Nurses and healthcare assistants work on a ward, the same one whatever is loaded;
    // ESR's department is the ward, or the group's division.
    let (organisation, department) = if matches!(p.group, "03" | "07") {
        let n: usize = p.employee.parse().unwrap_or(0);
        let ward = WARDS[n % WARDS.len()];
        let mut title = ward.to_owned();
        title[..1].make_ascii_uppercase();
        (ward_cost_centre(p.site, ward), format!("{title} Ward"))
    } else {
        let division = match p.group {
            "01" => "Medicine",
            "04" => "Therapies",
            "05" => "Pharmacy",
            "06" => "Pathology",
            "09" => "Estates and Facilities",
            _ => "Corporate Services",
        };
        (site_cost_centre(p.site), division.to_owned())
    };
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
        organisation,
        department,
        location: location(p.site),
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
