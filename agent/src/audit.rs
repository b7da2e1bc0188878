//! The audit log: one English line per event, with structured fields, hash-chained.
//!
//! `STATE/audit.log` is plain text a person can read with `less`:
//!
//! ```text
//! 000012 2026-11-22T05:30:00Z alice: deleted docs/notes.txt into the trash (undo: etch undo 7)<TAB>{"event":"executed",…,"prev":"…","hash":"…"}
//! ```
//!
//! (`<TAB>` is one tab character.) Each entry's hash is an HMAC-SHA256, under the key
//! `STATE/keys/audit.key`, of its sequence number, time, agent, event, English text,
//! fields and the previous entry's hash; the state database keeps the last sequence
//! number and hash (the anchor). Editing, deleting or reordering any entry — the last
//! one included — breaks the chain or the anchor, and `etch audit verify` says where.
//! Without the key nobody can write an entry that verifies, so entries appended by
//! someone who can write the log but not read the state directory (every confined
//! tool) are found too. Appends happen inside the database's write transaction, so
//! threads and processes append one at a time and the anchor moves with the file.
//!
//! Control characters never reach the file: the English text is escaped
//! ([`crate::text::one_line`]), so the log is safe to print on a terminal.
//!
//! Logs written before the key existed (etch 0.1) keep their plain SHA-256 links up to
//! the entry the key was introduced at (`keyed_from`); every later entry is keyed.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{AgentError, Result};

/// One entry of the log.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Entry {
    /// 1, 2, 3, … without gaps.
    pub seq: u64,
    /// UNIX seconds.
    pub time: u64,
    /// Who it concerns (an agent, a person approving, or "runtime").
    pub agent: String,
    /// What kind of event: syscall, denied, executed, staged, approved, undone, …
    pub event: String,
    /// The sentence a person reads.
    pub english: String,
    /// Structured fields (action id, tool, args, reasons, …).
    pub fields: Value,
    /// The previous entry's hash (64 zeros for the first).
    pub prev: String,
    /// This entry's hash.
    pub hash: String,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields an entry's hash covers, each prefixed by its length when hashed.
fn hashed_parts(e: &Entry) -> [String; 7] {
    [
        e.seq.to_string(),
        e.time.to_string(),
        e.agent.clone(),
        e.event.clone(),
        e.english.clone(),
        e.fields.to_string(),
        e.prev.clone(),
    ]
}

/// The key that signs the chain, and the entry it signs from.
#[derive(Clone)]
pub struct Key {
    secret: [u8; 32],
    /// Entries before this one (written before the key existed) carry plain SHA-256
    /// links.
    keyed_from: u64,
}

impl Key {
    /// The hash entry `e` must carry.
    fn hash(&self, e: &Entry) -> String {
        let parts = hashed_parts(e);
        if e.seq < self.keyed_from {
            let mut h = Sha256::new();
            for p in &parts {
                h.update((p.len() as u64).to_le_bytes());
                h.update(p.as_bytes());
            }
            return hex::encode(h.finalize());
        }
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        for p in &parts {
            m.update(&(p.len() as u64).to_le_bytes());
            m.update(p.as_bytes());
        }
        hex::encode(m.finalize().into_bytes())
    }

    /// Loads `STATE/keys/audit.key`, making it (mode 0600) on first use. A log begun
    /// before the key existed is keyed from its next entry on. Runs inside a write
    /// transaction.
    pub(crate) fn open_or_make(db: &Connection, state: &Path) -> Result<Self> {
        let path = key_path(state);
        let keyed_from = match stored_keyed_from(db)? {
            Some(k) => k,
            None => {
                let k = head(db)?.0 + 1;
                db.execute(
                    "INSERT INTO audit_key(id, keyed_from) VALUES (1, ?1)",
                    params![k as i64],
                )?;
                k
            }
        };
        match read_secret(&path)? {
            Some(secret) => Ok(Key { secret, keyed_from }),
            None => {
                let mut secret = [0u8; 32];
                fill_random(&mut secret)?;
                crate::cap::write_key_file(&path, &hex::encode(secret))?;
                // Two processes at once: the first key to land wins.
                let secret = read_secret(&path)?.unwrap_or(secret);
                Ok(Key { secret, keyed_from })
            }
        }
    }

    /// The key of a database made before keys existed: every entry is a plain
    /// SHA-256 link.
    pub(crate) fn legacy() -> Self {
        Key {
            secret: [0; 32],
            keyed_from: u64::MAX,
        }
    }

    /// Loads the key without making anything (for reading and verifying).
    pub(crate) fn load(db: &Connection, state: &Path) -> Result<Self> {
        let keyed_from = stored_keyed_from(db)?.unwrap_or(u64::MAX);
        let secret = match read_secret(&key_path(state))? {
            Some(s) => s,
            None if keyed_from == u64::MAX => [0; 32],
            None => {
                return Err(AgentError::Tampered(format!(
                    "the audit key {} is missing: the keyed entries cannot be checked",
                    key_path(state).display()
                )))
            }
        };
        Ok(Key { secret, keyed_from })
    }
}

fn key_path(state: &Path) -> PathBuf {
    state.join("keys").join("audit.key")
}

fn stored_keyed_from(db: &Connection) -> Result<Option<u64>> {
    Ok(db
        .query_row("SELECT keyed_from FROM audit_key WHERE id = 1", [], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .map(|k| k as u64))
}

fn read_secret(path: &Path) -> Result<Option<[u8; 32]>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut secret = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut secret).map_err(|e| {
                AgentError::Tampered(format!("the audit key {} is unusable: {e}", path.display()))
            })?;
            Ok(Some(secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AgentError::io("read", path, e)),
    }
}

fn fill_random(buf: &mut [u8]) -> Result<()> {
    let mut at = 0;
    while at < buf.len() {
        // SAFETY: getrandom writes at most len - at bytes into the buffer's tail.
        let n = unsafe { libc::getrandom(buf[at..].as_mut_ptr().cast(), buf.len() - at, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(AgentError::io("draw random bytes for", "the audit key", e));
        }
        at += n as usize;
    }
    Ok(())
}

/// The log file of a state directory.
pub fn path(state: &Path) -> PathBuf {
    state.join("audit.log")
}

pub(crate) fn schema(db: &Connection) -> Result<()> {
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS audit_head(id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS audit_key(id INTEGER PRIMARY KEY CHECK (id = 1), keyed_from INTEGER NOT NULL);",
    )?;
    Ok(())
}

fn head(db: &Connection) -> Result<(u64, String)> {
    Ok(db
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
        })
        .optional()?
        .unwrap_or((0, GENESIS.to_string())))
}

fn set_head(db: &Connection, seq: u64, hash: &str) -> Result<()> {
    db.execute(
        "INSERT INTO audit_head(id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT(id) DO UPDATE SET seq = ?1, hash = ?2",
        params![seq as i64, hash],
    )?;
    Ok(())
}

/// Appends an entry. `db` must be inside a write transaction (which the caller
/// commits): that serializes appends and moves the anchor with them.
pub(crate) fn append(
    db: &Connection,
    state: &Path,
    key: &Key,
    agent: &str,
    event: &str,
    english: &str,
    fields: Value,
) -> Result<Entry> {
    let (seq, prev) = head(db)?;
    let mut entry = Entry {
        seq: seq + 1,
        time: crate::time::now(),
        agent: agent.to_string(),
        event: event.to_string(),
        english: crate::text::one_line(english),
        fields,
        prev,
        hash: String::new(),
    };
    entry.hash = key.hash(&entry);
    let line = format_line(&entry);
    let p = path(state);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .map_err(|e| AgentError::io("open", &p, e))?;
    f.write_all(line.as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(|e| AgentError::io("append to", &p, e))?;
    set_head(db, entry.seq, &entry.hash)?;
    Ok(entry)
}

fn format_line(e: &Entry) -> String {
    let json = serde_json::json!({
        "event": e.event,
        "fields": e.fields,
        "prev": e.prev,
        "hash": e.hash,
    });
    format!(
        "{:06} {} {}: {}\t{}\n",
        e.seq,
        crate::time::rfc3339(e.time),
        e.agent,
        e.english,
        json
    )
}

fn parse_line(n: usize, line: &str) -> std::result::Result<Entry, String> {
    let bad = |why: &str| format!("line {n} is not an audit entry ({why})");
    let (human, json) = line.split_once('\t').ok_or_else(|| bad("no tab"))?;
    let mut parts = human.splitn(3, ' ');
    let seq: u64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no sequence number"))?;
    let time_s = parts.next().ok_or_else(|| bad("no time"))?;
    let rest = parts.next().ok_or_else(|| bad("no text"))?;
    let (agent, english) = rest.split_once(": ").ok_or_else(|| bad("no agent"))?;
    let v: Value = serde_json::from_str(json).map_err(|_| bad("its fields are not JSON"))?;
    let time = crate::time::parse_rfc3339(time_s).ok_or_else(|| bad("bad time"))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(Entry {
        seq,
        time,
        agent: agent.to_string(),
        event: s("event").ok_or_else(|| bad("no event"))?,
        english: english.to_string(),
        fields: v.get("fields").cloned().unwrap_or(Value::Null),
        prev: s("prev").ok_or_else(|| bad("no prev"))?,
        hash: s("hash").ok_or_else(|| bad("no hash"))?,
    })
}

/// Every line of the log with its entry, or why it is not one.
fn load(state: &Path) -> Result<Vec<(String, std::result::Result<Entry, String>)>> {
    let p = path(state);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(AgentError::Tampered("the log is not UTF-8 text".into()))
        }
        Err(e) => return Err(AgentError::io("read", &p, e)),
    };
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (l.to_string(), parse_line(i + 1, l)))
        .collect())
}

/// Every entry of the log, in file order, or the first line that is not one.
pub fn read(state: &Path) -> Result<Vec<std::result::Result<Entry, String>>> {
    Ok(load(state)?.into_iter().map(|(_, e)| e).collect())
}

/// The last `n` entries.
pub fn tail(state: &Path, n: usize) -> Result<Vec<Entry>> {
    let all = read(state)?;
    let start = all.len().saturating_sub(n);
    all.into_iter()
        .skip(start)
        .map(|e| e.map_err(AgentError::Tampered))
        .collect()
}

/// What `verify` found.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// Entries read.
    pub entries: u64,
    /// The chain is whole and ends at the anchor.
    pub intact: bool,
    /// The first problem, in English.
    pub problem: Option<String>,
}

/// Checks every link of the chain and the anchor. Reads only: nothing of the log or
/// the database is changed, whatever is found.
pub(crate) fn verify(db: &Connection, state: &Path, key: &Key) -> Result<Verdict> {
    let entries = match load(state) {
        Ok(e) => e,
        Err(AgentError::Tampered(why)) => {
            return Ok(Verdict {
                entries: 0,
                intact: false,
                problem: Some(why),
            })
        }
        Err(e) => return Err(e),
    };
    let (anchor_seq, anchor_hash) = head(db)?;
    let mut prev = GENESIS.to_string();
    let mut expect = 1u64;
    let fail = |n: u64, why: String| Verdict {
        entries: n,
        intact: false,
        problem: Some(why),
    };
    let total = entries.len() as u64;
    for (line, e) in entries {
        let e = match e {
            Ok(e) => e,
            Err(why) => return Ok(fail(total, why)),
        };
        // Byte for byte as written: any change to the line is an edit.
        if format_line(&e).trim_end_matches('\n') != line.as_str() {
            return Ok(fail(
                total,
                format!(
                    "entry {} was edited (the line differs from how it was written)",
                    e.seq
                ),
            ));
        }
        if e.seq != expect {
            let why = if e.seq > expect {
                format!(
                    "entry {expect} is missing (entry {} follows entry {})",
                    e.seq,
                    expect - 1
                )
            } else {
                format!(
                    "entry {} is out of order or repeated (after entry {})",
                    e.seq,
                    expect - 1
                )
            };
            return Ok(fail(total, why));
        }
        if e.prev != prev {
            return Ok(fail(
                total,
                format!(
                    "entry {} does not follow the entry before it (its previous hash differs)",
                    e.seq
                ),
            ));
        }
        if key.hash(&e) != e.hash {
            return Ok(fail(
                total,
                format!(
                    "entry {} was edited (its content does not match its hash)",
                    e.seq
                ),
            ));
        }
        prev = e.hash;
        expect += 1;
    }
    let last = expect - 1;
    if last != anchor_seq || (anchor_seq > 0 && prev != anchor_hash) {
        let why = if last < anchor_seq {
            format!(
                "the log ends at entry {last} but {anchor_seq} entries were written: the last {} are missing",
                anchor_seq - last
            )
        } else {
            format!("the log does not end at the recorded entry {anchor_seq} (it ends at {last})")
        };
        return Ok(fail(total, why));
    }
    Ok(Verdict {
        entries: total,
        intact: true,
        problem: None,
    })
}

/// After a crash: a last line cut short is removed, unless it is a whole entry that
/// only lacks its newline (then the newline is written); entries written before the
/// anchor moved (the crash hit between the append and the commit) are adopted when
/// they chain onto the anchor and carry the key's hashes. Runs inside a write
/// transaction.
pub(crate) fn recover(db: &Connection, state: &Path, key: &Key) -> Result<()> {
    let p = path(state);
    let mut text = match std::fs::read(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AgentError::io("read", &p, e)),
    };
    let (seq, hash) = head(db)?;
    if !text.is_empty() && !text.ends_with(b"\n") {
        let keep = text.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
        let last = String::from_utf8_lossy(&text[keep..]).into_owned();
        let whole = parse_line(0, &last)
            .is_ok_and(|e| key.hash(&e) == e.hash && format_line(&e).trim_end() == last);
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .map_err(|e| AgentError::io("open", &p, e))?;
        if whole {
            (&f).write_all(b"\n")
                .and_then(|_| f.sync_data())
                .map_err(|e| AgentError::io("repair", &p, e))?;
            text.push(b'\n');
        } else {
            f.set_len(keep as u64)
                .and_then(|_| f.sync_data())
                .map_err(|e| AgentError::io("repair", &p, e))?;
            text.truncate(keep);
        }
    }
    let text = String::from_utf8_lossy(&text);
    let mut prev = hash;
    let mut last = seq;
    for (i, line) in text.lines().enumerate().skip(seq as usize) {
        let Ok(e) = parse_line(i + 1, line) else {
            break;
        };
        if e.seq != last + 1 || e.prev != prev || key.hash(&e) != e.hash {
            break;
        }
        prev = e.hash;
        last = e.seq;
    }
    if last != seq {
        set_head(db, last, &prev)?;
    }
    Ok(())
}
