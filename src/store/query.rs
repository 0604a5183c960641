//! Reading the history back: the events for `edgeclip events`, and the
//! stored embeddings ranked for a search, with what a hit shows.

use std::time::SystemTime;

use rusqlite::types::Value;
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use super::vector::{as_i8, dot, Quantized, Ranked, TopK};
use super::{millis, time_of, Store, StoreError};

/// What a stored embedding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Event,
    Keyframe,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Keyframe => "keyframe",
        }
    }
}

/// Which entries a listing or a search looks at; every field narrows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub camera: Option<String>,
    pub zone: Option<String>,
    /// Starting (events) or taken (keyframes) at or after this time.
    pub since: Option<SystemTime>,
    /// ... and before this one.
    pub until: Option<SystemTime>,
    /// Only embeddings of this model (another model's are not comparable).
    pub model: Option<String>,
}

impl Filter {
    /// The SQL condition on a table whose time column is `time`, and its
    /// values.
    fn condition(&self, time: &str) -> (String, Vec<Value>) {
        let mut clauses = vec!["1".to_string()];
        let mut values = Vec::new();
        let mut add = |clause: String, value: Value| {
            values.push(value);
            clauses.push(clause.replace('?', &format!("?{}", values.len())));
        };
        if let Some(c) = &self.camera {
            add("camera = ?".into(), Value::Text(c.clone()));
        }
        if let Some(z) = &self.zone {
            add("zone = ?".into(), Value::Text(z.clone()));
        }
        if let Some(t) = self.since {
            add(format!("{time} >= ?"), Value::Integer(millis(t)));
        }
        if let Some(t) = self.until {
            add(format!("{time} < ?"), Value::Integer(millis(t)));
        }
        if let Some(m) = &self.model {
            add("model = ?".into(), Value::Text(m.clone()));
        }
        (clauses.join(" AND "), values)
    }
}

/// Names a stored event or keyframe.
pub type EntryKey = (Kind, i64);

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub camera: String,
    pub zone: Option<String>,
    pub label: String,
    pub model: String,
    pub start: SystemTime,
    /// `None` while active (or interrupted).
    pub end: Option<SystemTime>,
    pub start_frame: u64,
    pub end_frame: Option<u64>,
    pub score: f32,
    pub peak: f32,
    pub reason: Option<String>,
    pub snapshot: bool,
    /// The broker has acknowledged its messages.
    pub delivered: bool,
}

/// A stored embedding with what a search hit shows of its owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub kind: Kind,
    pub id: i64,
    pub camera: String,
    pub zone: Option<String>,
    /// The event's label (keyframes have none).
    pub label: Option<String>,
    /// The event's start, or the keyframe's time.
    pub time: SystemTime,
    pub end: Option<SystemTime>,
    pub snapshot: bool,
}

impl Store {
    /// Events matching `filter`, newest first, at most `limit`.
    pub fn events(&self, filter: &Filter, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let (condition, mut values) = filter.condition("start_ms");
        values.push(Value::Integer(limit.min(i64::MAX as usize) as i64));
        let sql = format!(
            "SELECT id, camera, zone, label, model, start_ms, end_ms, start_frame, end_frame, score, peak, reason,
                    image_id IS NOT NULL, NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.event_id = events.id)
             FROM events WHERE {condition} ORDER BY start_ms DESC, id DESC LIMIT ?{}",
            values.len()
        );
        let mut stmt = self.connection().prepare(&sql).map_err(self.sql("listing events"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values), |r| {
                Ok(StoredEvent {
                    id: r.get(0)?,
                    camera: r.get(1)?,
                    zone: r.get(2)?,
                    label: r.get(3)?,
                    model: r.get(4)?,
                    start: time_of(r.get(5)?),
                    end: r.get::<_, Option<i64>>(6)?.map(time_of),
                    start_frame: r.get::<_, i64>(7)? as u64,
                    end_frame: r.get::<_, Option<i64>>(8)?.map(|f| f as u64),
                    score: r.get::<_, f64>(9)? as f32,
                    peak: r.get::<_, f64>(10)? as f32,
                    reason: r.get(11)?,
                    snapshot: r.get(12)?,
                    delivered: r.get(13)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.sql("listing events"))?;
        Ok(rows)
    }

    /// The `k` stored embeddings closest to `query` (by cosine) among those
    /// matching `filter`, keyframes too if `keyframes`, best first, leaving
    /// out `exclude`; and how many were ranked. One pass over the rows,
    /// reading only ids and embeddings, keeping only the best `k`: memory
    /// does not grow with the history.
    pub fn rank(
        &self,
        query: &Quantized,
        filter: &Filter,
        keyframes: bool,
        k: usize,
        exclude: Option<(Kind, i64)>,
    ) -> Result<(Vec<Ranked<EntryKey>>, u64), StoreError> {
        let mut top = TopK::new(k);
        let mut scan = |kind: Kind, sql: String, values: Vec<Value>| -> Result<(), StoreError> {
            let mut stmt = self.connection().prepare(&sql).map_err(self.sql("reading embeddings"))?;
            let mut rows = stmt.query(rusqlite::params_from_iter(values)).map_err(self.sql("reading embeddings"))?;
            while let Some(r) = rows.next().map_err(self.sql("reading embeddings"))? {
                let read = || -> rusqlite::Result<(i64, f32)> {
                    let id: i64 = r.get(0)?;
                    let bytes = r.get_ref(1)?.as_blob()?;
                    let scale = r.get::<_, f64>(2)? as f32;
                    // Another model's width: not comparable, not ranked.
                    if bytes.len() != query.values.len() {
                        return Ok((id, f32::NAN));
                    }
                    Ok((id, dot(&query.values, as_i8(bytes)) as f32 * query.scale * scale))
                };
                let (id, score) = read().map_err(self.sql("reading embeddings"))?;
                if !score.is_nan() && exclude != Some((kind, id)) {
                    top.offer((kind, id), score);
                }
            }
            Ok(())
        };
        let (condition, values) = filter.condition("start_ms");
        scan(
            Kind::Event,
            format!("SELECT id, embedding, embedding_scale FROM events WHERE embedding IS NOT NULL AND {condition}"),
            values,
        )?;
        if keyframes {
            let (condition, values) = filter.condition("time_ms");
            scan(
                Kind::Keyframe,
                format!("SELECT id, embedding, embedding_scale FROM keyframes WHERE {condition}"),
                values,
            )?;
        }
        let ranked = top.offered();
        Ok((top.into_sorted(), ranked))
    }

    /// What a hit shows of an event or keyframe; `None` if it is gone.
    pub fn entry(&self, kind: Kind, id: i64) -> Result<Option<Entry>, StoreError> {
        let entry = match kind {
            Kind::Event => self.connection().query_row(
                "SELECT camera, zone, label, start_ms, end_ms, image_id IS NOT NULL FROM events WHERE id = ?1",
                [id],
                |r| {
                    Ok(Entry {
                        kind,
                        id,
                        camera: r.get(0)?,
                        zone: r.get(1)?,
                        label: Some(r.get(2)?),
                        time: time_of(r.get(3)?),
                        end: r.get::<_, Option<i64>>(4)?.map(time_of),
                        snapshot: r.get(5)?,
                    })
                },
            ),
            Kind::Keyframe => self.connection().query_row(
                "SELECT camera, zone, time_ms, image_id IS NOT NULL FROM keyframes WHERE id = ?1",
                [id],
                |r| {
                    Ok(Entry {
                        kind,
                        id,
                        camera: r.get(0)?,
                        zone: r.get(1)?,
                        label: None,
                        time: time_of(r.get(2)?),
                        end: None,
                        snapshot: r.get(3)?,
                    })
                },
            ),
        };
        entry.optional().map_err(self.sql("reading an entry"))
    }

    /// The stored embedding of an event or keyframe, with the model that
    /// made it; `None` if there is no such entry (or it has no embedding).
    pub fn embedding(&self, kind: Kind, id: i64) -> Result<Option<(Quantized, String)>, StoreError> {
        let sql = match kind {
            Kind::Event => {
                "SELECT embedding, embedding_scale, model FROM events WHERE id = ?1 AND embedding IS NOT NULL"
            }
            Kind::Keyframe => "SELECT embedding, embedding_scale, model FROM keyframes WHERE id = ?1",
        };
        self.connection()
            .query_row(sql, [id], |r| {
                Ok((Quantized::from_bytes(r.get_ref(0)?.as_blob()?, r.get::<_, f64>(1)? as f32), r.get(2)?))
            })
            .optional()
            .map_err(self.sql("reading an embedding"))
    }

    /// How many events and keyframes are stored.
    pub fn counts(&self) -> Result<(u64, u64), StoreError> {
        let count = |sql: &str| -> Result<u64, StoreError> {
            self.connection().query_row(sql, [], |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(self.sql("counting"))
        };
        Ok((count("SELECT COUNT(*) FROM events")?, count("SELECT COUNT(*) FROM keyframes")?))
    }
}
