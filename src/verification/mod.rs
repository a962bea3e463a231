//! `commerce verify`: every invariant of the data model checked on a live database, in one
//! consistent snapshot (PostgreSQL `REPEATABLE READ READ ONLY`, MySQL a `REPEATABLE READ READ
//! ONLY` transaction, whose first read fixes the snapshot; SQLite one read transaction, which in
//! WAL mode never blocks the writer). Each invariant is a few set-based queries (aggregates and
//! anti-joins) returning only the rows that break it; nothing is locked.
//!
//! - [`checks`]: the invariants, each as what the writers guarantee and the SQL that finds the
//!   rows breaking it.
//! - [`worker`]: the periodic run inside the server, with its result in `/metrics`.

pub mod checks;
pub mod worker;

use std::fmt;
use std::time::{Duration, Instant};

use sea_orm::{
    AccessMode, ConnectionTrait, DbBackend, DbErr, IsolationLevel, Statement, TransactionOptions,
    TransactionTrait,
};
use serde::Serialize;

use crate::infra::db::Database;
pub use checks::{INVARIANTS, Invariant};

/// Rows named per invariant; the count says how many more broke it.
const EXAMPLES: usize = 20;

/// What one invariant found: how many rows break it, and the first of them.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub invariant: Invariant,
    pub violations: usize,
    pub examples: Vec<String>,
}

/// The result of a run: one finding per invariant, the rows read, the time taken.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub rows_checked: i64,
    #[serde(serialize_with = "as_millis")]
    pub took: Duration,
}

fn as_millis<S: serde::Serializer>(took: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(took.as_millis())
}

impl Report {
    /// Rows breaking any invariant.
    pub fn violations(&self) -> usize {
        self.findings.iter().map(|f| f.violations).sum()
    }

    /// The finding of one invariant.
    pub fn of(&self, invariant: Invariant) -> &Finding {
        self.findings
            .iter()
            .find(|f| f.invariant == invariant)
            .expect("every invariant is checked")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            let name = finding.invariant.name();
            if finding.violations == 0 {
                writeln!(f, "ok    {name}: {}", finding.invariant.statement())?;
                continue;
            }
            writeln!(
                f,
                "FAIL  {name}: {} ({} violations)",
                finding.invariant.statement(),
                finding.violations
            )?;
            for example in &finding.examples {
                writeln!(f, "      {example}")?;
            }
            if finding.violations > finding.examples.len() {
                writeln!(
                    f,
                    "      ... and {} more",
                    finding.violations - finding.examples.len()
                )?;
            }
        }
        write!(
            f,
            "{} violations of {} invariants; {} rows checked in {} ms",
            self.violations(),
            self.findings.len(),
            self.rows_checked,
            self.took.as_millis()
        )
    }
}

/// Checks every invariant in one read-only snapshot of `db`.
pub async fn verify(db: &Database) -> Result<Report, DbErr> {
    let started = Instant::now();
    let backend = db.backend();
    let snapshot = match backend {
        DbBackend::Sqlite => TransactionOptions::default(),
        _ => TransactionOptions {
            isolation_level: Some(IsolationLevel::RepeatableRead),
            access_mode: Some(AccessMode::ReadOnly),
            sqlite_transaction_mode: None,
        },
    };
    let txn = db.conn().begin_with_options(snapshot).await?;
    // the first read: on MySQL it fixes the snapshot every later query sees
    let rows_checked = txn
        .query_one_raw(Statement::from_string(
            backend,
            checks::in_dialect(checks::ROWS_CHECKED, backend),
        ))
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    let mut findings = Vec::with_capacity(checks::INVARIANTS.len());
    for invariant in checks::INVARIANTS {
        let mut finding = Finding {
            invariant,
            violations: 0,
            examples: vec![],
        };
        for check in invariant.checks() {
            let rows = txn
                .query_all_raw(Statement::from_string(backend, check.sql(backend)))
                .await?;
            finding.violations += rows.len();
            for row in rows
                .iter()
                .take(EXAMPLES.saturating_sub(finding.examples.len()))
            {
                finding.examples.push(check.describe(row)?);
            }
        }
        findings.push(finding);
    }
    txn.rollback().await?;
    Ok(Report {
        findings,
        rows_checked,
        took: started.elapsed(),
    })
}
