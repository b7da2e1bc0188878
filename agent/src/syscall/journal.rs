//! The state database: its schema (and the columns added since etch 0.1), the
//! action journal's rows, the lock an executing action holds, reading actions back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};

use super::*;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS actions(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  agent TEXT NOT NULL, request TEXT NOT NULL, tool TEXT NOT NULL, args TEXT NOT NULL,
  english TEXT NOT NULL, status TEXT NOT NULL, reversibility TEXT NOT NULL,
  token TEXT NOT NULL, rules TEXT NOT NULL, workspace TEXT NOT NULL,
  created INTEGER NOT NULL, expires INTEGER, decided_by TEXT, decided_at INTEGER,
  reason TEXT, result TEXT, undo TEXT, undone INTEGER NOT NULL DEFAULT 0,
  idem TEXT UNIQUE, paths TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS actions_status ON actions(status);
CREATE TABLE IF NOT EXISTS usage(rev TEXT PRIMARY KEY, calls INTEGER NOT NULL, cost INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revoked(rev TEXT PRIMARY KEY, at INTEGER NOT NULL, by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trust(agent TEXT PRIMARY KEY, observe INTEGER NOT NULL, reason TEXT, since INTEGER, cleared INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS calls(id INTEGER PRIMARY KEY, agent TEXT NOT NULL, tool TEXT NOT NULL, at INTEGER NOT NULL, denied INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS calls_agent ON calls(agent, id);
CREATE TABLE IF NOT EXISTS root_trust(root TEXT PRIMARY KEY, agent TEXT NOT NULL, observe INTEGER NOT NULL, reason TEXT, since INTEGER, cleared INTEGER NOT NULL DEFAULT 0);
";
/// Columns added after etch 0.1, with their definitions: added to older databases.
pub(super) const MIGRATIONS: [(&str, &str, &str); 1] =
    [("calls", "root", "ALTER TABLE calls ADD COLUMN root TEXT")];
/// An exclusive lock on one action while it executes (released by the kernel when
/// the process dies, so recovery can tell a live execution from a dead one).
pub(super) struct ExecLock {
    _file: std::fs::File,
}
impl ExecLock {
    pub(super) fn try_take(state: &Path, id: i64) -> Result<Option<Self>> {
        let dir = state.join("locks");
        std::fs::create_dir_all(&dir).map_err(|e| AgentError::io("create", &dir, e))?;
        let p = dir.join(format!("{id}.lock"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| AgentError::io("open", &p, e))?;
        // SAFETY: flock on an fd this File owns.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        Ok(if r == 0 {
            Some(ExecLock { _file: f })
        } else {
            None
        })
    }
}
/// Makes the state directory (mode 0700) or checks that the path is one.
pub(super) fn make_state_dir(state: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::metadata(state) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(AgentError::Invalid(format!(
            "the state path {} exists and is not a directory",
            state.display()
        ))),
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state)
            .map_err(|e| AgentError::io("create", state, e)),
    }
}
pub(super) fn open_db(state: &Path) -> Result<Connection> {
    let db = Connection::open(state.join(DATABASE))?;
    db.busy_timeout(std::time::Duration::from_secs(30))?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    Ok(db)
}
pub(super) const ROW: &str = "id, agent, request, tool, args, english, status, reversibility, token, rules, workspace, created, expires, decided_by, reason, result, undo, undone, idem, paths";
pub(super) struct Row {
    pub(super) id: i64,
    pub(super) agent: String,
    pub(super) request: String,
    pub(super) tool: String,
    pub(super) args: BTreeMap<String, String>,
    pub(super) paths: BTreeMap<String, PathBuf>,
    pub(super) english: String,
    pub(super) status: String,
    pub(super) reversibility: String,
    pub(super) token: String,
    pub(super) rules: crate::confine::Rules,
    pub(super) workspace: String,
    pub(super) created: i64,
    pub(super) expires_at: Option<u64>,
    pub(super) decided_by: Option<String>,
    pub(super) reason: Option<String>,
    pub(super) result: Option<String>,
    pub(super) undo_record: Option<String>,
    /// [`NOT_UNDONE`], [`UNDONE`] or [`UNDOING`].
    pub(super) undone: i64,
    pub(super) key: Option<String>,
}
pub(super) fn row(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    let args: String = r.get(4)?;
    let rules: String = r.get(9)?;
    Ok(Row {
        id: r.get(0)?,
        agent: r.get(1)?,
        request: r.get(2)?,
        tool: r.get(3)?,
        args: serde_json::from_str(&args).unwrap_or_default(),
        paths: serde_json::from_str(&r.get::<_, String>(19)?).unwrap_or_default(),
        english: r.get(5)?,
        status: r.get(6)?,
        reversibility: r.get(7)?,
        token: r.get(8)?,
        rules: serde_json::from_str(&rules).unwrap_or_default(),
        workspace: r.get(10)?,
        created: r.get(11)?,
        expires_at: r.get::<_, Option<i64>>(12)?.map(|e| e as u64),
        decided_by: r.get(13)?,
        reason: r.get(14)?,
        result: r.get(15)?,
        undo_record: r.get(16)?,
        undone: r.get::<_, i64>(17)?,
        key: r.get(18)?,
    })
}
impl Row {
    pub(super) fn public(&self) -> Action {
        Action {
            id: self.id,
            agent: self.agent.clone(),
            request: self.request.clone(),
            tool: self.tool.clone(),
            args: self.args.clone(),
            english: self.english.clone(),
            status: self.status.clone(),
            reversibility: self.reversibility.clone(),
            created: crate::time::rfc3339(self.created as u64),
            expires: self.expires_at.map(crate::time::rfc3339),
            decided_by: self.decided_by.clone(),
            reason: self.reason.clone(),
            result: self.result.clone(),
            undoable: self.status == "executed"
                && self.undo_record.is_some()
                && self.undone != UNDONE,
            undone: self.undone == UNDONE,
            key: self.key.clone().unwrap_or_default(),
        }
    }
}

impl Syscalls {
    pub(super) fn get(&self, id: i64) -> Result<Row> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        db.query_row(
            &format!("SELECT {ROW} FROM actions WHERE id = ?1"),
            params![id],
            row,
        )
        .optional()?
        .ok_or_else(|| AgentError::NotFound(format!("there is no action {id}")))
    }
    /// One action.
    pub fn show(&self, id: i64) -> Result<Action> {
        Ok(self.get(id)?.public())
    }
    /// Actions waiting for approval (or all, newest first, with `all`).
    pub fn list(&self, all: bool) -> Result<Vec<Action>> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let q = if all {
            format!("SELECT {ROW} FROM actions ORDER BY id DESC")
        } else {
            format!("SELECT {ROW} FROM actions WHERE status = 'staged' ORDER BY id")
        };
        let mut st = db.prepare(&q)?;
        let rows = st.query_map([], row)?;
        let now = crate::time::now();
        let mut out = Vec::new();
        for r in rows {
            let r = r?;
            if !all && r.expires_at.is_some_and(|e| now > e) {
                continue;
            }
            out.push(r.public());
        }
        Ok(out)
    }
}
