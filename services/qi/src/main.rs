//! `qi`: every QI Suite component and tool in one binary.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use qi::{ALL, Role, secrets, suite::Suite};
use qi_platform::{Config, telemetry};

/// jemalloc rather than glibc's malloc: many small allocations a call from many threads is
/// the load glibc's arenas handle worst (`perf` put ~14% of the gateway's CPU in them).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exit status for invalid configuration or usage (sysexits EX_USAGE).
const EX_USAGE: u8 = 64;
/// Exit status of an import that applied some rows and refused others.
const EX_SOME_REFUSED: u8 = 3;

/// The QI Suite: the gRPC backbone of a trust's quality-improvement programme.
#[derive(Parser, Debug)]
#[command(name = "qi", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs every service and the gateway in one process, with a private PostgreSQL unless
    /// QI_DATABASE_URL is set.
    Up {
        /// Where the private PostgreSQL and the development secrets live [env: QI_DATA_DIR] [default: ./.qi]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The gateway's address [env: QI_LISTEN] [default: 127.0.0.1:50051]
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// On the first start in this data folder, load the demo trust (as `qi seed --demo`).
        #[arg(long)]
        demo: bool,
    },
    /// Runs one component (as in Kubernetes), listening on QI_LISTEN.
    Serve {
        /// Which component.
        #[arg(value_enum)]
        component: Role,
    },
    /// Runs a component's database migrations (or all of them) as the owner, grants the
    /// runtime role (QI_DATABASE_URL's user, when it is another) what serving needs, and exits.
    Migrate {
        /// Which component's schema, or all of them.
        #[arg(value_enum)]
        component: MigrateTarget,
    },
    /// One run of the audit trail's retention, as the owner (QI_MIGRATION_DATABASE_URL, else
    /// QI_DATABASE_URL): creates the coming months' partitions and drops those older than
    /// QI_AUDIT_RETENTION_DAYS. Run it daily (the Kubernetes CronJob does); `qi up` runs it itself.
    Maintain,
    /// The read model: `qi insights rebuild` drops it and builds it again from the services'
    /// current state (their List RPCs, called straight as `internal:insights` with
    /// QI_ACCESS_KEY, at QI_TRAINING_URL, QI_PROJECTS_URL and QI_METRICS_URL), then leaves the
    /// running intake to follow each feed from where the rebuild read it.
    Insights {
        #[command(subcommand)]
        command: InsightsCommand,
    },
    /// HR's files: an ESR extract in, trained-staff records out, and the ESR mapping of
    /// organisation and location codes to sites and wards (through the gateway).
    Hr {
        #[command(subcommand)]
        command: HrCommand,
        /// The gateway's URL.
        #[arg(
            long,
            global = true,
            env = "QI_GATEWAY_URL",
            default_value = "http://127.0.0.1:50051"
        )]
        gateway: String,
        /// A bearer token with the hr_sync role, trust-wide (`map` also takes
        /// improvement_team, for the caller's own sites).
        #[arg(long, global = true, env = "QI_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Measures speed and memory against same-run baselines (use a release build).
    Bench {
        /// Scenarios to run (default: all, in this order).
        #[arg(value_enum)]
        scenarios: Vec<qi::bench::Scenario>,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// A seconds-long smoke round instead of the real measurement.
        #[arg(long)]
        quick: bool,
    },
    /// Creates the reference trust's sites and sixty wards through the gateway; with --demo,
    /// a whole synthetic trust (staff, cohorts, ideas, projects, metrics). Safe to rerun.
    Seed {
        /// Load the demo trust, not only the sites and wards.
        #[arg(long)]
        demo: bool,
        /// The gateway's URL.
        #[arg(long, env = "QI_GATEWAY_URL", default_value = "http://127.0.0.1:50051")]
        gateway: String,
        /// A bearer token of a trust-wide admin.
        #[arg(long, env = "QI_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Tails a service's change feed through the gateway as JSON lines (the proto3 JSON
    /// mapping) on standard output; the README's "Following changes" shows it. Resumes from
    /// --cursor-file when given (and keeps it current), fetches a new token with
    /// --token-command when one expires, and retries while the gateway or the database is
    /// away. Exit status: 0 caught up (with --until-caught-up); 1 the feed failed; 64 bad usage.
    Watch {
        /// Which service's feed.
        #[arg(value_parser = ["training", "projects", "metrics"])]
        service: String,
        /// Resume after this cursor (wins over the cursor file).
        #[arg(long)]
        from: Option<String>,
        /// Keep the last cursor written here, and resume from it.
        #[arg(long)]
        cursor_file: Option<PathBuf>,
        /// Without a cursor, start with changes from now on (default: the oldest retained).
        #[arg(long)]
        now: bool,
        /// Only these collections (e.g. projects,pdsaCycles).
        #[arg(long, value_delimiter = ',')]
        collections: Vec<String>,
        /// Stop once the backlog is delivered, rather than following for ever.
        #[arg(long)]
        until_caught_up: bool,
        /// The gateway's URL.
        #[arg(long, env = "QI_GATEWAY_URL", default_value = "http://127.0.0.1:50051")]
        gateway: String,
        /// A bearer token with a reading role.
        #[arg(long, env = "QI_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// A shell command that prints a bearer token, run at the start and whenever the
        /// token expires.
        #[arg(long, env = "QI_TOKEN_COMMAND")]
        token_command: Option<String>,
        /// As an internal consumer named NAME (the read model, another service): follow the
        /// service at --service-url directly, with a trust-wide access context signed with
        /// QI_ACCESS_KEY, not through the gateway.
        #[arg(long = "as", value_name = "NAME", requires = "service_url")]
        internal: Option<String>,
        /// The service's own URL, for --as (e.g. http://training:50052).
        #[arg(long, requires = "internal")]
        service_url: Option<String>,
    },
    /// Writes a collection through the gateway, page by page, as JSON lines or CSV on
    /// standard output, for a nightly extract; the README's "Nightly extracts" shows it.
    /// Rows come oldest change first; the run ends by printing on standard error the --since
    /// the next run should give.
    Export {
        /// Which collection.
        #[arg(value_parser = qi::export::COLLECTION_NAMES)]
        collection: String,
        /// Only what changed after this time (RFC 3339, e.g. 2026-12-01T02:00:00Z).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only this site's rows (default: every site the token holds, and the trust-wide
        /// cohorts, metrics and their enrolments and measurements).
        #[arg(long)]
        site: Option<String>,
        /// How rows are written.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Rows asked for a page (at most 500, the Lists' largest).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i32).range(1..=500))]
        page_size: i32,
        /// The gateway's URL.
        #[arg(long, env = "QI_GATEWAY_URL", default_value = "http://127.0.0.1:50051")]
        gateway: String,
        /// A bearer token with a reading role.
        #[arg(long, env = "QI_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Prints the OpenAPI 3.1 document of the HTTP/JSON face (as the gateway serves it at
    /// /openapi.json), generated from the contracts; needs no configuration.
    Openapi,
    /// Prints a development token signed with the data folder's secret (or QI_JWT_SECRET).
    Token {
        /// The data folder `qi up` uses [env: QI_DATA_DIR] [default: ./.qi]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The subject (who is calling).
        #[arg(long)]
        sub: String,
        /// A role (repeatable).
        #[arg(long = "role", required = true, value_enum)]
        roles: Vec<TokenRole>,
        /// A site code, or '*' for trust-wide (repeatable).
        #[arg(long = "site", required = true)]
        sites: Vec<String>,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 12)]
        ttl_hours: u64,
        /// The caller's ESR employee number (5 to 12 digits), written under
        /// QI_JWT_EMPLOYEE_CLAIM: a token for a person rather than a service.
        #[arg(long, value_name = "NUMBER", value_parser = employee_number)]
        employee: Option<qi_platform::EmployeeNumber>,
    },
}

/// Checks `--employee` by the rule the gateway and the training service hold it to, so a
/// bad number is a usage error (64) here rather than a refused token later.
fn employee_number(s: &str) -> Result<qi_platform::EmployeeNumber, String> {
    qi_platform::EmployeeNumber::parse(s)
}

/// What `qi insights` does.
#[derive(Debug, Subcommand)]
enum InsightsCommand {
    /// Drops the read model and builds it again from the services' current state.
    Rebuild,
}

/// What `qi migrate` migrates: one component's schema, or all of them.
#[derive(Debug, Clone, Copy)]
enum MigrateTarget {
    One(Role),
    All,
}

impl clap::ValueEnum for MigrateTarget {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            MigrateTarget::One(Role::Training),
            MigrateTarget::One(Role::Projects),
            MigrateTarget::One(Role::Metrics),
            MigrateTarget::One(Role::Insights),
            MigrateTarget::One(Role::Gateway),
            MigrateTarget::All,
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            MigrateTarget::One(role) => role.name(),
            MigrateTarget::All => "all",
        }))
    }
}

/// `qi export --format`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// One JSON object a line (the proto3 JSON mapping).
    Jsonl,
    /// A header of the top-level fields, a row each; nested values as compact JSON.
    Csv,
}

/// The roles a token can carry (the gateway's access policies name them).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TokenRole {
    /// Reads.
    #[value(name = "viewer")]
    Viewer,
    /// Submits ideas, records measurements, updates projects they lead.
    #[value(name = "contributor")]
    Contributor,
    /// Runs cohorts, triages ideas, manages projects and programmes.
    #[value(name = "improvement_team")]
    ImprovementTeam,
    /// The HR sync in and out, nothing else.
    #[value(name = "hr_sync")]
    HrSync,
    /// Everything.
    #[value(name = "admin")]
    Admin,
}

impl TokenRole {
    fn claim(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

#[derive(Subcommand, Debug)]
enum HrCommand {
    /// Streams an ESR-extract CSV to SyncStaff (the columns are in the README), in bounded
    /// memory, with progress on a terminal. Exit status: 0 every row applied; 3 some rows
    /// refused (listed on stderr), the rest applied; 1 nothing applied (a FULL import with an
    /// unreadable line, every row refused, or the call failed); 64 bad usage.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// The whole workforce: deactivate active staff absent from the file.
        #[arg(long)]
        full: bool,
        /// The extract's id, kept with each record it changes.
        #[arg(long, default_value = "")]
        extract_id: String,
    },
    /// Writes trained-staff records changed after a cursor to standard output, as CSV in
    /// the default layout (in the README) or the trust's own; prints the cursor to resume
    /// from on standard error. Exit status: 0 written; 1 the call failed; 64 bad usage
    /// (e.g. a layout that cannot be used).
    Export {
        /// Resume after this cursor (the last one a previous export wrote).
        #[arg(long, default_value = "")]
        since: String,
        /// A layout file (TOML: columns, header, headers, date_format, delimiter, revoked);
        /// tests/fixtures/hr-export-default-layout.toml spells out the default.
        #[arg(long, env = "QI_HR_EXPORT_LAYOUT")]
        layout: Option<PathBuf>,
    },
    /// The ESR mapping: which site (and ward) each organisation or location code stands for.
    Map {
        #[command(subcommand)]
        command: MapCommand,
    },
    /// Completions achieved elsewhere: the historic register, ESR competences, another
    /// trust's training (Inter Authority Transfer).
    Completions {
        #[command(subcommand)]
        command: CompletionsCommand,
    },
    /// Compares the register with ESR's competence records in a CSV (columns employee_number,
    /// competence, achieved_date; see the README) and writes one CSV line per person and
    /// course (in both, register only, ESR only, dates disagree) to standard output, the
    /// counts on standard error. Exit status: 0 compared; 3 some lines refused (listed on
    /// stderr), the rest compared; 1 the call failed or the file is unusable; 64 bad usage.
    Reconcile {
        /// The CSV file.
        file: PathBuf,
        /// Only staff now at this site (the token must hold it); default: every site the
        /// token holds.
        #[arg(long)]
        site: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum CompletionsCommand {
    /// Imports the completions of a CSV (columns employee_number, course, completion_date,
    /// source, source_reference, previous_organisation, expiry_date; see the README) into the
    /// register. Exit status: 0 every line applied; 3 some lines refused (listed on stderr by
    /// line and column), the rest applied; 1 nothing applied (a wrong header, every line
    /// refused, or the call failed); 64 bad usage.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Only staff now at this site (the token must hold it); default: every site the
        /// token holds.
        #[arg(long)]
        site: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum MapCommand {
    /// Creates or updates the mappings of a CSV (columns kind, code, site, ward,
    /// display_name; see the README). Exit status: 0 every line applied; 3 some lines
    /// refused (listed on stderr by line and column), the rest applied; 1 nothing applied
    /// (a wrong header, every line refused, or the call failed); 64 bad usage.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// Writes the mappings of the caller's sites as CSV to standard output.
    Export,
}

fn main() -> ExitCode {
    // A usage error exits 64 (EX_USAGE), as a bad configuration does; help and version 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EX_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Command::Openapi = &cli.command {
        return match qi_gateway::openapi_document() {
            Ok(doc) => {
                use std::io::Write as _;
                match std::io::stdout().write_all(&doc) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("qi: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Err(e) => {
                eprintln!("qi: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("qi: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    if let Command::Token {
        data_dir,
        sub,
        roles,
        sites,
        ttl_hours,
        employee,
    } = &cli.command
    {
        return token(
            &mut config,
            data_dir.clone(),
            sub,
            roles,
            sites,
            employee.as_ref(),
            *ttl_hours,
        );
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("qi: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let name = match &cli.command {
        Command::Serve { component } => component.name(),
        Command::Up { .. }
        | Command::Migrate { .. }
        | Command::Maintain
        | Command::Insights { .. }
        | Command::Token { .. }
        | Command::Openapi
        | Command::Hr { .. }
        | Command::Bench { .. }
        | Command::Seed { .. }
        | Command::Watch { .. }
        | Command::Export { .. } => "qi",
    };
    let guard = match runtime.block_on(async { telemetry::init(&config, name) }) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("qi: {e:#}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let result = runtime.block_on(async {
        let result = run(cli.command, config).await;
        // The exporters' last flush blocks, and sends through tonic channels whose tasks
        // run on this runtime: off its workers, but before it ends (after, it fails).
        if let Err(e) = tokio::task::spawn_blocking(move || drop(guard)).await {
            eprintln!("qi: flushing telemetry: {e}");
        }
        result
    });
    drop(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<qi::hr_export::BadLayout>().is_some() => {
            eprintln!("qi: {e:#}");
            ExitCode::from(EX_USAGE)
        }
        Err(e) if e.downcast_ref::<qi::hr::SomeRowsRefused>().is_some() => {
            eprintln!("qi: {e:#}");
            ExitCode::from(EX_SOME_REFUSED)
        }
        Err(e) => {
            eprintln!("qi: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What is allowed past the drain delay and the grace before a stopping process exits
/// regardless: the audit flush, the private cluster's stop and the telemetry flush fit in it.
const STOP_MARGIN: Duration = Duration::from_secs(9);

/// Completes on SIGTERM or Ctrl-C, and from then on holds the process to its ceiling: if it
/// has not exited within the drain delay, the grace and [`STOP_MARGIN`], whatever the
/// database is doing, it exits with status 1.
fn stop_signal(config: &Config) -> impl Future<Output = ()> + use<> {
    let ceiling = config.drain_delay + config.shutdown_grace + STOP_MARGIN;
    async move {
        qi_platform::server::shutdown_signal().await;
        std::thread::spawn(move || {
            std::thread::sleep(ceiling);
            tracing::error!(
                ?ceiling,
                "still stopping when the shutdown ceiling passed: exiting now"
            );
            eprintln!("qi: still stopping {ceiling:?} after the signal: exiting now");
            std::process::exit(1);
        });
    }
}

async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    match command {
        Command::Up {
            data_dir,
            listen,
            demo,
        } => {
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            if let Some(l) = listen {
                config.listen = l;
            }
            secrets::ensure_dev_secrets(&mut config)?;
            let suite = Suite::build(&config).await?;
            let addr = suite.gateway_addr();
            print_welcome(&config, addr);
            let running = suite.run_until_stopped(stop_signal(&config));
            if !demo {
                return running.await;
            }
            // Load the demo alongside serving; a stop (or a failure) ends both.
            tokio::pin!(running);
            tokio::select! {
                stopped = &mut running => return stopped,
                loaded = qi::demo::seed_on_first_start(&config, addr) => match loaded {
                    Ok(Some(r)) => eprintln!(
                        "demo trust loaded in {:.1} s: {} records created, {} staff synced",
                        r.elapsed.as_secs_f64(), r.tally.created, r.staff.received_rows
                    ),
                    Ok(None) => eprintln!("demo trust: loaded before in this data folder"),
                    Err(e) => eprintln!("qi: loading the demo trust failed: {e:#} (retry with `qi seed --demo`)"),
                },
            }
            running.await
        }
        Command::Serve { component } => qi::serve(component, &config, stop_signal(&config)).await,
        Command::Migrate { component } => {
            let roles: Vec<Role> = match component {
                MigrateTarget::All => ALL.to_vec(),
                MigrateTarget::One(role) => vec![role],
            };
            qi::migrate(&roles, &config).await
        }
        Command::Maintain => qi::maintain(&config).await,
        Command::Insights {
            command: InsightsCommand::Rebuild,
        } => {
            let report = qi::insights_rebuild(&config).await?;
            for (service, n) in &report.resources {
                eprintln!("  {service}: {n} resources");
            }
            eprintln!("the read model was rebuilt in {} ms", report.millis);
            Ok(())
        }
        Command::Hr {
            command,
            gateway,
            token,
        } => {
            // A layout that cannot be used is a usage error, found before anything is called.
            let layout = match &command {
                HrCommand::Export {
                    layout: Some(file), ..
                } => qi::hr_export::Layout::load(file)?,
                HrCommand::Export { layout: None, .. }
                | HrCommand::Import { .. }
                | HrCommand::Map { .. }
                | HrCommand::Completions { .. }
                | HrCommand::Reconcile { .. } => qi::hr_export::Layout::default(),
            };
            let token = token.context(
                "a token is needed: --token or QI_TOKEN (qi token --role hr_sync --site '*')",
            )?;
            match command {
                HrCommand::Import {
                    file,
                    full,
                    extract_id,
                } => {
                    let report = qi::hr::import(
                        &gateway,
                        &token,
                        &file,
                        full,
                        &extract_id,
                        &mut std::io::stderr(),
                    )
                    .await?;
                    if report.refused > 0 {
                        if !report.applied_any() {
                            anyhow::bail!(
                                "no row was applied: all {} were refused",
                                report.refused
                            );
                        }
                        return Err(qi::hr::SomeRowsRefused(report.refused).into());
                    }
                }
                HrCommand::Map {
                    command: MapCommand::Import { file },
                } => {
                    let report =
                        qi::hr_map::import(&gateway, &token, &file, &mut std::io::stderr()).await?;
                    if report.refused > 0 {
                        if !report.applied_any() {
                            anyhow::bail!(
                                "no mapping was applied: all {} lines were refused",
                                report.refused
                            );
                        }
                        return Err(qi::hr::SomeRowsRefused(report.refused).into());
                    }
                }
                HrCommand::Completions {
                    command: CompletionsCommand::Import { file, site },
                } => {
                    let parent = format!("sites/{}", site.as_deref().unwrap_or("-"));
                    let report = qi::hr_completions::import(
                        &gateway,
                        &token,
                        &parent,
                        &file,
                        &mut std::io::stderr(),
                    )
                    .await?;
                    if report.refused > 0 {
                        if !report.applied_any() {
                            anyhow::bail!(
                                "no completion was applied: all {} lines were refused",
                                report.refused
                            );
                        }
                        return Err(qi::hr::SomeRowsRefused(report.refused).into());
                    }
                }
                HrCommand::Reconcile { file, site } => {
                    let parent = format!("sites/{}", site.as_deref().unwrap_or("-"));
                    let report = qi::hr_reconcile::reconcile(
                        &gateway,
                        &token,
                        &parent,
                        &file,
                        &mut std::io::stdout(),
                        &mut std::io::stderr(),
                    )
                    .await?;
                    if report.refused > 0 {
                        return Err(qi::hr::SomeRowsRefused(report.refused).into());
                    }
                }
                HrCommand::Map {
                    command: MapCommand::Export,
                } => {
                    let n = qi::hr_map::export(&gateway, &token, &mut std::io::stdout()).await?;
                    eprintln!("{n} mappings written");
                }
                HrCommand::Export { since, layout: _ } => {
                    let report = qi::hr_export::export(
                        &gateway,
                        &token,
                        &since,
                        &layout,
                        &mut std::io::stdout(),
                    )
                    .await?;
                    for c in &report.skipped {
                        eprintln!(
                            "revoked, not written (withdraw it in ESR): employee {}, assignment {}, competence {} {:?}, cursor {}",
                            c.employee_number,
                            c.assignment_number,
                            c.competence_id,
                            c.competence_name,
                            c.cursor
                        );
                    }
                    if report.held_by_esr > 0 {
                        eprintln!(
                            "{} completions ESR holds already (imported from ESR, or by Inter Authority Transfer) not written; a layout with held_by_esr = \"row\" writes them",
                            report.held_by_esr
                        );
                    }
                    match report.last_cursor {
                        Some(c) => {
                            eprintln!("{} rows written; resume with: --since {c}", report.written)
                        }
                        None => eprintln!("no changes after {since:?}"),
                    }
                }
            }
            Ok(())
        }
        Command::Bench {
            scenarios,
            json,
            quick,
        } => {
            let effort = if quick {
                qi::bench::Effort::QUICK
            } else {
                qi::bench::Effort::FULL
            };
            qi::bench::run(&scenarios, effort, json).await.map(|_| ())
        }
        Command::Seed {
            gateway,
            token,
            demo: true,
        } => {
            // Paced for the gateway's rate limit as this environment configures it.
            let options = qi::demo::Options::paced_for(&config);
            let r = qi::demo::seed(&gateway, &token, &options).await?;
            eprintln!(
                "demo trust in {:.1} s: {} created, {} already there, {} advanced; staff: {} rows, {} inserted, {} updated, {} unchanged",
                r.elapsed.as_secs_f64(),
                r.tally.created,
                r.tally.existing,
                r.tally.advanced,
                r.staff.received_rows,
                r.staff.inserted,
                r.staff.updated,
                r.staff.unchanged
            );
            Ok(())
        }
        Command::Seed {
            gateway,
            token,
            demo: false,
        } => {
            let seeded = qi::seed::reference_trust(&gateway, &token).await?;
            eprintln!(
                "reference trust: {} created, {} already there",
                seeded.created, seeded.existing
            );
            Ok(())
        }
        Command::Watch {
            service,
            from,
            cursor_file,
            now,
            collections,
            until_caught_up,
            gateway,
            token,
            token_command,
            internal,
            service_url,
        } => {
            let internal = match (internal, service_url) {
                (Some(name), Some(service_url)) => Some(qi::watch::Internal {
                    service_url,
                    name,
                    key: config.access_keys.current.clone().ok_or_else(|| {
                        anyhow::anyhow!("--as needs QI_ACCESS_KEY, the key the services trust")
                    })?,
                }),
                _ => None,
            };
            let args = qi::watch::WatchArgs {
                internal,
                service,
                gateway,
                token,
                token_command,
                from,
                cursor_file,
                now,
                collections,
                until_caught_up,
            };
            qi::watch::run(&args, &mut std::io::stdout().lock()).await
        }
        Command::Export {
            collection,
            since,
            site,
            format,
            page_size,
            gateway,
            token,
        } => {
            let args = qi::export::ExportArgs {
                page_size,
                collection,
                since,
                site,
                format: match format {
                    ExportFormat::Jsonl => qi::export::Format::Jsonl,
                    ExportFormat::Csv => qi::export::Format::Csv,
                },
                gateway,
                token,
            };
            let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let done =
                qi::export::run(&args, &mut out, &mut std::io::stderr(), on_terminal).await?;
            eprintln!("{} {} written", done.rows, args.collection);
            if let Some(resume) = done.resume {
                eprintln!(
                    "next run: --since {}",
                    resume.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                );
            }
            Ok(())
        }
        Command::Token { .. } | Command::Openapi => {
            unreachable!("handled before the runtime starts")
        }
    }
}

fn token(
    config: &mut Config,
    data_dir: Option<PathBuf>,
    sub: &str,
    roles: &[TokenRole],
    sites: &[String],
    employee: Option<&qi_platform::EmployeeNumber>,
    ttl_hours: u64,
) -> ExitCode {
    let roles: Vec<String> = roles.iter().map(|r| r.claim()).collect();
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    let secret = match config.jwt.hs256_secret.clone() {
        Some(s) => Ok(s),
        None => secrets::read_jwt_secret(&config.data_dir),
    };
    let minted = secret.and_then(|s| {
        qi_gateway::auth::mint_dev_token_for(
            &s,
            &config.jwt,
            sub,
            &roles,
            sites,
            employee,
            Duration::from_secs(ttl_hours * 3600),
        )
    });
    match minted {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qi: {e:#}");
            ExitCode::from(EX_USAGE)
        }
    }
}

fn print_welcome(config: &Config, addr: SocketAddr) {
    let exe = std::env::args().next().unwrap_or_else(|| "qi".into());
    let dir = config.data_dir.display();
    println!(
        "\nQI Suite is up. Gateway: {addr} (plaintext gRPC; health and reflection need no token)\n\
         \n  Get a token:  TOKEN=$({exe} token --data-dir {dir} --sub me --role admin --site '*')\n\
         \x20 Call it:      grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" {addr} list\n\
         \n  Stop with Ctrl-C; data stays in {dir} for the next start.\n"
    );
}
