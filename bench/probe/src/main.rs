//! Probes for bench/replication.sh, the same for duet and PostgreSQL:
//!
//!   repl-probe lag PRIMARY_URL STANDBY_URL SECONDS
//!       every 20 ms commits a row on the primary and times how long until
//!       a query on the standby sees it; prints "p50_ms p99_ms samples".
//!   repl-probe promote STANDBY_URL 'PROMOTE SQL'
//!       runs the promotion statement, then retries an INSERT until one
//!       commits; prints the milliseconds from promote to that commit.
//!   repl-probe wait-lsn PRIMARY_URL STANDBY_URL 'PRIMARY LSN SQL' 'STANDBY LSN SQL'
//!       waits until the standby's LSN reaches the primary's; prints ms.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio_postgres::{Client, NoTls};

async fn connect(url: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(conn);
    Ok(client)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn lag(primary: &str, standby: &str, seconds: u64) -> Result<()> {
    let p = connect(primary).await?;
    let s = connect(standby).await?;
    p.batch_execute("CREATE TABLE IF NOT EXISTS lag_probe (id int primary key)")
        .await?;
    // Wait for the table to exist on the standby.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s
        .query("SELECT 1 FROM lag_probe LIMIT 1", &[])
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("lag_probe never appeared on the standby");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let insert = p.prepare("INSERT INTO lag_probe VALUES ($1)").await?;
    let probe = s.prepare("SELECT 1 FROM lag_probe WHERE id = $1").await?;
    let start: i32 = (std::process::id() as i32 % 1000) * 1_000_000;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut samples = Vec::new();
    let mut id = start;
    while Instant::now() < end {
        id += 1;
        p.execute(&insert, &[&id]).await?;
        let committed = Instant::now();
        loop {
            if !s.query(&probe, &[&id]).await?.is_empty() {
                break;
            }
            if committed.elapsed() > Duration::from_secs(30) {
                bail!("row {id} not visible on the standby after 30 s");
            }
        }
        samples.push(committed.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{:.2} {:.2} {}",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.len()
    );
    Ok(())
}

async fn promote(standby: &str, promote_sql: &str) -> Result<()> {
    let s = connect(standby).await?;
    let started = Instant::now();
    s.batch_execute(promote_sql).await?;
    let deadline = started + Duration::from_secs(60);
    loop {
        match s
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS promoted (a int); INSERT INTO promoted VALUES (1)",
            )
            .await
        {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    println!("{:.1}", started.elapsed().as_secs_f64() * 1000.0);
    Ok(())
}

async fn lsn_value(c: &Client, sql: &str) -> Result<u64> {
    let text: String = c.query_one(sql, &[]).await?.get(0);
    let (hi, lo) = text.split_once('/').context("LSN as X/X")?;
    Ok((u64::from_str_radix(hi, 16)? << 32) | u64::from_str_radix(lo, 16)?)
}

async fn wait_lsn(primary: &str, standby: &str, p_sql: &str, s_sql: &str) -> Result<()> {
    let p = connect(primary).await?;
    let s = connect(standby).await?;
    let target = lsn_value(&p, p_sql).await?;
    let started = Instant::now();
    while lsn_value(&s, s_sql).await? < target {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("standby did not catch up in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("{:.1}", started.elapsed().as_secs_f64() * 1000.0);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["lag", p, s, secs] => lag(p, s, secs.parse()?).await,
        ["promote", s, sql] => promote(s, sql).await,
        ["wait-lsn", p, s, psql, ssql] => wait_lsn(p, s, psql, ssql).await,
        _ => bail!("usage: repl-probe lag|promote|wait-lsn ... (see the source)"),
    }
}
