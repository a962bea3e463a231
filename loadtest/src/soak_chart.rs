//! `soak-chart`: draws the samples of the soak test (`target/soak/samples.csv`, written by
//! `tests/api/soak.rs`) as two SVG charts: what must level off (resident memory, open files,
//! pool connections, Redis memory) and the outbox's PENDING events.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use clap::Args;

use crate::chart::{Labels, Series, line_chart};

#[derive(Args, Debug, Clone)]
pub struct SoakChartArgs {
    /// The samples (CSV with a header: seconds, rss_mib, open_files, pool_connections,
    /// outbox_pending, redis_mib, ...).
    #[arg(long, default_value = "target/soak/samples.csv")]
    pub csv: PathBuf,
    /// Where to write the charts: PREFIX-resources.svg and PREFIX-outbox.svg.
    #[arg(long, default_value = "soak")]
    pub prefix: String,
}

/// The column `name` of the CSV as (minutes, value) points.
fn column(header: &[&str], rows: &[Vec<f64>], name: &str) -> anyhow::Result<Vec<(f64, f64)>> {
    let index = header
        .iter()
        .position(|column| *column == name)
        .ok_or_else(|| anyhow!("no column {name}"))?;
    Ok(rows.iter().map(|row| (row[0] / 60.0, row[index])).collect())
}

pub fn run(args: &SoakChartArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.csv)
        .with_context(|| format!("reading {}", args.csv.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows = lines
        .map(|line| {
            line.split(',')
                .map(str::parse)
                .collect::<Result<Vec<f64>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()
        .context("a sample that is not numbers")?;
    let series = |name: &str, title: &str, color| -> anyhow::Result<Series> {
        Ok(Series {
            name: title.to_owned(),
            color,
            points: column(&header, &rows, name)?,
        })
    };
    let resources = line_chart(
        &Labels {
            title: "Soak: what must level off",
            x: "minutes",
            y: "MiB / count",
        },
        &[
            series("rss_mib", "server RSS (MiB)", "#1f77b4")?,
            series("open_files", "open files", "#ff7f0e")?,
            series("pool_connections", "pool connections", "#2ca02c")?,
            series("redis_mib", "Redis memory (MiB)", "#d62728")?,
        ],
    );
    let outbox = line_chart(
        &Labels {
            title: "Soak: outbox events waiting (the platform fails 10 s of every 30)",
            x: "minutes",
            y: "PENDING events",
        },
        &[series("outbox_pending", "outbox PENDING", "#9467bd")?],
    );
    for (suffix, svg) in [("resources", resources), ("outbox", outbox)] {
        let path = format!("{}-{suffix}.svg", args.prefix);
        std::fs::write(&path, svg).with_context(|| format!("writing {path}"))?;
        println!("chart: {path}");
    }
    Ok(())
}
