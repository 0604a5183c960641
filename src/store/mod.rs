//! The event history on the board's disk: one SQLite file (WAL mode) that
//! holds every event with the frame's embedding and snapshot, keyframes,
//! and the outbox of event messages the broker has not acknowledged yet.
//!
//! **Commit, then publish.** The daemon writes an event and its MQTT
//! message in one transaction ([`Store::start_event`], [`Store::end_event`])
//! and only then hands the message to the MQTT client, which reports the
//! broker's acknowledgement; [`Store::delivered`] then deletes the outbox
//! row. After a crash, [`Store::outbox_after`] gives the undelivered
//! messages, oldest first, and they are published again, in order: at least
//! once, each carrying its event id so that a subscriber can tell a repeat.
//!
//! **fsync.** `synchronous = FULL`: each commit is on the disk before the
//! message is published, so a power cut loses no committed event. What a
//! power cut can still lose is the frame being turned into an event (not
//! committed yet) and the deletion of outbox rows not yet on disk, whose
//! messages are then sent twice. Events are rare (a few a minute at most),
//! so a flush each costs nothing a camera would notice; keyframes and
//! deliveries are batched into few commits.
//!
//! **Bounded.** [`retention`] removes the oldest events and keyframes past
//! `store.max_age_days`, and past `store.max_size_mb` of used pages, and
//! gives the freed pages back to the filesystem (incremental vacuum), so the
//! file stays within its size while the daemon runs. An event removed
//! before the broker had it is counted as dropped: the outbox is then
//! bounded by the disk, not by memory.
//!
//! [`schema`] versions and migrates the tables; [`vector`] is how
//! embeddings are kept and ranked; [`query`] reads the history back for
//! `edgeclip events` and `edgeclip search`.

pub mod query;
pub mod retention;
pub mod schema;
pub mod vector;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::config::StoreConfig;
use vector::Quantized;

/// How long a statement waits for another connection's write (the CLI
/// reading while the daemon commits) before it fails: far longer than any
/// commit of ours takes, even on a slow SD card.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The write-ahead log is cut back to this size after each checkpoint, so
/// that the files beside the database stay small; SQLite checkpoints every
/// 1000 pages (4 MB), so 4 MB is what a busy moment leaves.
const WAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store '{}': {problem}", path.display())]
    Open { path: PathBuf, problem: String },
    #[error(
        "store '{}' was made by a newer edgeclip (schema {found}; this one knows up to {known}); \
         run that edgeclip, or move the file away to start a new history",
        path.display()
    )]
    Newer { path: PathBuf, found: i64, known: i64 },
    #[error("store '{}': {what}: {source}", path.display())]
    Sql {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

/// What an event's row starts with.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub camera: &'a str,
    pub zone: Option<&'a str>,
    pub label: &'a str,
    pub model: &'a str,
    pub start: SystemTime,
    pub start_frame: u64,
    pub score: f32,
    /// The start frame's image embedding in the event's zone.
    pub embedding: Option<&'a [f32]>,
    /// The start frame as a JPEG (kept only with `store.snapshots`).
    pub snapshot: Option<&'a [u8]>,
}

/// How an event ended.
#[derive(Debug, Clone)]
pub struct EventEnd<'a> {
    pub end: SystemTime,
    pub frame: u64,
    pub peak: f32,
    pub reason: &'a str,
}

/// A keyframe: a zone's inferred frame kept without an event.
#[derive(Debug, Clone)]
pub struct NewKeyframe<'a> {
    pub camera: &'a str,
    pub zone: Option<&'a str>,
    pub model: &'a str,
    pub time: SystemTime,
    pub frame: u64,
    pub embedding: &'a [f32],
    pub snapshot: Option<&'a [u8]>,
}

/// A message of the outbox: to publish, then report delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// The open store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    config: StoreConfig,
}

/// Milliseconds since 1970, as the tables keep times.
pub fn millis(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_millis().min(i64::MAX as u128) as i64),
    }
}

/// The time of a table's milliseconds.
pub fn time_of(ms: i64) -> SystemTime {
    if ms >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

impl Store {
    /// Opens (or creates, with its folder) the store of `config` for the
    /// daemon: brings its tables up to date, and closes the events that a
    /// crash left open (their end is unknown: reason `interrupted`).
    pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let path = config.path.clone();
        let open_error = |problem: String| StoreError::Open { path: path.clone(), problem };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                open_error(format!(
                    "cannot make its folder '{}': {e}; set store.path to a writable place, or store.enabled = false",
                    dir.display()
                ))
            })?;
        }
        let mut conn = Connection::open(&path)
            .map_err(|e| open_error(format!("cannot open: {e}; set store.path to a writable file")))?;
        let sql = |what| {
            let path = path.clone();
            move |source| StoreError::Sql { path, what, source }
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql("setting the busy timeout"))?;
        // Before the first table: freed pages can then be given back to the
        // filesystem while the file is in use (retention).
        if schema::version(&conn).map_err(sql("reading the schema version"))? == 0 {
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL").map_err(sql("setting auto_vacuum"))?;
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| open_error(format!("cannot use it: {e}; is it an SQLite file of edgeclip's?")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_error(format!("cannot switch it to WAL mode (it stays '{mode}')")));
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(sql("setting synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sql("turning on foreign keys"))?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT).map_err(sql("setting the WAL size"))?;
        match schema::migrate(&mut conn).map_err(sql("bringing the tables up to date"))? {
            schema::Migration::Newer(found) => return Err(StoreError::Newer { path, found, known: schema::current() }),
            schema::Migration::From(old) if old > 0 => {
                tracing::info!("store '{}': tables brought from version {old} to {}", path.display(), schema::current())
            }
            _ => {}
        }
        let interrupted = conn
            .execute("UPDATE events SET reason = 'interrupted' WHERE end_ms IS NULL AND reason IS NULL", [])
            .map_err(sql("closing interrupted events"))?;
        if interrupted > 0 {
            tracing::info!(
                "store '{}': {interrupted} event(s) were still active when edgeclip last stopped without ending them; kept with reason 'interrupted'",
                path.display()
            );
        }
        Ok(Store { conn, path, config: config.clone() })
    }

    /// Opens an existing store to read (`edgeclip search`, `edgeclip
    /// events`), beside a running daemon.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let open_error = |problem: String| StoreError::Open { path: path.to_path_buf(), problem };
        if !path.exists() {
            return Err(open_error(
                "no such file; the daemon makes it when it runs with [store] enabled (is store.path the same?)".into(),
            ));
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| open_error(format!("cannot open: {e}")))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| open_error(e.to_string()))?;
        let found = schema::version(&conn)
            .map_err(|e| open_error(format!("cannot read it: {e}; is it an SQLite file of edgeclip's?")))?;
        if found > schema::current() {
            return Err(StoreError::Newer { path: path.to_path_buf(), found, known: schema::current() });
        }
        if found < schema::current() {
            return Err(open_error(format!(
                "its tables are at version {found}, older than this edgeclip's {}; run `edgeclip run` once to bring them up to date",
                schema::current()
            )));
        }
        let config = StoreConfig {
            enabled: true,
            path: path.to_path_buf(),
            max_bytes: u64::MAX,
            max_age: None,
            snapshots: true,
            keyframe_interval: None,
            mqtt_search: false,
        };
        Ok(Store { conn, path: path.to_path_buf(), config })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn sql(&self, what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql { path: self.path.clone(), what, source }
    }

    /// Stores a snapshot if snapshots are kept; its row id.
    fn insert_image(tx: &rusqlite::Transaction<'_>, keep: bool, jpeg: Option<&[u8]>) -> rusqlite::Result<Option<i64>> {
        match jpeg.filter(|_| keep) {
            Some(jpeg) => {
                tx.execute("INSERT INTO images (jpeg) VALUES (?1)", [jpeg])?;
                Ok(Some(tx.last_insert_rowid()))
            }
            None => Ok(None),
        }
    }

    /// Commits a new event and its start message (made by `message` from
    /// the event's id: topic and payload) in one transaction; returns the
    /// event's id and the message's outbox row.
    pub fn start_event(
        &mut self,
        e: &NewEvent<'_>,
        message: impl FnOnce(i64) -> (String, Vec<u8>),
    ) -> Result<(i64, OutboxMessage), StoreError> {
        let keep = self.config.snapshots;
        let path = self.path.clone();
        let sql = move |source| StoreError::Sql { path: path.clone(), what: "writing an event", source };
        if crate::util::fault::fails("store-write") {
            return Err(sql(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                Some("fault injected (EDGECLIP_FAULT)".into()),
            )));
        }
        let tx = self.conn.transaction().map_err(&sql)?;
        let image = Self::insert_image(&tx, keep, e.snapshot).map_err(&sql)?;
        let q = e.embedding.and_then(Quantized::new);
        tx.execute(
            "INSERT INTO events (camera, zone, label, model, start_ms, start_frame, score, peak, embedding, embedding_scale, image_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10)",
            params![
                e.camera,
                e.zone,
                e.label,
                e.model,
                millis(e.start),
                e.start_frame as i64,
                f64::from(e.score),
                q.as_ref().map(Quantized::bytes),
                q.as_ref().map(|q| f64::from(q.scale)),
                image
            ],
        )
        .map_err(&sql)?;
        let id = tx.last_insert_rowid();
        let (topic, payload) = message(id);
        let outbox = Self::insert_outbox(&tx, Some(id), topic, payload).map_err(&sql)?;
        crate::util::fault::point("store-commit");
        tx.commit().map_err(&sql)?;
        Ok((id, outbox))
    }

    /// Commits an event's end and its end message; `id` `None`: an event
    /// whose start was not stored (the message is still kept).
    pub fn end_event(
        &mut self,
        id: Option<i64>,
        end: &EventEnd<'_>,
        topic: String,
        payload: Vec<u8>,
    ) -> Result<OutboxMessage, StoreError> {
        let path = self.path.clone();
        let sql = move |source| StoreError::Sql { path: path.clone(), what: "writing an event's end", source };
        let tx = self.conn.transaction().map_err(&sql)?;
        // An event removed by retention meanwhile has no row to update.
        let id = match id {
            Some(id) => {
                let updated = tx
                    .execute(
                        "UPDATE events SET end_ms = ?2, end_frame = ?3, peak = ?4, reason = ?5 WHERE id = ?1",
                        params![id, millis(end.end), end.frame as i64, f64::from(end.peak), end.reason],
                    )
                    .map_err(&sql)?;
                (updated > 0).then_some(id)
            }
            None => None,
        };
        let outbox = Self::insert_outbox(&tx, id, topic, payload).map_err(&sql)?;
        crate::util::fault::point("store-commit");
        tx.commit().map_err(&sql)?;
        Ok(outbox)
    }

    fn insert_outbox(
        tx: &rusqlite::Transaction<'_>,
        event: Option<i64>,
        topic: String,
        payload: Vec<u8>,
    ) -> rusqlite::Result<OutboxMessage> {
        tx.execute(
            "INSERT INTO outbox (event_id, topic, payload, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![event, topic, payload, millis(SystemTime::now())],
        )?;
        Ok(OutboxMessage { id: tx.last_insert_rowid(), topic, payload })
    }

    /// Stores a keyframe; its id. `None` for an embedding without direction
    /// (all zeros), which no search could rank.
    pub fn keyframe(&mut self, k: &NewKeyframe<'_>) -> Result<Option<i64>, StoreError> {
        let Some(q) = Quantized::new(k.embedding) else { return Ok(None) };
        let keep = self.config.snapshots;
        let path = self.path.clone();
        let sql = move |source| StoreError::Sql { path: path.clone(), what: "writing a keyframe", source };
        let tx = self.conn.transaction().map_err(&sql)?;
        let image = Self::insert_image(&tx, keep, k.snapshot).map_err(&sql)?;
        tx.execute(
            "INSERT INTO keyframes (camera, zone, model, time_ms, frame, embedding, embedding_scale, image_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![k.camera, k.zone, k.model, millis(k.time), k.frame as i64, q.bytes(), f64::from(q.scale), image],
        )
        .map_err(&sql)?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(&sql)?;
        Ok(Some(id))
    }

    /// Up to `limit` undelivered messages after outbox row `after`, oldest
    /// first.
    pub fn outbox_after(&self, after: i64, limit: usize) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, topic, payload FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2")
            .map_err(self.sql("reading the outbox"))?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok(OutboxMessage { id: r.get(0)?, topic: r.get(1)?, payload: r.get(2)? })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.sql("reading the outbox"))?;
        Ok(rows)
    }

    /// Messages the broker has not acknowledged.
    pub fn undelivered(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.sql("counting the outbox"))
    }

    /// The broker acknowledged these outbox messages: they are removed, in
    /// one commit.
    pub fn delivered(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let sql = move |source| StoreError::Sql { path: path.clone(), what: "marking messages delivered", source };
        let tx = self.conn.transaction().map_err(&sql)?;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM outbox WHERE id = ?1").map_err(&sql)?;
            for id in ids {
                stmt.execute([id]).map_err(&sql)?;
            }
        }
        tx.commit().map_err(&sql)
    }

    /// The snapshot of an event or keyframe, if one was kept.
    pub fn snapshot(&self, kind: query::Kind, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let table = match kind {
            query::Kind::Event => "events",
            query::Kind::Keyframe => "keyframes",
        };
        self.conn
            .query_row(
                &format!(
                    "SELECT images.jpeg FROM {table} JOIN images ON images.id = {table}.image_id WHERE {table}.id = ?1"
                ),
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql("reading a snapshot"))
    }

    /// Bytes of the file in use: its pages minus the free ones.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        let pragma = |name: &str| -> Result<i64, StoreError> {
            self.conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).map_err(self.sql("reading its size"))
        };
        let pages = pragma("page_count")? - pragma("freelist_count")?;
        Ok(pages.max(0) as u64 * pragma("page_size")? as u64)
    }

    /// Moves the write-ahead log into the file and cuts it back, as SQLite
    /// also does on its own every 1000 pages.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(self.sql("checkpointing the write-ahead log"))
    }

    /// `PRAGMA integrity_check`: "ok", or what is damaged.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(self.sql("checking its integrity"))
    }

    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}
