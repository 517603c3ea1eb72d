//! The recorded-history file: one run's history as exported from production and replayed
//! in tests. Two renderings of the same content, both verified on read:
//!
//! - binary: `b"RPRSHIST"`, a file-format version byte, then one codec blob holding the
//!   header (workflow type, ids, event count, head hash) and every event's stored bytes
//!   with its chain hash — the exact bytes the database holds;
//! - JSON: the same header and events, decoded, for review and diffs.
//!
//! Reading either checks the chain (naming the first bad seq), the head hash, that the
//! header agrees with the `WorkflowStarted` event, that the bytes are the canonical
//! encoding, and every structural rule.

use serde::{Deserialize, Serialize};

use crate::chain::{self, ChainHash, ChainLink};
use crate::codec::{self, ByteBuf};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, WorkflowStarted};
use crate::ids::{RunId, Seq, WorkflowId, WorkflowType};
use crate::limits::Limits;
use crate::time::Timestamp;
use crate::validate;

/// First bytes of every binary recorded-history file.
pub const MAGIC: &[u8; 8] = b"RPRSHIST";

/// The file-format version this crate writes (and the newest it reads).
pub const FILE_VERSION: u8 = 1;

/// The `format` field of the JSON rendering.
const JSON_FORMAT: &str = "reprise.history";

/// One run's complete history, verified and valid.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedHistory {
    workflow_type: WorkflowType,
    workflow_id: WorkflowId,
    run_id: RunId,
    events: Vec<Event>,
}

#[derive(Serialize, Deserialize)]
struct BinaryHeader {
    workflow_type: WorkflowType,
    workflow_id: WorkflowId,
    run_id: RunId,
    event_count: u64,
    head_hash: ChainHash,
}

#[derive(Serialize, Deserialize)]
struct BinaryEvent {
    bytes: ByteBuf,
    hash: ChainHash,
}

#[derive(Serialize, Deserialize)]
struct BinaryBody {
    header: BinaryHeader,
    events: Vec<BinaryEvent>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonHistory {
    format: String,
    version: u8,
    workflow_type: WorkflowType,
    workflow_id: WorkflowId,
    run_id: RunId,
    event_count: u64,
    head_hash: ChainHash,
    events: Vec<JsonEvent>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEvent {
    seq: Seq,
    recorded_at: Timestamp,
    hash: ChainHash,
    event: EventKind,
}

impl RecordedHistory {
    /// Wraps a run's events, which must be structurally valid and start with `WorkflowStarted`.
    pub fn new(events: Vec<Event>) -> Result<RecordedHistory> {
        validate::validate(&events)?;
        let started = started_of(&events)?;
        Ok(RecordedHistory {
            workflow_type: started.workflow_type.clone(),
            workflow_id: started.workflow_id.clone(),
            run_id: started.run_id,
            events,
        })
    }

    /// The workflow type that ran.
    pub fn workflow_type(&self) -> &WorkflowType {
        &self.workflow_type
    }

    /// The workflow id.
    pub fn workflow_id(&self) -> &WorkflowId {
        &self.workflow_id
    }

    /// The run.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The events, seq 1 first.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Takes the events out.
    pub fn into_events(self) -> Vec<Event> {
        self.events
    }

    /// Each event's stored bytes and chain hash, seq 1 first.
    fn encoded(&self, limits: &Limits) -> Result<Vec<(Vec<u8>, ChainHash)>> {
        let mut hash = ChainHash::GENESIS;
        self.events
            .iter()
            .map(|event| {
                let bytes = event.encode(limits)?;
                hash = hash.next(&bytes);
                Ok((bytes, hash))
            })
            .collect()
    }

    /// The hash of the last event: what the database keeps as the run's head hash.
    pub fn head_hash(&self) -> Result<ChainHash> {
        let encoded = self.encoded(&Limits::DEFAULT)?;
        Ok(encoded.last().map_or(ChainHash::GENESIS, |(_, hash)| *hash))
    }

    /// The binary file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let encoded = self.encoded(&Limits::DEFAULT)?;
        let head_hash = encoded.last().map_or(ChainHash::GENESIS, |(_, hash)| *hash);
        let body = BinaryBody {
            header: BinaryHeader {
                workflow_type: self.workflow_type.clone(),
                workflow_id: self.workflow_id.clone(),
                run_id: self.run_id,
                event_count: encoded.len() as u64,
                head_hash,
            },
            events: encoded
                .into_iter()
                .map(|(bytes, hash)| BinaryEvent {
                    bytes: ByteBuf(bytes),
                    hash,
                })
                .collect(),
        };
        let mut out = MAGIC.to_vec();
        out.push(FILE_VERSION);
        out.extend(codec::encode("recorded history", &body)?);
        Ok(out)
    }

    /// Reads and verifies a binary file.
    pub fn from_bytes(bytes: &[u8], limits: &Limits) -> Result<RecordedHistory> {
        if bytes.len() as u64 > limits.max_history_bytes {
            return Err(Error::TooLarge {
                what: "recorded history",
                size: bytes.len() as u64,
                limit: limits.max_history_bytes,
            });
        }
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| malformed("does not start with RPRSHIST: not a Reprise history file"))?;
        let (&version, blob) = rest
            .split_first()
            .ok_or_else(|| malformed("ends before the file-format version"))?;
        check_version(version)?;
        let body: BinaryBody = codec::decode("recorded history", blob, usize::MAX)?;
        check_count(body.header.event_count, body.events.len(), limits)?;
        let links = body.events.iter().enumerate().map(|(i, e)| ChainLink {
            seq: Seq::new(i as u64 + 1),
            bytes: &e.bytes.0,
            hash: e.hash,
        });
        let head = chain::verify(links)?;
        check_head(body.header.head_hash, head)?;
        let events = body
            .events
            .iter()
            .map(|e| decode_canonical(&e.bytes.0, limits))
            .collect::<Result<Vec<_>>>()?;
        let history = RecordedHistory::new(events)?;
        history.check_header(
            &body.header.workflow_type,
            &body.header.workflow_id,
            body.header.run_id,
        )?;
        Ok(history)
    }

    /// The JSON rendering, pretty-printed.
    pub fn to_json(&self) -> Result<String> {
        let encoded = self.encoded(&Limits::DEFAULT)?;
        let head_hash = encoded.last().map_or(ChainHash::GENESIS, |(_, hash)| *hash);
        let doc = JsonHistory {
            format: JSON_FORMAT.to_string(),
            version: FILE_VERSION,
            workflow_type: self.workflow_type.clone(),
            workflow_id: self.workflow_id.clone(),
            run_id: self.run_id,
            event_count: self.events.len() as u64,
            head_hash,
            events: self
                .events
                .iter()
                .zip(encoded)
                .map(|(event, (_, hash))| JsonEvent {
                    seq: event.seq,
                    recorded_at: event.recorded_at,
                    hash,
                    event: event.kind.clone(),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&doc).map_err(|e| Error::Encode {
            what: "recorded history JSON",
            source: Box::new(e),
        })
    }

    /// Reads and verifies the JSON rendering: events are re-encoded and checked against
    /// the hashes it states, so an edited event is caught at its seq.
    pub fn from_json(text: &str, limits: &Limits) -> Result<RecordedHistory> {
        if text.len() as u64 > limits.max_history_bytes {
            return Err(Error::TooLarge {
                what: "recorded history JSON",
                size: text.len() as u64,
                limit: limits.max_history_bytes,
            });
        }
        let doc: JsonHistory = serde_json::from_str(text).map_err(|e| Error::Decode {
            what: "recorded history JSON",
            source: Box::new(e),
        })?;
        if doc.format != JSON_FORMAT {
            return Err(malformed(format!(
                "format is {:?}, expected {JSON_FORMAT:?}",
                doc.format
            )));
        }
        check_version(doc.version)?;
        check_count(doc.event_count, doc.events.len(), limits)?;
        let events: Vec<Event> = doc
            .events
            .iter()
            .map(|e| Event {
                seq: e.seq,
                recorded_at: e.recorded_at,
                kind: e.event.clone(),
            })
            .collect();
        let encoded = events
            .iter()
            .map(|e| e.encode(limits))
            .collect::<Result<Vec<_>>>()?;
        let links = doc.events.iter().zip(&encoded).map(|(e, bytes)| ChainLink {
            seq: e.seq,
            bytes,
            hash: e.hash,
        });
        let head = chain::verify(links)?;
        check_head(doc.head_hash, head)?;
        let history = RecordedHistory::new(events)?;
        history.check_header(&doc.workflow_type, &doc.workflow_id, doc.run_id)?;
        Ok(history)
    }

    fn check_header(
        &self,
        workflow_type: &WorkflowType,
        workflow_id: &WorkflowId,
        run_id: RunId,
    ) -> Result<()> {
        if *workflow_type != self.workflow_type
            || *workflow_id != self.workflow_id
            || run_id != self.run_id
        {
            return Err(malformed(format!(
                "header names {workflow_type} / {workflow_id} / run {run_id}, but WorkflowStarted names {} / {} / run {}",
                self.workflow_type, self.workflow_id, self.run_id
            )));
        }
        Ok(())
    }
}

fn started_of(events: &[Event]) -> Result<&WorkflowStarted> {
    match events.first().map(|e| &e.kind) {
        Some(EventKind::WorkflowStarted(started)) => Ok(started),
        _ => Err(malformed("first event is not WorkflowStarted")),
    }
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::MalformedFile {
        reason: reason.into(),
    }
}

fn check_version(version: u8) -> Result<()> {
    if version == FILE_VERSION {
        Ok(())
    } else {
        Err(malformed(format!(
            "file-format version {version}; this Reprise reads version {FILE_VERSION}"
        )))
    }
}

fn check_count(stated: u64, actual: usize, limits: &Limits) -> Result<()> {
    if actual as u64 > limits.max_events {
        return Err(Error::TooLarge {
            what: "history (events)",
            size: actual as u64,
            limit: limits.max_events,
        });
    }
    if stated != actual as u64 {
        return Err(malformed(format!(
            "header says {stated} events, file holds {actual}"
        )));
    }
    Ok(())
}

fn check_head(recorded: ChainHash, computed: ChainHash) -> Result<()> {
    if recorded == computed {
        Ok(())
    } else {
        Err(Error::HeadMismatch {
            recorded: recorded.to_hex(),
            computed: computed.to_hex(),
        })
    }
}

/// Decodes an event and insists its bytes are exactly what this crate would write, so a
/// file that reads back is byte-for-byte the history that was exported.
fn decode_canonical(bytes: &[u8], limits: &Limits) -> Result<Event> {
    let event = Event::decode(bytes, limits)?;
    let again = event.encode(limits)?;
    if again != bytes {
        return Err(malformed(format!(
            "event seq {} is not in canonical encoding",
            event.seq
        )));
    }
    Ok(event)
}
