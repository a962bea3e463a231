//! `loadtest`: load scenarios against a running commerce server, with latency histograms, a
//! JSON result file, SVG charts and invariant checks by SQL.
//!
//! ```sh
//! loadtest orders --users 10000 --products 1000 --concurrency 64 --duration 30 \
//!     --database-url postgres://postgres@127.0.0.1:5432/bench --out orders.json --chart orders.svg
//! loadtest pgbench-script --first-user-id 1 --users 10000 > orders.sql
//! ```
//!
//! Every scenario creates its own data through the admin API (the server's `dev` auth mode),
//! then measures. Exit status: 0 when every expectation and invariant held, 2 when one failed,
//! 1 when the tool itself could not run.

mod chart;
mod checks;
mod client;
mod load;
mod pgbench;
mod report;
mod scenarios;
mod setup;
mod soak_chart;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::client::{Client, ClientOptions};
use crate::scenarios::{Context, Outcome};

#[derive(Parser, Debug)]
#[command(version, about = "Load scenarios against the commerce GraphQL server")]
struct Cli {
    /// The server's base URL.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// The server's database: when given, invariants are checked by SQL after the scenario.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Write the result as JSON here.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Timeout of one HTTP request, in seconds.
    #[arg(long, global = true, default_value_t = 30.0)]
    timeout: f64,
    /// Setup requests in flight at once.
    #[arg(long, global = true, default_value_t = 64)]
    setup_concurrency: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Random paid orders of 1-3 products, flat out or at a fixed rate.
    Orders(scenarios::orders::OrdersArgs),
    /// Many customers buy one product until it is sold out; exactly its stock must sell.
    HotProduct(scenarios::hot_product::HotProductArgs),
    /// Many customers ask for few coupons at once; exactly that many must win.
    CouponStorm(scenarios::coupon_storm::CouponStormArgs),
    /// One read (product, products, balance or top-sellers), flat out or at a fixed rate.
    Reads(scenarios::reads::ReadsArgs),
    /// Many WebSocket subscribers of rankingChanged; how fast a new #1 reaches them all.
    Subscribers(scenarios::subscribers::SubscribersArgs),
    /// Print a pgbench script doing the SQL of one placeOrder.
    PgbenchScript(pgbench::PgbenchArgs),
    /// Draw the samples of the soak test (tests/api/soak.rs) as SVG charts.
    SoakChart(soak_chart::SoakChartArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let options = ClientOptions {
        timeout: Duration::from_secs_f64(cli.timeout),
    };
    let ctx = Context {
        url: cli.url.clone(),
        client: Client::new(&cli.url, options)?,
        client_options: options,
        setup_concurrency: cli.setup_concurrency.max(1),
        sql_checks: cli.database_url.is_some(),
    };
    let Outcome {
        mut report,
        initial_stock,
    } = match &cli.command {
        Command::Orders(args) => scenarios::orders::run(&ctx, args).await?,
        Command::HotProduct(args) => scenarios::hot_product::run(&ctx, args).await?,
        Command::CouponStorm(args) => scenarios::coupon_storm::run(&ctx, args).await?,
        Command::Reads(args) => scenarios::reads::run(&ctx, args).await?,
        Command::Subscribers(args) => scenarios::subscribers::run(&ctx, args).await?,
        Command::PgbenchScript(args) => {
            print!("{}", pgbench::script(args));
            return Ok(ExitCode::SUCCESS);
        }
        Command::SoakChart(args) => {
            soak_chart::run(args)?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    if let Some(url) = &cli.database_url {
        report
            .checks
            .extend(checks::run(url, &initial_stock).await?);
    }
    report.print();
    if let Some(path) = &cli.out {
        report.write(path)?;
        println!("result: {}", path.display());
    }
    if report.passed() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!();
    eprintln!("!!!!!!!! {} FAILED !!!!!!!!", report.scenario);
    for check in report.checks.iter().filter(|check| !check.passed) {
        eprintln!("!!! {}: {}", check.name, check.detail);
    }
    Ok(ExitCode::from(2))
}
