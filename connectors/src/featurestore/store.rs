//! The local feature store: feature groups, the online store and the offline store's queue,
//! kept on disk in one embedded database (redb) under the store's folder.
//!
//! Every change goes through one committer thread that applies whatever requests are waiting
//! in a single transaction and commits it durably before any of them is answered: a crash
//! loses no acknowledged put, and many concurrent puts share one disk sync.
//!
//! The online store keeps, per record identifier, the record with the newest event time: a
//! put whose event time is not newer than the stored one changes nothing online (AWS's rule,
//! which makes replays harmless). Every accepted put is also queued for the offline store;
//! [`LocalStore::flush_offline`] (run periodically, and when the store closes) writes the
//! queue as Parquet files in SageMaker's layout and removes what it wrote from the queue.
//!
//! One process opens a store folder at a time (the database file is locked); within a process
//! [`LocalStore::open`] hands every caller the same store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::model::{validate_record, FeatureGroup, FeatureValue, TtlDuration, ValidRecord};
use super::offline::{OfflineRow, OfflineWriter};

const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("groups");
const ONLINE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("online");
const OFFLINE: TableDefinition<u64, &[u8]> = TableDefinition::new("offline_queue");

/// The online table inside a write transaction.
type OnlineTable<'t> = redb::Table<'t, (&'static str, &'static str), &'static [u8]>;

/// Requests waiting for the committer are applied together, up to this many per transaction.
const MAX_BATCH: usize = 1024;

/// Offline rows written per flush at most (the rest waits for the next flush).
const FLUSH_ROWS: usize = 200_000;

/// What went wrong, in the terms of the AWS error codes the server answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// `ResourceNotFound`: no such feature group.
    NotFound(String),
    /// `ValidationError`: the request is invalid (unknown feature, wrong type, ...).
    Validation(String),
    /// `ResourceInUse`: a feature group of that name exists.
    InUse(String),
    /// `InternalFailure`: the store itself failed (disk full, ...).
    Internal(String),
}

impl StoreError {
    pub fn message(&self) -> &str {
        match self {
            StoreError::NotFound(m)
            | StoreError::Validation(m)
            | StoreError::InUse(m)
            | StoreError::Internal(m) => m,
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("local feature store: {e}"))
}

/// Which stores a put or delete reaches (`TargetStores`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetStore {
    OnlineStore,
    OfflineStore,
}

/// `DeletionMode` of DeleteRecord.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DeletionMode {
    #[default]
    SoftDelete,
    HardDelete,
}

/// A change to the store.
#[derive(Debug, Clone)]
pub enum Change {
    Put {
        group: String,
        record: Vec<FeatureValue>,
        target_stores: Option<Vec<TargetStore>>,
        ttl: Option<TtlDuration>,
    },
    Delete {
        group: String,
        identifier: String,
        event_time: String,
        target_stores: Option<Vec<TargetStore>>,
        mode: DeletionMode,
    },
}

/// What a put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOutcome {
    /// The online store now holds this record (its event time was newer).
    pub online_applied: bool,
}

/// A record as the online store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OnlineRecord {
    values: Vec<FeatureValue>,
    /// Microseconds since the epoch.
    event_time: i64,
    #[serde(default)]
    expires_at: Option<i64>,
    /// Soft-deleted: kept only so that older puts stay rejected.
    #[serde(default)]
    deleted: bool,
}

/// A record read from the online store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub values: Vec<FeatureValue>,
    /// When the record expires (microseconds since the epoch), if it has a TTL.
    pub expires_at: Option<i64>,
}

type Reply = oneshot::Sender<Result<PutOutcome, StoreError>>;

/// The committer's queue.
#[derive(Default)]
struct Queue {
    waiting: Vec<(Change, Reply)>,
    closed: bool,
}

struct Shared {
    db: Database,
    dir: PathBuf,
    queue: Mutex<Queue>,
    wake: Condvar,
    offline: OfflineWriter,
    /// Held while offline rows are written, so two flushes never write the same rows.
    flushing: Mutex<()>,
    stop: AtomicBool,
}

/// An open local feature store.
pub struct LocalStore {
    shared: Arc<Shared>,
    settings: StoreSettings,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Where the store's settings come from when it is opened.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Region and account used in ARNs and offline paths.
    pub region: String,
    pub account: String,
    /// How often queued offline rows are written as Parquet (None: only on demand).
    pub offline_flush: Option<Duration>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            offline_flush: Some(Duration::from_secs(10)),
        }
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<LocalStore>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<LocalStore>>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

impl LocalStore {
    /// Opens (creating if needed) the store in folder `dir`. Within one process every caller
    /// gets the same store.
    pub fn open(dir: &Path, settings: StoreSettings) -> Result<Arc<LocalStore>, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            internal(format!(
                "cannot create the store folder {}: {e}",
                dir.display()
            ))
        })?;
        let key = dir
            .canonicalize()
            .map_err(|e| internal(format!("{}: {e}", dir.display())))?;
        let mut open = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = open.get(&key).and_then(Weak::upgrade) {
            return Ok(store);
        }
        let path = key.join("store.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => internal(format!(
                "{} is in use by another process (a running `sluice featurestore serve` or job)",
                path.display()
            )),
            e => internal(format!("{}: {e}", path.display())),
        })?;
        let txn = db.begin_write().map_err(internal)?;
        txn.open_table(GROUPS).map_err(internal)?;
        txn.open_table(ONLINE).map_err(internal)?;
        txn.open_table(OFFLINE).map_err(internal)?;
        txn.commit().map_err(internal)?;
        let shared = Arc::new(Shared {
            db,
            dir: key.clone(),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            offline: OfflineWriter::new(&key, &settings.region, &settings.account),
            flushing: Mutex::new(()),
            stop: AtomicBool::new(false),
        });
        let mut threads = Vec::new();
        let committer = Arc::clone(&shared);
        threads.push(
            std::thread::Builder::new()
                .name("featurestore-commit".into())
                .spawn(move || committer.commit_loop())
                .map_err(internal)?,
        );
        if let Some(every) = settings.offline_flush {
            let flusher = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name("featurestore-offline".into())
                    .spawn(move || flusher.flush_loop(every))
                    .map_err(internal)?,
            );
        }
        let store = Arc::new(LocalStore {
            shared,
            settings,
            threads: Mutex::new(threads),
        });
        open.insert(key, Arc::downgrade(&store));
        Ok(store)
    }

    pub fn region(&self) -> &str {
        &self.settings.region
    }

    pub fn account(&self) -> &str {
        &self.settings.account
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Queues a change; the receiver answers once it is durable (or was refused).
    pub fn submit(&self, change: Change) -> oneshot::Receiver<Result<PutOutcome, StoreError>> {
        let (tx, rx) = oneshot::channel();
        let mut queue = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.closed {
            let _ = tx.send(Err(internal("the store is closed")));
        } else {
            queue.waiting.push((change, tx));
            self.shared.wake.notify_one();
        }
        rx
    }

    /// Applies changes and waits until they are durable (for callers off the async runtime).
    pub fn apply_blocking(&self, changes: Vec<Change>) -> Vec<Result<PutOutcome, StoreError>> {
        let receivers: Vec<_> = changes.into_iter().map(|c| self.submit(c)).collect();
        receivers
            .into_iter()
            .map(|rx| {
                rx.blocking_recv()
                    .unwrap_or_else(|_| Err(internal("the store stopped")))
            })
            .collect()
    }

    pub fn create_group(&self, mut group: FeatureGroup) -> Result<FeatureGroup, StoreError> {
        group.validate().map_err(StoreError::Validation)?;
        if let Some(o) = &group.offline_store_config {
            self.shared
                .offline
                .check_location(&o.s3_storage_config.s3_uri)
                .map_err(StoreError::Validation)?;
        }
        group.creation_time = now_micros() as f64 / 1e6;
        let resolved = group.offline_store_config.as_ref().map(|o| {
            self.shared
                .offline
                .resolved_uri(&group, &o.s3_storage_config.s3_uri)
        });
        if let Some(offline) = &mut group.offline_store_config {
            offline.s3_storage_config.resolved_output_s3_uri = resolved;
        }
        if self.describe_group(&group.feature_group_name).is_ok() {
            return Err(in_use(&group.feature_group_name));
        }
        self.shared.offline.register_in_glue(&group)?;
        let txn = self.shared.db.begin_write().map_err(internal)?;
        {
            let mut groups = txn.open_table(GROUPS).map_err(internal)?;
            if find_group(&groups, &group.feature_group_name)?.is_some() {
                return Err(in_use(&group.feature_group_name));
            }
            let json = serde_json::to_vec(&group).map_err(internal)?;
            groups
                .insert(group.feature_group_name.as_str(), json.as_slice())
                .map_err(internal)?;
        }
        txn.commit().map_err(internal)?;
        Ok(group)
    }

    pub fn describe_group(&self, name: &str) -> Result<FeatureGroup, StoreError> {
        let txn = self.shared.db.begin_read().map_err(internal)?;
        let groups = txn.open_table(GROUPS).map_err(internal)?;
        find_group(&groups, name)?.ok_or_else(|| not_found(name))
    }

    pub fn list_groups(&self) -> Result<Vec<FeatureGroup>, StoreError> {
        let txn = self.shared.db.begin_read().map_err(internal)?;
        let groups = txn.open_table(GROUPS).map_err(internal)?;
        let mut out = Vec::new();
        for entry in groups.iter().map_err(internal)? {
            let (_, value) = entry.map_err(internal)?;
            out.push(serde_json::from_slice(value.value()).map_err(internal)?);
        }
        Ok(out)
    }

    /// Deletes a group and its online records; offline data stays, as on AWS.
    pub fn delete_group(&self, name: &str) -> Result<(), StoreError> {
        let txn = self.shared.db.begin_write().map_err(internal)?;
        {
            let mut groups = txn.open_table(GROUPS).map_err(internal)?;
            let group = find_group(&groups, name)?.ok_or_else(|| not_found(name))?;
            let name = group.feature_group_name.as_str();
            groups.remove(name).map_err(internal)?;
            let mut online = txn.open_table(ONLINE).map_err(internal)?;
            online
                .retain_in((name, "")..(name, "\u{10ffff}"), |_, _| false)
                .map_err(internal)?;
        }
        txn.commit().map_err(internal)
    }

    /// The online record of `identifier`, unless it is missing, deleted or expired.
    pub fn get_record(
        &self,
        group: &str,
        identifier: &str,
        features: Option<&[String]>,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let txn = self.shared.db.begin_read().map_err(internal)?;
        let groups = txn.open_table(GROUPS).map_err(internal)?;
        let group = find_group(&groups, group)?.ok_or_else(|| not_found(group))?;
        if let Some(names) = features {
            if let Some(unknown) = names.iter().find(|n| group.feature(n).is_none()) {
                return Err(StoreError::Validation(format!(
                    "feature '{unknown}' is not defined in feature group '{}'",
                    group.feature_group_name
                )));
            }
        }
        let online = txn.open_table(ONLINE).map_err(internal)?;
        let Some(value) = online
            .get((group.feature_group_name.as_str(), identifier))
            .map_err(internal)?
        else {
            return Ok(None);
        };
        let record: OnlineRecord = serde_json::from_slice(value.value()).map_err(internal)?;
        if record.deleted || record.expires_at.is_some_and(|t| t <= now_micros()) {
            return Ok(None);
        }
        let values = match features {
            None => record.values,
            Some(names) => record
                .values
                .into_iter()
                .filter(|v| names.contains(&v.feature_name))
                .collect(),
        };
        Ok(Some(StoredRecord {
            values,
            expires_at: record.expires_at,
        }))
    }

    /// Writes every queued offline row as Parquet; returns how many rows were written.
    pub fn flush_offline(&self) -> Result<usize, StoreError> {
        self.shared.flush_offline()
    }

    /// Stops the background threads after writing what is queued. Called on drop.
    pub fn close(&self) {
        {
            let mut queue = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.closed = true;
            self.shared.stop.store(true, Ordering::SeqCst);
            self.shared.wake.notify_all();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        if let Err(e) = self.shared.flush_offline() {
            tracing::error!("{e}");
        }
    }
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        self.close();
        let mut open = registry().lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, weak| weak.strong_count() > 0);
    }
}

fn in_use(name: &str) -> StoreError {
    StoreError::InUse(format!(
        "Resource Already Exists: FeatureGroup with name {name} already exists. Choose a \
         different name."
    ))
}

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!(
        "Resource Not Found: Amazon SageMaker can't find a FeatureGroup with name {name}"
    ))
}

/// A group by name or ARN (`arn:aws:sagemaker:...:feature-group/name`); names match without
/// regard to case, as ARNs carry them in lower case.
fn find_group(
    groups: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<FeatureGroup>, StoreError> {
    let name = name.rsplit_once("feature-group/").map_or(name, |(_, n)| n);
    if let Some(v) = groups.get(name).map_err(internal)? {
        return serde_json::from_slice(v.value())
            .map(Some)
            .map_err(internal);
    }
    for entry in groups.iter().map_err(internal)? {
        let (key, value) = entry.map_err(internal)?;
        if key.value().eq_ignore_ascii_case(name) {
            return serde_json::from_slice(value.value())
                .map(Some)
                .map_err(internal);
        }
    }
    Ok(None)
}

pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Shared {
    fn commit_loop(&self) {
        loop {
            let batch = {
                let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                while queue.waiting.is_empty() && !queue.closed {
                    queue = self.wake.wait(queue).unwrap_or_else(|p| p.into_inner());
                }
                if queue.waiting.is_empty() {
                    return;
                }
                let n = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..n).collect::<Vec<_>>()
            };
            self.commit(batch);
        }
    }

    /// Applies a batch of changes in one transaction and answers each once it is durable.
    fn commit(&self, batch: Vec<(Change, Reply)>) {
        let result = (|| {
            let txn = self.db.begin_write().map_err(internal)?;
            let mut outcomes = Vec::with_capacity(batch.len());
            {
                let groups = txn.open_table(GROUPS).map_err(internal)?;
                let mut online = txn.open_table(ONLINE).map_err(internal)?;
                let mut offline = txn.open_table(OFFLINE).map_err(internal)?;
                let mut next_seq = offline
                    .last()
                    .map_err(internal)?
                    .map_or(0, |(k, _)| k.value() + 1);
                let now = now_micros();
                let mut cache: HashMap<String, Option<FeatureGroup>> = HashMap::new();
                for (change, _) in &batch {
                    let name = match change {
                        Change::Put { group, .. } | Change::Delete { group, .. } => group,
                    };
                    if !cache.contains_key(name) {
                        cache.insert(name.clone(), find_group(&groups, name)?);
                    }
                    let Some(group) = cache[name].as_ref() else {
                        outcomes.push(Err(not_found(name)));
                        continue;
                    };
                    let mut rows = Vec::new();
                    let outcome = apply(group, change, now, &mut online, &mut rows);
                    for row in rows {
                        let json = serde_json::to_vec(&row).map_err(internal)?;
                        offline
                            .insert(next_seq, json.as_slice())
                            .map_err(internal)?;
                        next_seq += 1;
                    }
                    outcomes.push(outcome);
                }
            }
            txn.commit().map_err(internal)?;
            Ok::<_, StoreError>(outcomes)
        })();
        match result {
            Ok(outcomes) => {
                for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    fn flush_loop(&self, every: Duration) {
        let mut waited = Duration::ZERO;
        let tick = Duration::from_millis(100);
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(tick);
            waited += tick;
            if waited >= every {
                waited = Duration::ZERO;
                if let Err(e) = self.flush_offline() {
                    sluice_engine::warn_limited!(
                        "{e} (the rows stay queued and are written later)"
                    );
                }
            }
        }
    }

    fn flush_offline(&self) -> Result<usize, StoreError> {
        let _flushing = self.flushing.lock().unwrap_or_else(|p| p.into_inner());
        let mut written = 0;
        loop {
            let (keys, rows, groups) = {
                let txn = self.db.begin_read().map_err(internal)?;
                let queue = txn.open_table(OFFLINE).map_err(internal)?;
                let mut keys = Vec::new();
                let mut rows = Vec::new();
                for entry in queue.iter().map_err(internal)?.take(FLUSH_ROWS) {
                    let (k, v) = entry.map_err(internal)?;
                    keys.push(k.value());
                    rows.push(serde_json::from_slice::<OfflineRow>(v.value()).map_err(internal)?);
                }
                let groups = txn.open_table(GROUPS).map_err(internal)?;
                let mut defs = HashMap::new();
                for row in &rows {
                    if !defs.contains_key(&row.group) {
                        defs.insert(row.group.clone(), find_group(&groups, &row.group)?);
                    }
                }
                (keys, rows, defs)
            };
            if keys.is_empty() {
                return Ok(written);
            }
            self.offline.write(rows, &groups)?;
            let txn = self.db.begin_write().map_err(internal)?;
            {
                let mut queue = txn.open_table(OFFLINE).map_err(internal)?;
                for k in &keys {
                    queue.remove(*k).map_err(internal)?;
                }
            }
            txn.commit().map_err(internal)?;
            written += keys.len();
        }
    }
}

/// Applies one change to the online table, collecting the offline rows it makes.
fn apply(
    group: &FeatureGroup,
    change: &Change,
    now: i64,
    online: &mut OnlineTable,
    offline_rows: &mut Vec<OfflineRow>,
) -> Result<PutOutcome, StoreError> {
    let name = group.feature_group_name.as_str();
    match change {
        Change::Put {
            record,
            target_stores,
            ttl,
            ..
        } => {
            let valid = validate_record(group, record).map_err(StoreError::Validation)?;
            let (to_online, to_offline) = targets(group, target_stores.as_deref())?;
            let mut applied = false;
            if to_online {
                let current = read_online(online, name, &valid.identifier)?;
                if current.as_ref().is_none_or(|c| {
                    valid.event_time > c.event_time || c.expires_at.is_some_and(|t| t <= now)
                }) {
                    let ttl = ttl.or_else(|| {
                        group
                            .online_store_config
                            .as_ref()
                            .and_then(|c| c.ttl_duration)
                    });
                    let stored = OnlineRecord {
                        expires_at: ttl.map(|t| valid.event_time.saturating_add(t.micros())),
                        values: valid.values.clone(),
                        event_time: valid.event_time,
                        deleted: false,
                    };
                    write_online(online, name, &valid.identifier, &stored)?;
                    applied = true;
                }
            }
            if to_offline {
                offline_rows.push(OfflineRow::new(name, &valid, now, false));
            }
            Ok(PutOutcome {
                online_applied: applied,
            })
        }
        Change::Delete {
            identifier,
            event_time,
            target_stores,
            mode,
            ..
        } => {
            let time = super::model::parse_event_time(event_time).ok_or_else(|| {
                StoreError::Validation(format!(
                    "EventTime '{event_time}' is neither ISO-8601 UTC nor epoch seconds"
                ))
            })?;
            let (to_online, to_offline) = targets(group, target_stores.as_deref())?;
            let mut applied = false;
            if to_online {
                let current = read_online(online, name, identifier)?;
                if current.is_some_and(|c| time >= c.event_time) {
                    match mode {
                        DeletionMode::HardDelete => {
                            online
                                .remove((name, identifier.as_str()))
                                .map_err(internal)?;
                        }
                        DeletionMode::SoftDelete => {
                            let tombstone = OnlineRecord {
                                values: vec![],
                                event_time: time,
                                expires_at: None,
                                deleted: true,
                            };
                            write_online(online, name, identifier, &tombstone)?;
                        }
                    }
                    applied = true;
                }
            }
            if to_offline {
                let valid = ValidRecord {
                    identifier: identifier.clone(),
                    event_time: time,
                    values: vec![
                        FeatureValue::new(&group.record_identifier_feature_name, identifier),
                        FeatureValue::new(&group.event_time_feature_name, event_time),
                    ],
                };
                offline_rows.push(OfflineRow::new(name, &valid, now, true));
            }
            Ok(PutOutcome {
                online_applied: applied,
            })
        }
    }
}

/// Which stores a request reaches: the ones it names, or every store the group has.
fn targets(
    group: &FeatureGroup,
    asked: Option<&[TargetStore]>,
) -> Result<(bool, bool), StoreError> {
    match asked {
        None | Some([]) => Ok((group.online_enabled(), group.offline_enabled())),
        Some(list) => {
            let online = list.contains(&TargetStore::OnlineStore);
            let offline = list.contains(&TargetStore::OfflineStore);
            if online && !group.online_enabled() {
                return Err(StoreError::Validation(format!(
                    "feature group '{}' has no online store",
                    group.feature_group_name
                )));
            }
            if offline && !group.offline_enabled() {
                return Err(StoreError::Validation(format!(
                    "feature group '{}' has no offline store",
                    group.feature_group_name
                )));
            }
            Ok((online, offline))
        }
    }
}

fn read_online(
    online: &OnlineTable,
    group: &str,
    identifier: &str,
) -> Result<Option<OnlineRecord>, StoreError> {
    match online.get((group, identifier)).map_err(internal)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(v.value())
            .map(Some)
            .map_err(internal),
    }
}

fn write_online(
    online: &mut OnlineTable,
    group: &str,
    identifier: &str,
    record: &OnlineRecord,
) -> Result<(), StoreError> {
    let json = serde_json::to_vec(record).map_err(internal)?;
    online
        .insert((group, identifier), json.as_slice())
        .map_err(internal)?;
    Ok(())
}
