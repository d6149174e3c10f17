//! Tests of the migrations that rewrite stored data: a database migrated to the version
//! before one, holding rows as they were then, is migrated the rest of the way.

use sqlx::PgPool;

use crate::MIGRATOR;

/// The version before the migration that makes staff names canonical (issue 25).
const BEFORE_STAFF_NAMES: i64 = 20261128000001;

/// A pool on a fresh database migrated up to and including `version`.
async fn migrated_to(version: i64) -> anyhow::Result<PgPool> {
    let url = qi_test_kit::database().await?;
    let pool = qi_platform::db::connect_owner(&url, crate::SCHEMA).await?;
    MIGRATOR.run_to(version, &pool).await?;
    Ok(pool)
}

#[tokio::test]
async fn stored_staff_names_become_canonical_and_one_person_is_one_membership() -> anyhow::Result<()>
{
    let pool = migrated_to(BEFORE_STAFF_NAMES).await?;
    // Unchecked SQL: these rows are as the schema held them before the migration, which the
    // build-time checks (against the latest schema) cannot describe.
    sqlx::raw_sql(
        "INSERT INTO project (uid, lead_site, id, title) VALUES
             ('00000000-0000-7000-8000-000000000001', 'BAS', 'p1', 'P1'),
             ('00000000-0000-7000-8000-000000000002', 'SOU', 'p2', 'P2');
         -- On p1, 12345678 joined as lead under BAS, then again as a member under SOU
         -- (once they had moved), and a third time under BRM; 22222222 once; and a
         -- patient partner. On p2, 12345678 once, under SOU.
         INSERT INTO team_member (project_uid, id, staff, display_name, role, create_time) VALUES
             ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-0000000000a1',
              'sites/BAS/staff/12345678', '', 'lead', '2026-01-01T09:00Z'),
             ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-0000000000a2',
              'sites/SOU/staff/12345678', '', 'member', '2026-02-01T09:00Z'),
             ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-0000000000a3',
              'sites/BRM/staff/12345678', '', 'coach', '2026-03-01T09:00Z'),
             ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-0000000000a4',
              'sites/BAS/staff/22222222', '', 'member', '2026-01-02T09:00Z'),
             ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-0000000000a5',
              NULL, 'Pat Smith', 'patient_partner', '2026-01-03T09:00Z'),
             ('00000000-0000-7000-8000-000000000002', '00000000-0000-7000-8000-0000000000b1',
              'sites/SOU/staff/12345678', '', 'member', '2026-01-01T09:00Z');
         UPDATE project SET patient_partner_count = 1
             WHERE uid = '00000000-0000-7000-8000-000000000001';
         INSERT INTO idea (uid, site, id, title, submitter, submitter_staff, update_time) VALUES
             ('00000000-0000-7000-8000-0000000000c1', 'BAS', 'i1', 'I1', 'A Nurse',
              'sites/BAS/staff/12345678', '2026-01-01T09:00Z'),
             ('00000000-0000-7000-8000-0000000000c2', 'BAS', 'i2', 'I2', 'A Visitor',
              NULL, '2026-01-01T09:00Z');
         INSERT INTO idempotency (caller, method, request_id, request, response) VALUES
             ('someone', 'CreateTeamMember', 'r1', '\\x00',
              convert_to('sites/BAS/staff/12345678', 'UTF8'));",
    )
    .execute(&pool)
    .await?;

    MIGRATOR.run(&pool).await?;

    let team: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
        "SELECT p.id, m.id::text, m.staff, m.role FROM team_member m
         JOIN project p ON p.uid = m.project_uid ORDER BY p.id, m.id",
    )
    .fetch_all(&pool)
    .await?;
    let row = |p: &str, id: &str, staff: Option<&str>, role: &str| {
        (
            p.to_owned(),
            format!("00000000-0000-7000-8000-0000000000{id}"),
            staff.map(str::to_owned),
            role.to_owned(),
        )
    };
    assert_eq!(
        team,
        [
            // The earliest membership of 12345678 on p1 is kept, with its role.
            row("p1", "a1", Some("staff/12345678"), "lead"),
            row("p1", "a4", Some("staff/22222222"), "member"),
            row("p1", "a5", None, "patient_partner"),
            row("p2", "b1", Some("staff/12345678"), "member"),
        ]
    );
    let partners: i32 =
        sqlx::query_scalar("SELECT patient_partner_count FROM project WHERE id = 'p1'")
            .fetch_one(&pool)
            .await?;
    assert_eq!(partners, 1);

    // A rename is nobody's edit: the ideas' etags (revision) and update times stand.
    let ideas: Vec<(String, Option<String>, i64, bool)> = sqlx::query_as(
        "SELECT id, submitter_staff, revision, update_time = '2026-01-01T09:00Z'
         FROM idea ORDER BY id",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        ideas,
        [
            ("i1".to_owned(), Some("staff/12345678".to_owned()), 1, true),
            ("i2".to_owned(), None, 1, true),
        ]
    );
    // The trigger is back for every later edit.
    let revision: i64 =
        sqlx::query_scalar("UPDATE idea SET theme = 'Falls' WHERE id = 'i1' RETURNING revision")
            .fetch_one(&pool)
            .await?;
    assert_eq!(revision, 2);

    // Saved answers are history: left as written.
    let saved: String = sqlx::query_scalar(
        "SELECT convert_from(response, 'UTF8') FROM idempotency WHERE request_id = 'r1'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(saved, "sites/BAS/staff/12345678");
    Ok(())
}

/// The version before the migration that adds team editors and one lead per project.
const BEFORE_TEAM_EDITORS: i64 = 20261201000001;

#[tokio::test]
async fn extra_leads_become_editing_members_and_a_team_keeps_one_lead() -> anyhow::Result<()> {
    let pool = migrated_to(BEFORE_TEAM_EDITORS).await?;
    // Unchecked SQL, as above: the rows predate the `editor` column.
    sqlx::raw_sql(
        "INSERT INTO project (uid, lead_site, id, title) VALUES
             ('00000000-0000-7000-8000-000000000001', 'BAS', 'p1', 'P1'),
             ('00000000-0000-7000-8000-000000000002', 'BAS', 'p2', 'P2');
         -- p1 was given three leads over time; p2 one.
         INSERT INTO team_member (project_uid, id, staff, role, create_time) VALUES
             ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-0000000000a1',
              'staff/10000002', 'lead', '2026-02-01T09:00Z'),
             ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-0000000000a2',
              'staff/10000001', 'lead', '2026-01-01T09:00Z'),
             ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-0000000000a3',
              'staff/10000003', 'lead', '2026-03-01T09:00Z'),
             ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-0000000000a4',
              'staff/10000004', 'coach', '2026-01-01T09:00Z'),
             ('00000000-0000-7000-8000-000000000002', '00000000-0000-7000-8000-0000000000b1',
              'staff/10000003', 'lead', '2026-01-01T09:00Z');",
    )
    .execute(&pool)
    .await?;

    MIGRATOR.run(&pool).await?;

    let team: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT p.id, m.staff, m.role, m.editor FROM team_member m
         JOIN project p ON p.uid = m.project_uid ORDER BY p.id, m.staff",
    )
    .fetch_all(&pool)
    .await?;
    let row = |p: &str, staff: &str, role: &str, editor: bool| {
        (
            p.to_owned(),
            format!("staff/{staff}"),
            role.to_owned(),
            editor,
        )
    };
    assert_eq!(
        team,
        [
            // The earliest lead stays; the later ones keep their edit rights as members.
            row("p1", "10000001", "lead", false),
            row("p1", "10000002", "member", true),
            row("p1", "10000003", "member", true),
            row("p1", "10000004", "coach", false),
            row("p2", "10000003", "lead", false),
        ]
    );
    let second =
        sqlx::raw_sql("UPDATE team_member SET role = 'lead' WHERE staff = 'staff/10000004'")
            .execute(&pool)
            .await
            .unwrap_err();
    assert!(
        second.to_string().contains("team_member_one_lead"),
        "{second}"
    );
    Ok(())
}
