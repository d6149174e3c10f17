//! The staff table as read here (the HR sync writes it): its SQL and row mapping.

use chrono::{DateTime, NaiveDate, Utc};
use qi_filter::Range;
use qi_platform::Error;
use qi_platform::convert::{date, timestamp};
use qi_platform::extract::Order;
use qi_platform::paging::Page;
use qi_proto::training as pb;
use sqlx::PgConnection;

/// A staff row as stored.
#[derive(Debug, Clone)]
pub(crate) struct StaffRow {
    pub(crate) employee_number: String,
    pub(crate) site: String,
    pub(crate) assignment_number: String,
    pub(crate) forename: String,
    pub(crate) surname: String,
    pub(crate) work_email: String,
    pub(crate) staff_group: String,
    pub(crate) job_role: String,
    pub(crate) position_title: String,
    pub(crate) pay_band: String,
    pub(crate) department: String,
    pub(crate) organisation: String,
    pub(crate) person_type: String,
    pub(crate) occupation_code: String,
    pub(crate) area_of_work: String,
    pub(crate) assignment_status: String,
    /// The ward the ESR mapping placed them on, or empty.
    pub(crate) ward: String,
    pub(crate) hire_date: Option<NaiveDate>,
    pub(crate) leave_date: Option<NaiveDate>,
    pub(crate) active: bool,
    pub(crate) source_update_time: chrono::DateTime<chrono::Utc>,
    pub(crate) create_time: chrono::DateTime<chrono::Utc>,
    pub(crate) update_time: chrono::DateTime<chrono::Utc>,
    /// The site spells, newest first, as `site|start|end`: the current one (`site`, since
    /// `site_since`, no end) then those ended (`staff_site_spell`); aggregated in SQL, like an
    /// enrolment's attendance.
    pub(crate) site_history: Vec<String>,
}

impl StaffRow {
    /// The person's one name, whatever their site.
    pub(crate) fn name(&self) -> String {
        super::name_of(&self.employee_number)
    }
}

/// A spell as aggregated by [`staff_rows!`]; a malformed one (never written) is skipped.
fn spell(s: &str) -> Option<pb::SiteSpell> {
    let mut parts = s.splitn(3, '|');
    let site = parts.next()?;
    let start = parts.next()?.parse::<NaiveDate>().ok()?;
    let end = match parts.next()? {
        "" => None,
        end => Some(end.parse::<NaiveDate>().ok()?),
    };
    Some(pb::SiteSpell {
        site: format!("sites/{site}"),
        start_date: Some(date(start)),
        end_date: end.map(date),
    })
}

impl From<StaffRow> for pb::Staff {
    fn from(r: StaffRow) -> Self {
        pb::Staff {
            name: super::name_of(&r.employee_number),
            employee_number: r.employee_number,
            assignment_number: r.assignment_number,
            forename: r.forename,
            surname: r.surname,
            work_email: r.work_email,
            staff_group: r.staff_group,
            job_role: r.job_role,
            position_title: r.position_title,
            pay_band: r.pay_band,
            department: r.department,
            organisation: r.organisation,
            person_type: r.person_type,
            hire_date: r.hire_date.map(date),
            leave_date: r.leave_date.map(date),
            active: r.active,
            source_update_time: Some(timestamp(r.source_update_time)),
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
            site: format!("sites/{}", r.site),
            site_history: r.site_history.iter().filter_map(|s| spell(s)).collect(),
            occupation_code: r.occupation_code,
            area_of_work: r.area_of_work,
            assignment_status: r.assignment_status,
            ward: r.ward,
        }
    }
}

/// `query_as!` into [`StaffRow`] of a person's columns from `staff` then `$tail`: the columns
/// are written once, and every statement is still checked at build time.
macro_rules! staff_rows {
    ($tail:literal, $($arg:expr),+ $(,)?) => {
        sqlx::query_as!(
            StaffRow,
            r#"SELECT employee_number, site, assignment_number, forename, surname, work_email,
                    staff_group, job_role, position_title, pay_band, department, organisation,
                    person_type, occupation_code, area_of_work, assignment_status, ward,
                    hire_date, leave_date, active, source_update_time, create_time, update_time,
                    ARRAY[site || '|' || to_char(site_since, 'YYYY-MM-DD') || '|']
                    || coalesce((SELECT array_agg(h.site || '|' || to_char(h.start_date, 'YYYY-MM-DD')
                                                  || '|' || to_char(h.end_date, 'YYYY-MM-DD')
                                                  ORDER BY h.id DESC)
                                 FROM staff_site_spell h
                                 WHERE h.employee_number = staff.employee_number),
                                '{}') AS "site_history!"
             FROM staff "#
                + $tail,
            $($arg),+
        )
    };
}

/// One person by employee number, if at one of `sites` (`None`: any site).
pub(super) async fn get(
    conn: &mut PgConnection,
    number: &str,
    sites: Option<Vec<String>>,
) -> Result<Option<StaffRow>, Error> {
    Ok(staff_rows!(
        "WHERE employee_number = $1 AND ($2::text[] IS NULL OR site = ANY($2))",
        number,
        sites.as_deref(),
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// Which staff a page lists.
#[derive(Debug, Default)]
pub(super) struct Wanted {
    /// Whose current site is one of these (`None`: every site).
    pub(super) sites: Option<Vec<String>>,
    /// Those who have left too.
    pub(super) show_inactive: bool,
    /// Last changed in this range (a nightly extract's).
    pub(super) updated: Range<DateTime<Utc>>,
}

/// One page of the staff `wanted`, by surname, forename and number.
pub(super) async fn list(
    conn: &mut PgConnection,
    wanted: &Wanted,
    page: &Page,
) -> Result<(Vec<pb::Staff>, String), Error> {
    let rows = staff_rows!(
        "WHERE ($1::text[] IS NULL OR site = ANY($1))
           AND ($2 OR active)
           AND (surname, forename, employee_number) > ($3, $4, $5)
           AND ($7::timestamptz IS NULL OR update_time >= $7)
           AND ($8::timestamptz IS NULL OR update_time < $8)
         ORDER BY surname, forename, employee_number
         LIMIT $6",
        wanted.sites.as_deref(),
        wanted.show_inactive,
        page.after_key(0).unwrap_or(""),
        page.after_key(1).unwrap_or(""),
        page.after_key(2).unwrap_or(""),
        page.limit(),
        wanted.updated.from,
        wanted.updated.before,
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| {
        vec![
            r.surname.clone(),
            r.forename.clone(),
            r.employee_number.clone(),
        ]
    });
    Ok((rows.into_iter().map(Into::into).collect(), next))
}

/// One page of the staff `wanted`, oldest change first (ties by number), after the row
/// changed at `after` with that number: a national register is read a page at a time along
/// its `(update_time, employee_number)` index.
pub(super) async fn list_by_change(
    conn: &mut PgConnection,
    wanted: &Wanted,
    after: (Option<DateTime<Utc>>, Option<&str>),
    page: &Page,
) -> Result<(Vec<pb::Staff>, String), Error> {
    let rows = staff_rows!(
        "WHERE ($1::text[] IS NULL OR site = ANY($1))
           AND ($2 OR active)
           AND ($3::timestamptz IS NULL OR (update_time, employee_number) > ($3, $4))
           AND ($6::timestamptz IS NULL OR update_time >= $6)
           AND ($7::timestamptz IS NULL OR update_time < $7)
         ORDER BY update_time, employee_number
         LIMIT $5",
        wanted.sites.as_deref(),
        wanted.show_inactive,
        after.0,
        after.1.unwrap_or(""),
        page.limit(),
        wanted.updated.from,
        wanted.updated.before,
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| {
        Order::UpdateTime.key(r.employee_number.clone(), r.update_time)
    });
    Ok((rows.into_iter().map(Into::into).collect(), next))
}

/// The people of `numbers` as stored (those not stored are left out), for the change feed's
/// delivery of an HR sync's changes: their spells gathered by one join, not a look-up per
/// person.
pub(crate) async fn by_numbers(
    conn: &mut PgConnection,
    numbers: &[String],
) -> Result<Vec<StaffRow>, Error> {
    Ok(sqlx::query_as!(
        StaffRow,
        r#"SELECT s.employee_number, site, assignment_number, forename, surname, work_email,
                staff_group, job_role, position_title, pay_band, department, organisation,
                person_type, occupation_code, area_of_work, assignment_status, ward,
                hire_date, leave_date, active, source_update_time, create_time, update_time,
                ARRAY[site || '|' || to_char(site_since, 'YYYY-MM-DD') || '|']
                || coalesce(h.spells, '{}') AS "site_history!"
         FROM staff s
         LEFT JOIN (SELECT employee_number,
                           array_agg(site || '|' || to_char(start_date, 'YYYY-MM-DD') || '|'
                                     || to_char(end_date, 'YYYY-MM-DD') ORDER BY id DESC) AS spells
                    FROM staff_site_spell WHERE employee_number = ANY($1)
                    GROUP BY employee_number) h USING (employee_number)
         WHERE s.employee_number = ANY($1)
         ORDER BY s.employee_number"#,
        numbers,
    )
    .fetch_all(&mut *conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(sites: Option<Vec<String>>, show_inactive: bool) -> Wanted {
        Wanted {
            sites,
            show_inactive,
            ..Wanted::default()
        }
    }
    use crate::testing::{page, staff, transaction};

    fn numbers(people: &[pb::Staff]) -> Vec<&str> {
        people.iter().map(|p| p.employee_number.as_str()).collect()
    }

    fn sites(codes: &[&str]) -> Option<Vec<String>> {
        Some(codes.iter().map(|c| c.to_string()).collect())
    }

    #[tokio::test]
    async fn a_person_is_found_only_at_the_callers_sites() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        staff(&mut conn, "100", "BAS", "Lovelace", "Ada").await?;
        let got = get(&mut conn, "100", None).await?;
        assert_eq!(
            got.as_ref()
                .map(|r| (r.name(), r.forename.as_str(), r.active)),
            Some(("staff/100".into(), "Ada", true))
        );
        assert!(
            get(&mut conn, "100", sites(&["BAS", "SOU"]))
                .await?
                .is_some()
        );
        assert!(get(&mut conn, "100", sites(&["SOU"])).await?.is_none());
        assert!(get(&mut conn, "999", None).await?.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn a_person_carries_their_site_and_its_history_newest_first() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        staff(&mut conn, "100", "SOU", "Lovelace", "Ada").await?;
        sqlx::query!(
            "INSERT INTO staff_site_spell (employee_number, site, start_date, end_date)
             VALUES ('100', 'BAS', '2020-01-06', '2026-02-02')"
        )
        .execute(&mut *conn)
        .await?;
        sqlx::query!("UPDATE staff SET site_since = '2026-02-02' WHERE employee_number = '100'")
            .execute(&mut *conn)
            .await?;
        let person: pb::Staff = get(&mut conn, "100", None)
            .await?
            .ok_or_else(|| anyhow::anyhow!("100 not found"))?
            .into();
        assert_eq!(
            (person.name.as_str(), person.site.as_str()),
            ("staff/100", "sites/SOU")
        );
        let ymd = |y, m, d| Some(date(NaiveDate::from_ymd_opt(y, m, d).unwrap()));
        assert_eq!(
            person.site_history,
            [
                pb::SiteSpell {
                    site: "sites/SOU".into(),
                    start_date: ymd(2026, 2, 2),
                    end_date: None,
                },
                pb::SiteSpell {
                    site: "sites/BAS".into(),
                    start_date: ymd(2020, 1, 6),
                    end_date: ymd(2026, 2, 2),
                },
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_person_gives_back_what_esr_sent_and_the_ward_the_mapping_gave() -> anyhow::Result<()>
    {
        let mut conn = transaction().await?;
        staff(&mut conn, "100", "BAS", "Lovelace", "Ada").await?;
        sqlx::query!(
            "UPDATE staff SET occupation_code = 'N0A', area_of_work = 'Medicine',
                              assignment_status = 'Active Assignment',
                              ward = 'sites/BAS/wards/ash'
             WHERE employee_number = '100'"
        )
        .execute(&mut *conn)
        .await?;
        let person: pb::Staff = get(&mut conn, "100", None)
            .await?
            .ok_or_else(|| anyhow::anyhow!("100 not found"))?
            .into();
        assert_eq!(
            (
                person.occupation_code.as_str(),
                person.area_of_work.as_str(),
                person.assignment_status.as_str(),
                person.ward.as_str()
            ),
            (
                "N0A",
                "Medicine",
                "Active Assignment",
                "sites/BAS/wards/ash"
            )
        );
        let (listed, _) = list(&mut conn, &wanted(None, false), &page(50, "")?).await?;
        assert_eq!(listed, [person]);
        Ok(())
    }

    #[tokio::test]
    async fn a_list_keeps_to_its_sites_by_name_and_shows_leavers_when_asked() -> anyhow::Result<()>
    {
        let mut conn = transaction().await?;
        for (number, site, surname, forename) in [
            ("105", "BAS", "Hopper", "Grace"),
            ("101", "BAS", "Lovelace", "Ada"),
            ("104", "SOU", "Babbage", "Charles"),
            ("103", "BAS", "Hopper", "Grace"),
            ("102", "BRM", "Turing", "Alan"),
        ] {
            staff(&mut conn, number, site, surname, forename).await?;
        }
        sqlx::query!("UPDATE staff SET active = false WHERE employee_number = '101'")
            .execute(&mut *conn)
            .await?;
        let all = page(50, "")?;
        let (active, _) = list(&mut conn, &wanted(None, false), &all).await?;
        assert_eq!(numbers(&active), ["104", "103", "105", "102"]);
        let (bas, _) = list(&mut conn, &wanted(sites(&["BAS"]), true), &all).await?;
        assert_eq!(numbers(&bas), ["103", "105", "101"]);
        // Page by page: every person once, in order.
        let (first, next) = list(&mut conn, &wanted(None, true), &page(2, "")?).await?;
        let (second, then) = list(&mut conn, &wanted(None, true), &page(2, &next)?).await?;
        let (third, end) = list(&mut conn, &wanted(None, true), &page(2, &then)?).await?;
        assert_eq!(numbers(&first), ["104", "103"]);
        assert_eq!(numbers(&second), ["105", "101"]);
        assert_eq!(numbers(&third), ["102"]);
        assert!(end.is_empty());
        Ok(())
    }
}
