//! Keeping the store within `store.max_age_days` and `store.max_size_mb`.
//!
//! [`Store::enforce_retention`] runs after every write of the daemon's and
//! once a minute: it removes events and keyframes older than the age limit,
//! then the oldest of either, a batch at a time, while the pages in use
//! exceed the size limit, and then gives the freed pages back to the
//! filesystem (`PRAGMA incremental_vacuum`), so that the file itself shrinks
//! and is bounded by the limit plus a few pages, not only its content.
//!
//! An event removed before the broker acknowledged it takes its outbox
//! messages with it: they are counted in [`Removed::undelivered`], which
//! the daemon adds to the dropped messages it reports.

use std::time::SystemTime;

use rusqlite::params;

use super::{millis, Store, StoreError};

/// Events or keyframes removed per step while over the size limit: enough
/// that a store far over its limit (a smaller limit set) shrinks in few
/// steps, few enough that each step's transaction is short.
const BATCH: i64 = 16;

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub events: u64,
    pub keyframes: u64,
    /// Outbox messages removed with their events, never delivered.
    pub undelivered: u64,
}

impl Removed {
    pub fn any(&self) -> bool {
        self.events + self.keyframes > 0
    }
}

/// Which table a batch comes from.
#[derive(Clone, Copy)]
enum Table {
    Events,
    Keyframes,
}

impl Store {
    /// Removes what is past the limits (see the module documentation).
    pub fn enforce_retention(&mut self, now: SystemTime) -> Result<Removed, StoreError> {
        let mut removed = Removed::default();
        if let Some(max_age) = self.config.max_age {
            let cutoff = millis(now.checked_sub(max_age).unwrap_or(SystemTime::UNIX_EPOCH));
            self.remove(Table::Events, "COALESCE(end_ms, start_ms) < ?1", cutoff, &mut removed)?;
            self.remove(Table::Keyframes, "time_ms < ?1", cutoff, &mut removed)?;
        }
        while self.used_bytes()? > self.config.max_bytes {
            let oldest = |sql: &str| -> Result<Option<i64>, StoreError> {
                self.connection().query_row(sql, [], |r| r.get(0)).map_err(self.sql("finding the oldest entries"))
            };
            let event = oldest("SELECT MIN(start_ms) FROM events")?;
            let keyframe = oldest("SELECT MIN(time_ms) FROM keyframes")?;
            let before = removed;
            match (event, keyframe) {
                (Some(e), Some(k)) if k < e => self.remove_oldest(Table::Keyframes, &mut removed)?,
                (Some(_), _) => self.remove_oldest(Table::Events, &mut removed)?,
                (None, Some(_)) => self.remove_oldest(Table::Keyframes, &mut removed)?,
                (None, None) => break,
            }
            if removed == before {
                break;
            }
        }
        if removed.any() {
            self.connection()
                .execute_batch("PRAGMA incremental_vacuum")
                .map_err(self.sql("giving freed pages back"))?;
        }
        Ok(removed)
    }

    /// Removes the `BATCH` oldest rows of `table`.
    fn remove_oldest(&mut self, table: Table, removed: &mut Removed) -> Result<(), StoreError> {
        let condition = match table {
            Table::Events => "id IN (SELECT id FROM events ORDER BY start_ms, id LIMIT ?1)",
            Table::Keyframes => "id IN (SELECT id FROM keyframes ORDER BY time_ms, id LIMIT ?1)",
        };
        self.remove(table, condition, BATCH, removed)
    }

    /// Removes the rows of `table` matching `condition` (with `?1` bound to
    /// `value`), their snapshots and, for events, their outbox messages.
    fn remove(&mut self, table: Table, condition: &str, value: i64, removed: &mut Removed) -> Result<(), StoreError> {
        let name = match table {
            Table::Events => "events",
            Table::Keyframes => "keyframes",
        };
        let path = self.path.clone();
        let sql = move |source| StoreError::Sql { path: path.clone(), what: "removing old entries", source };
        let tx = self.connection_mut().transaction().map_err(&sql)?;
        tx.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY, image_id INTEGER)", [])
            .map_err(&sql)?;
        tx.execute("DELETE FROM temp.doomed", []).map_err(&sql)?;
        let rows = tx
            .execute(
                &format!("INSERT INTO temp.doomed (id, image_id) SELECT id, image_id FROM {name} WHERE {condition}"),
                params![value],
            )
            .map_err(&sql)? as u64;
        if rows > 0 {
            if let Table::Events = table {
                let undelivered: i64 = tx
                    .query_row("SELECT COUNT(*) FROM outbox WHERE event_id IN (SELECT id FROM temp.doomed)", [], |r| {
                        r.get(0)
                    })
                    .map_err(&sql)?;
                removed.undelivered += undelivered as u64;
                tx.execute("DELETE FROM outbox WHERE event_id IN (SELECT id FROM temp.doomed)", []).map_err(&sql)?;
            }
            tx.execute(&format!("DELETE FROM {name} WHERE id IN (SELECT id FROM temp.doomed)"), []).map_err(&sql)?;
            tx.execute("DELETE FROM images WHERE id IN (SELECT image_id FROM temp.doomed)", []).map_err(&sql)?;
            match table {
                Table::Events => removed.events += rows,
                Table::Keyframes => removed.keyframes += rows,
            }
        }
        tx.execute("DELETE FROM temp.doomed", []).map_err(&sql)?;
        tx.commit().map_err(&sql)
    }
}
