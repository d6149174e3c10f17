//! This service's change feed (`WatchChanges`, see [`qi_platform::changes`]): which
//! collections it carries and how a stored change becomes the contract's message. Every
//! write records its change with [`record`] (or [`record_deleted`]) in its transaction.

pub(crate) use qi_platform::changes::{record_change as record, record_deleted};

qi_platform::change_feed!(crate::TrainingApi, qi_proto::training, {
    "courses" => Course,
    "cohorts" => Cohort,
    "sessions" => Session,
    "enrolments" => Enrolment,
    "staff" => Staff,
    "completions" => Completion,
    "esrMappings" => EsrMapping,
}, render: Some(render));

/// The resources of `many` changes as they are now, for the feed to deliver: the people an
/// HR sync changed (`sync::changes`), and the completions an import wrote
/// (`register::import`).
fn render<'a>(
    conn: &'a mut sqlx::PgConnection,
    collection: &'a str,
    names: &'a [String],
) -> qi_platform::changes::Rendering<'a> {
    use prost::Message as _;
    use qi_platform::changes::Rendered;
    Box::pin(async move {
        match collection {
            "staff" => {
                let numbers: Vec<String> = names
                    .iter()
                    .filter_map(|n| n.strip_prefix("staff/"))
                    .map(str::to_owned)
                    .collect();
                let people = crate::staff::store::by_numbers(conn, &numbers).await?;
                Ok(people
                    .into_iter()
                    .map(|person| Rendered {
                        name: person.name(),
                        site: Some(person.site.clone()),
                        payload: qi_proto::training::Staff::from(person).encode_to_vec(),
                    })
                    .collect())
            }
            "completions" => {
                // `staff/{number}/completions/{id}`: the id is the last segment.
                let ids: Vec<uuid::Uuid> = names
                    .iter()
                    .filter_map(|n| n.rsplit('/').next()?.parse().ok())
                    .collect();
                let completions = crate::register::store::by_ids(conn, &ids).await?;
                Ok(completions
                    .into_iter()
                    .map(|c| Rendered {
                        name: c.completion.name.clone(),
                        site: Some(c.site),
                        payload: c.completion.encode_to_vec(),
                    })
                    .collect())
            }
            other => Err(qi_platform::changes::unknown_collection(other)),
        }
    })
}

#[cfg(test)]
mod tests {
    use pb::watch_changes_response::Resource;
    use qi_platform::{AccessContext, SiteCode, SiteScope};
    use qi_proto::google::r#type::Date;
    use qi_proto::training as pb;

    use super::*;
    use crate::TrainingApi;
    use crate::testing::{pool, staff};

    /// One row of the outbox, as a write left it.
    #[derive(Debug, sqlx::FromRow)]
    struct Row {
        collection: String,
        name: String,
        kind: String,
        verb: String,
        sites: Option<Vec<String>>,
        payload: Option<Vec<u8>>,
    }

    async fn outbox(pool: &sqlx::PgPool) -> anyhow::Result<Vec<Row>> {
        Ok(sqlx::query_as(
            "SELECT collection, name, kind, verb, sites, payload FROM changes ORDER BY pos, id",
        )
        .fetch_all(pool)
        .await?)
    }

    /// The resource a change carries.
    fn resource(row: &Row) -> Resource {
        let bytes = row.payload.as_deref().expect("a payload");
        decode(&row.collection, bytes).expect("a stored resource")
    }

    /// A change in a line: its collection, name, kind (and verb) and the sites that see it.
    fn line(row: &Row) -> String {
        let Row {
            collection,
            name,
            kind,
            verb,
            sites,
            ..
        } = row;
        let kind = if verb.is_empty() {
            kind.clone()
        } else {
            format!("{kind}:{verb}")
        };
        let sites = sites.as_ref().map_or("(everyone)".into(), |s| s.join(","));
        format!("{collection} {name} {kind} {sites}")
    }

    /// The changes after the first `seen`, in lines.
    async fn since(pool: &sqlx::PgPool, seen: usize) -> anyhow::Result<Vec<String>> {
        Ok(outbox(pool).await?[seen..].iter().map(line).collect())
    }

    /// A caller of the improvement team holding `sites` (`*`: trust-wide).
    fn caller(sites: &[&str]) -> AccessContext {
        let claim: Vec<String> = sites.iter().map(|s| (*s).to_owned()).collect();
        AccessContext {
            subject: "lead".into(),
            roles: vec!["improvement_team".into()],
            sites: SiteScope::from_claim(&claim).expect("a sites claim"),
            method: String::new(),
            employee: None,
            employee_claim: Default::default(),
            token_expiry: None,
        }
    }

    fn date(year: i32, month: i32, day: i32) -> Option<Date> {
        Some(Date { year, month, day })
    }

    fn cohort_request(parent: &str, id: &str, capacity: i32) -> pb::CreateCohortRequest {
        pb::CreateCohortRequest {
            parent: parent.into(),
            cohort_id: id.into(),
            cohort: Some(pb::Cohort {
                course: "trust/courses/lean".into(),
                display_name: format!("Cohort {id}"),
                start_date: date(2025, 1, 6),
                capacity,
                ..Default::default()
            }),
            request_id: String::new(),
        }
    }

    fn enrol(cohort: &str, number: &str) -> pb::CreateEnrolmentRequest {
        pb::CreateEnrolmentRequest {
            parent: cohort.into(),
            enrolment: Some(pb::Enrolment {
                staff: format!("staff/{number}"),
                ..Default::default()
            }),
            request_id: String::new(),
        }
    }

    fn register(
        session: &str,
        number: &str,
        status: pb::AttendanceStatus,
    ) -> pb::RecordAttendanceRequest {
        pb::RecordAttendanceRequest {
            session: session.into(),
            records: vec![pb::AttendanceRecord {
                staff: format!("staff/{number}"),
                status: status as i32,
            }],
        }
    }

    #[tokio::test]
    async fn each_write_records_its_changes_for_the_sites_that_read_them_and_a_failed_one_nothing()
    -> anyhow::Result<()> {
        let pool = pool().await?;
        let codes = ["BAS", "BRM", "SOU"].map(|c| SiteCode::parse(c).expect("a site code"));
        let api = TrainingApi::new(pool.clone(), &codes);
        let trust = caller(&["*"]);
        let bas = caller(&["BAS"]);
        let mut setup = qi_platform::db::begin(&pool).await?;
        for (number, at) in [
            ("10000001", "BAS"),
            ("10000002", "SOU"),
            ("10000003", "BRM"),
            ("10000004", "BAS"),
        ] {
            staff(&mut setup, number, at, "Ames", "Pat").await?;
        }
        setup.commit().await?;

        // A course, created and renamed: the catalogue is everyone's.
        let create_course = pb::CreateCourseRequest {
            parent: "trust".into(),
            course_id: "lean".into(),
            course: Some(pb::Course {
                code: "LEAN".into(),
                display_name: "Lean".into(),
                session_count: 2,
                ..Default::default()
            }),
            request_id: String::new(),
        };
        let course = crate::courses::create(&api, trust.clone(), create_course.clone())
            .await?
            .course
            .expect("a course");
        let renamed = |etag: &str, title: &str| pb::UpdateCourseRequest {
            course: Some(pb::Course {
                name: "trust/courses/lean".into(),
                display_name: title.into(),
                etag: etag.into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        };
        let updated = crate::courses::update(&api, trust.clone(), renamed(&course.etag, "Lean 2"))
            .await?
            .course
            .expect("a course");
        let rows = outbox(&pool).await?;
        assert_eq!(
            rows.iter().map(line).collect::<Vec<_>>(),
            [
                "courses trust/courses/lean created (everyone)",
                "courses trust/courses/lean updated (everyone)",
            ]
        );
        assert_eq!(resource(&rows[0]), Resource::Course(course.clone()));
        assert_eq!(resource(&rows[1]), Resource::Course(updated.clone()));

        // Writes that fail record nothing: invalid input, a stale etag, a taken id, a
        // cohort's learner who is not on it.
        let mut bad_course = create_course.clone();
        bad_course.course_id = "Not An Id".into();
        assert!(
            crate::courses::create(&api, trust.clone(), bad_course)
                .await
                .is_err()
        );
        assert!(
            crate::courses::create(&api, trust.clone(), create_course)
                .await
                .is_err()
        );
        let blank = renamed(&updated.etag, " ");
        assert!(
            crate::courses::update(&api, trust.clone(), blank)
                .await
                .is_err()
        );
        let stale = renamed(&course.etag, "Lean 3");
        assert!(
            crate::courses::update(&api, trust.clone(), stale)
                .await
                .is_err()
        );
        let no_room = cohort_request("sites/BAS", "spring", 0);
        assert!(
            crate::cohorts::create(&api, bas.clone(), no_room)
                .await
                .is_err()
        );
        assert_eq!(outbox(&pool).await?.len(), 2);

        // A site's cohort, created with its sessions, opened, joined and started: BAS's.
        let spring = "sites/BAS/cohorts/spring";
        let made =
            crate::cohorts::create(&api, bas.clone(), cohort_request("sites/BAS", "spring", 5))
                .await?
                .cohort
                .expect("a cohort");
        let opened = crate::cohorts::open(
            &api,
            bas.clone(),
            pb::OpenCohortRequest {
                name: spring.into(),
                etag: made.etag.clone(),
            },
        )
        .await?
        .cohort
        .expect("a cohort");
        let joined = crate::enrolments::create(&api, bas.clone(), enrol(spring, "10000001"))
            .await?
            .enrolment
            .expect("an enrolment");
        let started = crate::cohorts::start(
            &api,
            bas.clone(),
            pb::StartCohortRequest {
                name: spring.into(),
                etag: opened.etag.clone(),
            },
        )
        .await?
        .cohort
        .expect("a cohort");
        let rows = outbox(&pool).await?;
        assert_eq!(
            rows[2..].iter().map(line).collect::<Vec<_>>(),
            [
                format!("cohorts {spring} created BAS"),
                format!("sessions {spring}/sessions/1 created BAS"),
                format!("sessions {spring}/sessions/2 created BAS"),
                format!("cohorts {spring} state_changed:open BAS"),
                format!("enrolments {spring}/enrolments/10000001 created BAS"),
                format!("cohorts {spring} updated BAS"),
                format!("cohorts {spring} state_changed:start BAS"),
            ]
        );
        assert_eq!(resource(&rows[2]), Resource::Cohort(made));
        let Resource::Session(first) = resource(&rows[3]) else {
            panic!("not a session")
        };
        assert_eq!((first.number, first.date), (1, date(2025, 1, 6)));
        assert_eq!(resource(&rows[5]), Resource::Cohort(opened));
        assert_eq!(resource(&rows[6]), Resource::Enrolment(joined));
        let Resource::Cohort(counted) = resource(&rows[7]) else {
            panic!("not a cohort")
        };
        assert_eq!(counted.enrolled_count, 1);
        assert_eq!(resource(&rows[8]), Resource::Cohort(started.clone()));

        // Its registers: each learner's enrolment and the session change; the second
        // completes the course, and the completion is the learner's site's.
        let seen = rows.len();
        for n in [1, 2] {
            let session = format!("{spring}/sessions/{n}");
            let attended = register(&session, "10000001", pb::AttendanceStatus::Attended);
            crate::attendance::record(&api, bas.clone(), attended).await?;
        }
        let completed = crate::cohorts::complete(
            &api,
            bas.clone(),
            pb::CompleteCohortRequest {
                name: spring.into(),
                etag: started.etag.clone(),
            },
        )
        .await?
        .cohort
        .expect("a cohort");
        let rows = outbox(&pool).await?;
        let Resource::Completion(completion) = resource(&rows[seen + 2]) else {
            panic!("not a completion")
        };
        let achieved = &completion.name;
        assert!(achieved.starts_with("staff/10000001/completions/"));
        assert_eq!(completion.cohort, spring);
        assert_eq!(
            rows[seen..].iter().map(line).collect::<Vec<_>>(),
            [
                format!("enrolments {spring}/enrolments/10000001 updated BAS"),
                format!("sessions {spring}/sessions/1 updated BAS"),
                format!("completions {achieved} created BAS"),
                format!("enrolments {spring}/enrolments/10000001 updated BAS"),
                format!("sessions {spring}/sessions/2 updated BAS"),
                format!("cohorts {spring} state_changed:complete BAS"),
            ]
        );
        let Resource::Enrolment(done) = resource(&rows[seen + 3]) else {
            panic!("not an enrolment")
        };
        assert_eq!(done.completion_date, completion.completion_date);
        assert_eq!(done.attendance.len(), 2);
        assert_eq!(resource(&rows[seen + 5]), Resource::Cohort(completed));

        // The learner moves to SOU: their enrolment is read by the cohort's site (its roster)
        // and theirs (their record); a corrected register revokes the completion, which
        // leaves SOU's register.
        sqlx::query("UPDATE staff SET site = 'SOU' WHERE employee_number = '10000001'")
            .execute(&pool)
            .await?;
        let seen = rows.len();
        let absent = register(
            &format!("{spring}/sessions/2"),
            "10000001",
            pb::AttendanceStatus::Absent,
        );
        crate::attendance::record(&api, bas.clone(), absent).await?;
        assert_eq!(
            since(&pool, seen).await?,
            [
                format!("completions {achieved} deleted SOU"),
                format!("enrolments {spring}/enrolments/10000001 updated BAS,SOU"),
            ]
        );
        assert_eq!(outbox(&pool).await?[seen].payload, None);

        // A trust-wide cohort is everyone's, its counts included (the trust's, for every
        // caller); an enrolment in it is the learner's site's.
        let seen = outbox(&pool).await?.len();
        let t = "trust/cohorts/t";
        crate::cohorts::create(&api, trust.clone(), cohort_request("trust", "t", 1)).await?;
        let mut enrolled = Vec::new();
        for number in ["10000002", "10000003", "10000004"] {
            let e = crate::enrolments::create(&api, trust.clone(), enrol(t, number))
                .await?
                .enrolment
                .expect("an enrolment");
            enrolled.push(e);
        }
        let rows = outbox(&pool).await?;
        assert_eq!(
            rows[seen..].iter().map(line).collect::<Vec<_>>(),
            [
                format!("cohorts {t} created (everyone)"),
                format!("sessions {t}/sessions/1 created (everyone)"),
                format!("sessions {t}/sessions/2 created (everyone)"),
                format!("enrolments {t}/enrolments/10000002 created SOU"),
                format!("cohorts {t} updated (everyone)"),
                format!("enrolments {t}/enrolments/10000003 created BRM"),
                format!("cohorts {t} updated (everyone)"),
                format!("enrolments {t}/enrolments/10000004 created BAS"),
                format!("cohorts {t} updated (everyone)"),
            ]
        );
        assert_eq!(
            resource(&rows[seen + 3]),
            Resource::Enrolment(enrolled[0].clone())
        );
        let Resource::Cohort(full) = resource(&rows[seen + 8]) else {
            panic!("not a cohort")
        };
        assert_eq!((full.enrolled_count, full.waitlist_count), (1, 2));

        // A withdrawal frees a place: the first waiting is promoted, the rest move up.
        let seen = rows.len();
        let left = crate::enrolments::withdraw(
            &api,
            trust.clone(),
            pb::WithdrawEnrolmentRequest {
                name: format!("{t}/enrolments/10000002"),
            },
        )
        .await?;
        let rows = outbox(&pool).await?;
        assert_eq!(
            rows[seen..].iter().map(line).collect::<Vec<_>>(),
            [
                format!("enrolments {t}/enrolments/10000002 state_changed:withdraw SOU"),
                format!("enrolments {t}/enrolments/10000003 updated BRM"),
                format!("enrolments {t}/enrolments/10000004 updated BAS"),
                format!("cohorts {t} updated (everyone)"),
            ]
        );
        assert_eq!(
            resource(&rows[seen]),
            Resource::Enrolment(left.enrolment.expect("one"))
        );
        assert_eq!(
            resource(&rows[seen + 1]),
            Resource::Enrolment(left.promoted.expect("one"))
        );
        let Resource::Enrolment(moved_up) = resource(&rows[seen + 2]) else {
            panic!("not an enrolment")
        };
        assert_eq!(moved_up.waitlist_position, 1);

        // An ESR mapping is its site's; one moved by a batch leaves its old site under its
        // old name.
        let seen = rows.len();
        let mapping = |name: &str| pb::EsrMapping {
            name: name.into(),
            ..Default::default()
        };
        crate::esr_mappings::create(
            &api,
            bas.clone(),
            pb::CreateEsrMappingRequest {
                parent: "sites/BAS".into(),
                esr_mapping_id: "location.L1".into(),
                esr_mapping: Some(mapping("")),
                request_id: String::new(),
            },
        )
        .await?;
        let batch = crate::esr_mappings::batch_upsert(
            &api,
            trust.clone(),
            pb::BatchUpsertEsrMappingsRequest {
                parent: "sites/SOU".into(),
                esr_mappings: vec![
                    mapping("sites/SOU/esrMappings/location.L2"),
                    mapping("sites/SOU/esrMappings/location.L1"),
                ],
                request_id: String::new(),
            },
        )
        .await?;
        assert_eq!((batch.created, batch.updated), (1, 1));
        let l1 = crate::esr_mappings::get(
            &api,
            trust.clone(),
            pb::GetEsrMappingRequest {
                name: "sites/SOU/esrMappings/location.L1".into(),
            },
        )
        .await?
        .esr_mapping
        .expect("a mapping");
        crate::esr_mappings::delete(
            &api,
            trust.clone(),
            pb::DeleteEsrMappingRequest {
                name: l1.name.clone(),
                etag: l1.etag.clone(),
            },
        )
        .await?;
        let rows = outbox(&pool).await?;
        assert_eq!(
            rows[seen..].iter().map(line).collect::<Vec<_>>(),
            [
                "esrMappings sites/BAS/esrMappings/location.L1 created BAS",
                "esrMappings sites/BAS/esrMappings/location.L1 deleted BAS",
                "esrMappings sites/SOU/esrMappings/location.L1 created SOU",
                "esrMappings sites/SOU/esrMappings/location.L2 created SOU",
                "esrMappings sites/SOU/esrMappings/location.L1 deleted SOU",
            ]
        );
        assert_eq!(resource(&rows[seen + 2]), Resource::EsrMapping(l1));

        // Imported completions are their learners' sites', created once: the same import
        // again changes nothing.
        let seen = rows.len();
        let import = || pb::ImportCompletionsRequest {
            parent: "sites/-".into(),
            completions: vec![pb::ImportedCompletion {
                employee_number: "10000003".into(),
                course: "LEAN".into(),
                completion_date: date(2019, 5, 1),
                source: pb::CompletionSource::HistoricRegister as i32,
                ..Default::default()
            }],
            request_id: String::new(),
        };
        let imported = crate::register::import::import(&api, trust.clone(), import()).await?;
        assert_eq!(imported.inserted, 1);
        crate::register::import::import(&api, trust.clone(), import()).await?;
        // An import lists what it wrote in one `many` change, seen by BRM's callers (the
        // learner's site), and the feed renders each completion when it delivers it.
        let rows = outbox(&pool).await?;
        assert_eq!(rows.len(), seen + 1);
        assert_eq!(
            (rows[seen].kind.as_str(), rows[seen].sites.clone()),
            ("many", Some(vec!["BRM".to_owned()]))
        );
        let completions = |messages: Vec<pb::WatchChangesResponse>| -> Vec<_> {
            messages
                .into_iter()
                .filter(|m| m.resource_name.starts_with("staff/10000003/completions/"))
                .collect()
        };
        let delivered = completions(backlog(&api, &trust).await?);
        let [change] = delivered.as_slice() else {
            panic!("one completion change: {delivered:?}")
        };
        assert_eq!(change.kind(), qi_proto::common::ChangeKind::Created);
        let Some(Resource::Completion(historic)) = &change.resource else {
            panic!("not a completion: {change:?}")
        };
        assert_eq!(change.resource_name, historic.name);
        assert_eq!(historic.staff, "staff/10000003");
        assert_eq!(
            historic.source,
            pb::CompletionSource::HistoricRegister as i32
        );
        // Only the learner's site's callers get it.
        assert!(completions(backlog(&api, &caller(&["BRM"])).await?).len() == 1);
        assert!(completions(backlog(&api, &bas).await?).is_empty());
        Ok(())
    }
}
