//! The store's tables, and how a file made by an older edgeclip is brought
//! up to date.
//!
//! The version is SQLite's `user_version`. [`MIGRATIONS`]`[i]` takes a file
//! from version `i` to `i + 1`; each runs in the transaction that also sets
//! the new version, so a file is at one version or the next, never between.
//! A file from a newer edgeclip (a downgrade) is refused rather than
//! guessed at.
//!
//! Snapshots live in their own table so that a search, which reads every
//! embedding, never touches the pages of the pictures.

use rusqlite::Connection;

/// One step each; never edit a released step, add the next one.
pub const MIGRATIONS: &[&str] = &[
    // 0 -> 1: events, keyframes, their snapshots and the outbox.
    r#"
    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        jpeg BLOB NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        camera TEXT NOT NULL,
        zone TEXT,
        label TEXT NOT NULL,
        model TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER,
        start_frame INTEGER NOT NULL,
        end_frame INTEGER,
        score REAL NOT NULL,
        peak REAL NOT NULL,
        reason TEXT,
        embedding BLOB,
        embedding_scale REAL,
        image_id INTEGER REFERENCES images(id)
    );
    CREATE INDEX events_by_start ON events(start_ms);
    CREATE TABLE keyframes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        camera TEXT NOT NULL,
        zone TEXT,
        model TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        frame INTEGER NOT NULL,
        embedding BLOB NOT NULL,
        embedding_scale REAL NOT NULL,
        image_id INTEGER REFERENCES images(id)
    );
    CREATE INDEX keyframes_by_time ON keyframes(time_ms);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id INTEGER REFERENCES events(id) ON DELETE CASCADE,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX outbox_by_event ON outbox(event_id);
    "#,
];

/// The version this edgeclip writes.
pub fn current() -> i64 {
    MIGRATIONS.len() as i64
}

/// The file's version.
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// What [`migrate`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    /// Already at the current version.
    Current,
    /// Brought from this version to the current one.
    From(i64),
    /// Made by a newer edgeclip, at this version.
    Newer(i64),
}

/// Brings the file to the current version, a step per transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Migration> {
    let found = version(conn)?;
    if found > current() {
        return Ok(Migration::Newer(found));
    }
    if found == current() {
        return Ok(Migration::Current);
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", step as i64 + 1)?;
        tx.commit()?;
    }
    Ok(Migration::From(found))
}
