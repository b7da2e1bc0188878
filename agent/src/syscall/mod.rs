//! The natural-language system call and everything around it, over one state
//! directory: the state database (SQLite in WAL mode, [`journal`]), capabilities
//! through it ([`capabilities`]: minting, delegation, revocation, confinement), the
//! call itself ([`call`]: understand, check, execute or stage or deny), the staging
//! area's decisions ([`staging`]), undo ([`undo`]), the trust monitor ([`trust`]) and
//! crash recovery ([`recovery`]).

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, TransactionBehavior};
use serde::Serialize;
use serde_json::{json, Value};

mod call;
mod capabilities;
mod journal;
mod model;
mod recovery;
mod staging;
mod trust;
mod undo;

pub use call::unambiguous as syscall_template_is_unambiguous;
pub use capabilities::confinement;
pub use model::{Model, SyscallModel};
pub use trust::{BURST_CALLS, BURST_SECONDS, TRUST_DENIALS, TRUST_WINDOW, USUAL_AFTER};

use capabilities::{any_revoked, capability_request};
use journal::{make_state_dir, open_db, ExecLock, MIGRATIONS, SCHEMA};
use recovery::fault;
use trust::note_call;
use undo::UNDONE;

use crate::audit;
use crate::cap::{self, Attenuation, Authority, Grant, Token};
use crate::error::{AgentError, Result};

/// The state directory's database file.
pub(crate) const DATABASE: &str = "etch.db";
use crate::registry::{
    Approval, ArgType, Builtin, Call, Executor, Registry, Resolution, Reversibility,
};
use crate::tools::{self, Env, Undo};

/// What became of a system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// It ran.
    Executed,
    /// It waits for a person's approval.
    Staged,
    /// The capability, the registry or a person refused it; nothing ran.
    Denied,
    /// It was allowed and tried, and it did not work.
    Failed,
}

/// The answer to a system call.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    /// What became of it.
    pub status: Status,
    /// The action's number (for `etch approvals`, `etch undo`, the audit log).
    pub action: i64,
    /// The tool chosen (empty when none was).
    pub tool: String,
    /// Its arguments.
    pub args: BTreeMap<String, String>,
    /// The English result.
    pub english: String,
    /// Whether `etch undo ACTION` can take it back.
    pub undo: bool,
    /// How the call was found (template or model), when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// The tool's output (file content, listing, command output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// One recorded action (`etch approvals show`).
#[derive(Clone, Debug, Serialize)]
pub struct Action {
    /// Its number.
    pub id: i64,
    /// Who asked.
    pub agent: String,
    /// The English request as written.
    pub request: String,
    /// Tool (empty if none was found).
    pub tool: String,
    /// Arguments.
    pub args: BTreeMap<String, String>,
    /// The call in English.
    pub english: String,
    /// executing, executed, staged, denied, failed.
    pub status: String,
    /// read-only, reversible, irreversible.
    pub reversibility: String,
    /// When it was asked (RFC 3339).
    pub created: String,
    /// When a staged action lapses (RFC 3339).
    pub expires: Option<String>,
    /// Who approved or denied it.
    pub decided_by: Option<String>,
    /// Why it was denied, staged or failed.
    pub reason: Option<String>,
    /// The result sentence.
    pub result: Option<String>,
    /// Can be undone now.
    pub undoable: bool,
    /// Has been undone.
    pub undone: bool,
    /// Idempotency key.
    pub key: String,
}

/// A request to [`Syscalls::syscall`].
pub struct Request<'a> {
    /// The agent asking.
    pub agent: &'a str,
    /// Its capability token (base64).
    pub token: &'a str,
    /// Relative paths are taken from here.
    pub workspace: &'a Path,
    /// The English request.
    pub text: &'a str,
}

/// How long a staged action waits for a person by default.
pub const STAGED_FOR: u64 = 24 * 3600;

/// The system-call layer over one state directory.
pub struct Syscalls {
    state: PathBuf,
    db: Mutex<Connection>,
    registry: Registry,
    authority: Authority,
    audit_key: audit::Key,
}

impl Syscalls {
    /// True when `state` holds a state directory made by [`Syscalls::open`].
    pub fn exists(state: &Path) -> bool {
        state.join(DATABASE).is_file()
    }

    /// Opens (creating) the state directory: database, root key, audit log; recovers
    /// from a crash (a cut audit line, actions that were executing or being undone).
    pub fn open(state: &Path) -> Result<Self> {
        make_state_dir(state)?;
        let state = state
            .canonicalize()
            .map_err(|e| AgentError::io("open", state, e))?;
        let db = open_db(&state)?;
        db.execute_batch(SCHEMA)?;
        for (table, column, sql) in MIGRATIONS {
            let has: bool = db.query_row(
                &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
                params![column],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )?;
            if !has {
                db.execute_batch(sql)?;
            }
        }
        db.execute_batch("CREATE INDEX IF NOT EXISTS calls_root ON calls(root, id);")?;
        audit::schema(&db)?;
        let audit_key = {
            db.execute_batch("BEGIN IMMEDIATE")?;
            let k = audit::Key::open_or_make(&db, &state);
            db.execute_batch(if k.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
            k?
        };
        let mut registry = Registry::default();
        let tools_file = state.join("tools.json");
        if tools_file.exists() {
            let text = std::fs::read_to_string(&tools_file)
                .map_err(|e| AgentError::io("read", &tools_file, e))?;
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                AgentError::Invalid(format!("{} is not JSON: {e}", tools_file.display()))
            })?;
            registry.import_mcp(&v)?;
        }
        let authority = Authority::open(&state)?;
        let s = Syscalls {
            state,
            db: Mutex::new(db),
            registry,
            authority,
            audit_key,
        };
        s.recover()?;
        Ok(s)
    }

    /// Checks the audit log of an existing state directory without changing
    /// anything: no crash recovery runs, no key is made.
    pub fn verify_audit_at(state: &Path) -> Result<audit::Verdict> {
        if !Self::exists(state) {
            return Err(AgentError::NotFound(format!(
                "there is no etch state at {}",
                state.display()
            )));
        }
        let db = Connection::open_with_flags(
            state.join(DATABASE),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        db.busy_timeout(std::time::Duration::from_secs(30))?;
        let has_key_table: bool = db.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_key'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        let key = if has_key_table {
            audit::Key::load(&db, state)?
        } else {
            audit::Key::legacy()
        };
        audit::verify(&db, state, &key)
    }

    /// The state directory.
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// The tool registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The root key's public half.
    pub fn public_key(&self) -> biscuit_auth::PublicKey {
        self.authority.public()
    }

    /// Imports MCP tool descriptors into the state directory's registry (kept in
    /// `STATE/tools.json`).
    pub fn import_tools(&mut self, descriptors: &Value, by: &str) -> Result<Vec<String>> {
        let added = self.registry.import_mcp(descriptors)?;
        let tools_file = self.state.join("tools.json");
        let mut all: Vec<Value> = match std::fs::read_to_string(&tools_file) {
            Ok(t) => serde_json::from_str::<Value>(&t)
                .ok()
                .and_then(|v| v.get("tools").and_then(Value::as_array).cloned())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let list = descriptors.get("tools").unwrap_or(descriptors);
        if let Some(a) = list.as_array() {
            all.extend(a.iter().cloned());
        }
        write_atomic(
            &tools_file,
            &serde_json::to_vec_pretty(&json!({ "tools": all })).unwrap_or_default(),
        )?;
        self.record(
            by,
            "tools",
            &format!("imported the tools {}", added.join(", ")),
            json!({ "tools": added }),
        )?;
        Ok(added)
    }

    fn with_tx<T>(&self, f: impl FnOnce(&rusqlite::Transaction) -> Result<T>) -> Result<T> {
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let v = f(&tx)?;
        tx.commit()?;
        Ok(v)
    }

    /// Writes one audit entry in a transaction of its own.
    pub fn record(
        &self,
        agent: &str,
        event: &str,
        english: &str,
        fields: Value,
    ) -> Result<audit::Entry> {
        self.with_tx(|tx| {
            audit::append(
                tx,
                &self.state,
                &self.audit_key,
                agent,
                event,
                english,
                fields,
            )
        })
    }

    /// The audit log's verdict.
    pub fn verify_audit(&self) -> Result<audit::Verdict> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        audit::verify(&db, &self.state, &self.audit_key)
    }
}

fn key(id: i64) -> String {
    format!("etch-action-{id}")
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|e| AgentError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| AgentError::io("write", path, e))
}
