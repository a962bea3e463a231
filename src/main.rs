//! The `commerce` command: serve (default), migrate, seed, token, schema, verify.

use clap::{Parser, Subcommand};
use commerce::app::Application;
use commerce::auth::{Authenticator, Role};
use commerce::config::{LogFormat, Settings};
use commerce::infra::db::Database;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: a request allocates many small short-lived
/// objects, and glibc's malloc was the largest item of the server's CPU profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "commerce",
    version,
    about = "GraphQL backend of the e-commerce order service"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the GraphQL API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Migrate, then add the demo data of the scenarios to an empty database.
    Seed,
    /// Print a JWT for a user (needs JWT_SECRET).
    Token {
        /// The user id (the token's subject).
        #[arg(long)]
        user: i64,
        /// Give the token the ADMIN role.
        #[arg(long)]
        admin: bool,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: i64,
    },
    /// Print the GraphQL schema (SDL), as checked in to schema.graphql.
    Schema,
    /// Check every invariant on the database in one consistent snapshot (never blocking
    /// writers); print a report. Exits 0 when clean, 1 on any violation, 2 when it cannot run.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_logging(cli.settings.server.log_format);
    let outcome = run(cli).await;
    commerce::telemetry::flush();
    if let Err(err) = outcome {
        eprintln!("error: {err:#}");
        std::process::exit(2);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings.clone()).await?;
            let addr = app.local_addr();
            tracing::info!(%addr, auth_mode = ?settings.auth.effective_auth_mode(), "listening");
            println!("GraphiQL: http://{addr}/graphql");
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let db = connect(&settings).await?;
            db.migrate().await?;
            println!("migrations applied");
        }
        Command::Seed => {
            let db = connect(&settings).await?;
            db.migrate().await?;
            if commerce::seed::seed_demo(&db).await? {
                println!("demo data added");
            } else {
                println!("the database already has users: nothing added");
            }
        }
        Command::Token {
            user,
            admin,
            ttl_secs,
        } => {
            let secret = settings
                .auth
                .jwt_secret
                .as_ref()
                .map(|s| s.expose())
                .ok_or_else(|| {
                    anyhow::anyhow!("invalid setting JWT_SECRET: needed to mint a token")
                })?;
            let role = if admin { Role::Admin } else { Role::Customer };
            let auth = Authenticator::new(commerce::config::AuthMode::Jwt, Some(secret));
            println!("{}", auth.mint(user, role, ttl_secs)?);
        }
        Command::Verify { json } => {
            let db = connect(&settings).await?;
            let report = commerce::verification::verify(&db).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            if report.violations() > 0 {
                std::process::exit(1);
            }
        }
        Command::Schema => print!("{}", commerce::schema::sdl()),
    }
    Ok(())
}

async fn connect(settings: &Settings) -> anyhow::Result<Database> {
    settings.validate()?;
    Ok(Database::connect(
        settings.database.database_url(),
        settings.database.db_max_connections(),
        settings.database.db_acquire_timeout(),
    )
    .await?)
}

/// Logs to stderr (RUST_LOG's filter, `LOG_FORMAT`) and, when an OTLP endpoint is set, exports
/// spans at INFO and above (database statements included) over OTLP (see `telemetry`).
fn init_logging(format: LogFormat) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().boxed(),
    };
    let traces = match commerce::telemetry::layer() {
        Ok(traces) => traces,
        Err(err) => {
            eprintln!("error: OpenTelemetry traces: {err:#}");
            std::process::exit(2);
        }
    };
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces.with_filter(tracing_subscriber::filter::LevelFilter::INFO))
        .init();
}
