//! The collector's storage: one append-only JSON-lines file per (server, license) under
//! `DATA/events/`, each line one event, written and synced before the ack goes out. An
//! event is stored once: a batch's events at or below what the file holds are skipped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CollectError;
use crate::federation::wire::Event;

/// One stored line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEvent {
    pub server: String,
    pub lic: String,
    pub event: Event,
}

/// What the store holds, by (server id, license id): the highest seq of `1..=N` held.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    held: HashMap<(String, String), i64>,
}

impl Store {
    /// Opens `data/events`, reading what every file holds; a torn last line (a crash while
    /// appending, before any ack) is cut off.
    pub fn open(data: &Path) -> Result<Self, CollectError> {
        let dir = data.join("events");
        std::fs::create_dir_all(&dir).map_err(|e| CollectError::io(&dir, e))?;
        let mut held = HashMap::new();
        for (path, events) in read_all(&dir, true)? {
            if let Some(last) = events.last() {
                held.insert((last.server.clone(), last.lic.clone()), last.event.seq);
            } else {
                tracing::debug!(file = %path.display(), "empty events file");
            }
        }
        Ok(Self { dir, held })
    }

    /// The highest N such that events 1..=N of (server, lic) are held.
    pub fn acked(&self, server: &str, lic: &str) -> i64 {
        self.held
            .get(&(server.to_owned(), lic.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Appends the events past what is held (the batch must not start past `acked + 1`:
    /// the caller checks) and syncs; returns how many were new.
    pub fn append(
        &mut self,
        server: &str,
        lic: &str,
        events: &[Event],
    ) -> Result<usize, CollectError> {
        let acked = self.acked(server, lic);
        let new: Vec<&Event> = events.iter().filter(|e| e.seq > acked).collect();
        if new.is_empty() {
            return Ok(0);
        }
        let path = self.dir.join(file_name(server, lic));
        let mut text = String::new();
        for event in &new {
            let line = StoredEvent {
                server: server.to_owned(),
                lic: lic.to_owned(),
                event: (*event).clone(),
            };
            let json = serde_json::to_string(&line)
                .map_err(|e| CollectError::Storage(format!("cannot encode an event: {e}")))?;
            text.push_str(&json);
            text.push('\n');
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| CollectError::io(&path, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| CollectError::io(&path, e))?;
        let last = new.last().map_or(acked, |e| e.seq);
        self.held.insert((server.to_owned(), lic.to_owned()), last);
        Ok(new.len())
    }
}

/// `<server>-<hex(lic)>.jsonl`: a license id may hold any character.
fn file_name(server: &str, lic: &str) -> String {
    format!("{server}-{}.jsonl", hex::encode(lic))
}

/// Every events file under `dir` with its events, in seq order. `repair`: cut a torn last
/// line off the file.
pub fn read_all(
    dir: &Path,
    repair: bool,
) -> Result<Vec<(PathBuf, Vec<StoredEvent>)>, CollectError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| CollectError::io(dir, e))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    for path in paths {
        let events = read_file(&path, repair)?;
        out.push((path, events));
    }
    Ok(out)
}

fn read_file(path: &Path, repair: bool) -> Result<Vec<StoredEvent>, CollectError> {
    let file = File::open(path).map_err(|e| CollectError::io(path, e))?;
    let mut events: Vec<StoredEvent> = Vec::new();
    let mut good_len = 0u64;
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| CollectError::io(path, e))?;
        if read == 0 {
            break;
        }
        let parsed = line
            .strip_suffix('\n')
            .and_then(|l| serde_json::from_str::<StoredEvent>(l).ok());
        let Some(stored) = parsed else {
            // Only a last line can be torn; anything else is damage we must not paper over.
            let rest = reader.fill_buf().map_err(|e| CollectError::io(path, e))?;
            if !rest.is_empty() || !repair {
                return Err(CollectError::Storage(format!(
                    "{}: damaged line after byte {good_len}",
                    path.display()
                )));
            }
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| CollectError::io(path, e))?;
            file.set_len(good_len)
                .and_then(|()| file.sync_data())
                .map_err(|e| CollectError::io(path, e))?;
            tracing::warn!(file = %path.display(), "cut off a torn last line");
            break;
        };
        let expected = events.last().map_or(1, |e| e.event.seq + 1);
        if stored.event.seq != expected {
            return Err(CollectError::Storage(format!(
                "{}: seq {} where {expected} was due",
                path.display(),
                stored.event.seq
            )));
        }
        good_len += read as u64;
        events.push(stored);
    }
    Ok(events)
}
