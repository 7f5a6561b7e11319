//! Faults that tests inject into a debug build, to show how a job and the server cope with
//! a bug: `SLUICE_FAILPOINTS=panic-once:<table>:<rows>[,...]` makes the source task of table
//! `<table>` panic once it has read `<rows>` rows, once per process. Release builds compile
//! the check away; the variable means nothing to them.

/// Called by a source task after each batch it reads: panics if a failpoint says so.
#[cfg(debug_assertions)]
pub fn source_read(table: &str, rows_read: u64) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::OnceLock;

    /// A `panic-once` point and whether it has fired.
    struct PanicOnce {
        table: String,
        rows: u64,
        fired: AtomicBool,
    }

    static POINTS: OnceLock<Vec<PanicOnce>> = OnceLock::new();
    let points = POINTS.get_or_init(|| {
        let spec = std::env::var("SLUICE_FAILPOINTS").unwrap_or_default();
        spec.split(',')
            .filter_map(|point| {
                let mut parts = point.trim().splitn(3, ':');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("panic-once"), Some(table), Some(rows)) => Some(PanicOnce {
                        table: table.to_string(),
                        rows: rows.parse().ok()?,
                        fired: AtomicBool::new(false),
                    }),
                    _ => None,
                }
            })
            .collect()
    });
    for point in points {
        if point.table == table
            && rows_read >= point.rows
            && !point.fired.swap(true, Ordering::SeqCst)
        {
            panic!("failpoint: the source of table '{table}' panics after {rows_read} rows");
        }
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn source_read(_table: &str, _rows_read: u64) {}
