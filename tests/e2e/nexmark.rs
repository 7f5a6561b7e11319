//! The Nexmark jobs of `jobs/nexmark/` (Flink's Nexmark queries, unchanged) against DuckDB:
//! the same seeded events are written out once, and each query's output must equal what
//! DuckDB computes from them, row for row.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{duckdb_query, sluice_run, JobDir, REPO};

/// 300,000 events at 3,000 a second: 100 seconds of event time, ten 10-second windows.
const EVENTS: &str = "300000";
const RATE: &str = "3000";
const SEED_AND_TIME: &str =
    "'connector' = 'nexmark', 'seed' = '42', 'base-time' = '1700000000000',";

/// `jobs/nexmark/<query>.sql` with this test's events, seed and start, writing Parquet to
/// `out` instead of the blackhole.
fn job_text(query: &str, out: &Path) -> String {
    let path = Path::new(REPO).join(format!("jobs/nexmark/{query}.sql"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let replace = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "{} has no {from}", path.display());
        text.replace(from, to)
    };
    let text = replace(
        text,
        "'events.num' = '10000000'",
        &format!("'events.num' = '{EVENTS}'"),
    );
    let text = replace(
        text,
        "'first-event.rate' = '10000000'",
        &format!("'first-event.rate' = '{RATE}'"),
    );
    let text = replace(text, "'connector' = 'nexmark',", SEED_AND_TIME);
    replace(
        text,
        "'connector' = 'blackhole'",
        &format!(
            "'connector' = 'filesystem', 'path' = '{}', 'format' = 'parquet'",
            out.display()
        ),
    )
}

/// Writes the persons, auctions and bids of the test's events to Parquet (views p, a, b).
fn events(dir: &JobDir) -> [(&'static str, PathBuf); 3] {
    let q0 = job_text("q0", &dir.path().join("unused"));
    let ddl = &q0[..q0.find("CREATE TABLE nexmark_q0").expect("q0's sink")];
    let mut job = ddl.to_string();
    let columns = [
        ("p", "person", "id BIGINT, name STRING, emailAddress STRING, creditCard STRING, city STRING, state STRING, `dateTime` TIMESTAMP(3), extra STRING"),
        ("a", "auction", "id BIGINT, itemName STRING, description STRING, initialBid BIGINT, reserve BIGINT, `dateTime` TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra STRING"),
        ("b", "bid", "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, `dateTime` TIMESTAMP(3), extra STRING"),
    ];
    let outputs = columns.map(|(view, table, columns)| {
        let out = dir.path().join(format!("events_{table}"));
        job.push_str(&format!(
            "CREATE TABLE {view}_out ({columns}) WITH ('connector' = 'filesystem', \
             'path' = '{}', 'format' = 'parquet');\nINSERT INTO {view}_out SELECT * FROM {table};\n",
            out.display()
        ));
        (view, out)
    });
    let path = dir.write("events.sql", &job);
    sluice_run(&path).output().assert_success();
    outputs
}

/// Runs `query` and asserts its output equals `expected` (DuckDB SQL over views p, a, b)
/// as multisets, comparing the columns `actual_columns` of the output.
fn check(
    dir: &JobDir,
    events: &[(&str, PathBuf)],
    query: &str,
    actual_columns: &str,
    expected: &str,
) {
    let out = dir.path().join(format!("out_{query}"));
    let job = dir.write(&format!("{query}.sql"), &job_text(query, &out));
    sluice_run(&job).output().assert_success();
    let mut views: Vec<(&str, &Path)> = events.iter().map(|(v, p)| (*v, p.as_path())).collect();
    views.push(("actual", &out));
    let sql = format!(
        "WITH expected AS ({expected}), got AS (SELECT {actual_columns} FROM actual)
         SELECT (SELECT count(*) FROM expected) AS expected_rows,
                (SELECT count(*) FROM got) AS got_rows,
                (SELECT count(*) FROM (SELECT * FROM expected EXCEPT ALL SELECT * FROM got)) AS missing,
                (SELECT count(*) FROM (SELECT * FROM got EXCEPT ALL SELECT * FROM expected)) AS extra"
    );
    let row = &duckdb_query(&views, &sql)[0];
    let n = |k: &str| row[k].as_u64().unwrap_or(u64::MAX);
    assert!(
        n("expected_rows") > 0,
        "{query}: DuckDB expects no rows: {row}"
    );
    assert_eq!((n("missing"), n("extra")), (0, 0), "{query}: {row}");
}

#[test]
fn nexmark_queries_equal_duckdb_over_the_same_events() {
    let dir = JobDir::new();
    let events = events(&dir);
    let counts = duckdb_query(
        &events.iter().map(|(v, p)| (*v, p.as_path())).collect::<Vec<_>>(),
        "SELECT (SELECT count(*) FROM p) AS p, (SELECT count(*) FROM a) AS a, (SELECT count(*) FROM b) AS b",
    );
    // Flink's proportions: 1 person, 3 auctions, 46 bids in every 50 events.
    assert_eq!(
        counts[0],
        serde_json::json!({"p": 6000, "a": 18000, "b": 276000})
    );
    let ms = |c: &str| format!("epoch_ms({c})");
    check(
        &dir,
        &events,
        "q0",
        "auction, bidder, price, epoch_ms(dateTime), extra",
        &format!(
            "SELECT auction, bidder, price, {}, extra FROM b",
            ms("dateTime")
        ),
    );
    check(
        &dir,
        &events,
        "q1",
        "auction, bidder, CAST(price AS DECIMAL(23, 3)), epoch_ms(dateTime), extra",
        &format!(
            "SELECT auction, bidder, CAST(0.908 * price AS DECIMAL(23, 3)), {}, extra FROM b",
            ms("dateTime")
        ),
    );
    check(
        &dir,
        &events,
        "q2",
        "auction, price",
        "SELECT auction, price FROM b WHERE auction % 123 = 0",
    );
    // HOP 10 s every 2 s: a bid is in the five windows starting at its 2-second slice and
    // the four before.
    check(
        &dir,
        &events,
        "q5",
        "auction, num",
        &format!(
            "WITH windows AS (
               SELECT auction, ({t} // 2000) * 2000 - i * 2000 AS start
               FROM b CROSS JOIN range(5) AS r(i)),
             counts AS (SELECT auction, start, count(*) AS num FROM windows GROUP BY ALL),
             top AS (SELECT start, max(num) AS maxn FROM counts GROUP BY start)
             SELECT auction, num FROM counts JOIN top USING (start) WHERE num >= maxn",
            t = ms("dateTime")
        ),
    );
    // The sink's columns get (auction, price, bidder, ...) by position, as in Flink.
    check(
        &dir,
        &events,
        "q7",
        "auction, bidder, price, epoch_ms(dateTime), extra",
        &format!(
            "WITH top AS (
               SELECT ({t} // 10000) * 10000 + 10000 AS window_end, max(price) AS maxprice
               FROM b GROUP BY ALL)
             SELECT b.auction, b.price, b.bidder, {t}, b.extra
             FROM b JOIN top ON b.price = top.maxprice
             WHERE {t} BETWEEN top.window_end - 10000 AND top.window_end",
            t = ms("b.dateTime")
        ),
    );
    check(
        &dir,
        &events,
        "q8",
        "id, name, epoch_ms(stime)",
        &format!(
            "WITH people AS (SELECT id, name, ({p} // 10000) * 10000 AS start FROM p GROUP BY ALL),
                  sellers AS (SELECT seller, ({a} // 10000) * 10000 AS start FROM a GROUP BY ALL)
             SELECT id, name, people.start FROM people JOIN sellers
               ON people.id = sellers.seller AND people.start = sellers.start",
            p = ms("p.dateTime"),
            a = ms("a.dateTime")
        ),
    );
}

#[test]
fn nexmark_tables_must_declare_flinks_columns() {
    let dir = JobDir::new();
    let job = dir.write(
        "bad.sql",
        "CREATE TABLE nx (event_type INT, bid ROW<auction BIGINT>) WITH ('connector' = 'nexmark');
CREATE TABLE out (event_type INT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT event_type FROM nx;",
    );
    let outcome = sluice_run(&job).output();
    outcome.assert_failure();
    let line: &str = outcome.error_line();
    assert!(
        line.contains("table 'nx'") && line.contains("event_type INT, person ROW<"),
        "{line}"
    );
}
