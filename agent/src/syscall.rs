//! The natural-language system call and everything around it: the state database
//! (SQLite in WAL mode) with the action journal, the staging area, budgets,
//! revocations and the trust monitor; approvals; undo.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use serde_json::{json, Value};

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

/// The on-chip model as a chooser of tools: the log-likelihood of each candidate
/// (an English rendering) after the request, higher is likelier.
pub trait Model {
    /// One score per candidate.
    fn rank(&self, request: &str, candidates: &[String]) -> Result<Vec<f64>>;
    /// Context events since the last call, in English (for the audit log).
    fn events(&self) -> Vec<String> {
        Vec::new()
    }
}

impl<D: etch_driver::Device> Model for etch_runtime::Engine<D> {
    fn rank(&self, request: &str, candidates: &[String]) -> Result<Vec<f64>> {
        // Each candidate's mean log-likelihood after the request. A request too long
        // for the chip's positions (with a candidate) is cut from the front; the
        // request's own score is taken once per cut.
        let mut req: &str = request;
        let mut prefix: Option<(f64, usize)> = None;
        let mut out = Vec::with_capacity(candidates.len());
        for c in candidates {
            let score = loop {
                match self.score(&format!("{req}\n{c}")) {
                    Ok(s) => {
                        let (p_total, p_len) = match prefix {
                            Some(p) => p,
                            None => {
                                let p = self.score(&format!("{req}\n"))?;
                                *prefix.insert((p.total, p.tokens.len()))
                            }
                        };
                        let n = s.tokens.len().saturating_sub(p_len).max(1);
                        break (s.total - p_total) / n as f64;
                    }
                    Err(e) if req.is_empty() => return Err(e.into()),
                    Err(_) => {
                        let cut = req
                            .char_indices()
                            .nth(req.chars().count() / 2)
                            .map_or(req.len(), |(i, _)| i);
                        req = &req[cut..];
                        prefix = None;
                    }
                }
            };
            out.push(score);
        }
        Ok(out)
    }

    fn events(&self) -> Vec<String> {
        self.take_events().iter().map(|e| e.describe()).collect()
    }
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

/// Trust monitor: this many denials among an agent's last [`TRUST_WINDOW`] calls,
/// at a denial rate of one half or more, put it in observe mode.
pub const TRUST_DENIALS: u64 = 5;
/// Trust monitor window (calls).
pub const TRUST_WINDOW: u64 = 20;
/// Trust monitor: this many calls within [`BURST_SECONDS`] put an agent in observe mode.
pub const BURST_CALLS: u64 = 60;
/// Trust monitor burst window.
pub const BURST_SECONDS: u64 = 10;
/// Trust monitor: after this many calls, an irreversible tool the agent never used
/// before puts it in observe mode.
pub const USUAL_AFTER: u64 = 20;

/// The system-call layer over one state directory.
pub struct Syscalls {
    state: PathBuf,
    db: Mutex<Connection>,
    registry: Registry,
    authority: Authority,
    audit_key: audit::Key,
}

const SCHEMA: &str = "
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
const MIGRATIONS: [(&str, &str, &str); 1] =
    [("calls", "root", "ALTER TABLE calls ADD COLUMN root TEXT")];

/// An exclusive lock on one action while it executes (released by the kernel when
/// the process dies, so recovery can tell a live execution from a dead one).
struct ExecLock {
    _file: std::fs::File,
}

impl ExecLock {
    fn try_take(state: &Path, id: i64) -> Result<Option<Self>> {
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

    /// Mints a capability (and says so in the audit log).
    pub fn mint(&self, g: &Grant, by: &str) -> Result<String> {
        let token = self.authority.mint(g)?;
        let t = Token::parse(&token, self.public_key())?;
        let tools = g.tools().join(", ");
        self.record(
            by,
            "capability",
            &format!(
                "minted a capability for {} in {} (tools {tools}{}{}{})",
                g.agent,
                g.workspace.display(),
                g.limits
                    .expires
                    .map(|e| format!("; expires {}", crate::time::rfc3339(e)))
                    .unwrap_or_default(),
                g.limits
                    .calls
                    .map(|c| format!("; {c} calls"))
                    .unwrap_or_default(),
                g.limits
                    .cost
                    .map(|c| format!("; cost {c}"))
                    .unwrap_or_default(),
            ),
            json!({ "agent": g.agent, "tools": tools, "revocation": t.revocation_ids() }),
        )?;
        Ok(token)
    }

    /// Attenuates a capability (recorded).
    pub fn attenuate(&self, token: &str, a: &Attenuation, by: &str) -> Result<String> {
        let t = Token::parse(token, self.public_key())?;
        let child = t.attenuate(a)?;
        let ids = child.revocation_ids();
        self.record(
            by,
            "capability",
            &format!(
                "delegated a capability of {} to {}",
                t.agent()?,
                a.agent.clone().unwrap_or_else(|| "the same agent".into())
            ),
            json!({ "block": child.blocks() - 1, "revocation": ids }),
        )?;
        child.to_base64()
    }

    /// Revokes a token: its last block, so it and every token delegated from it stop
    /// working.
    pub fn revoke(&self, token: &str, by: &str) -> Result<String> {
        let t = Token::parse(token, self.public_key())?;
        let ids = t.revocation_ids();
        let last = ids.last().cloned().unwrap_or_default();
        let agent = t.agent()?;
        self.with_tx(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO revoked(rev, at, by) VALUES (?1, ?2, ?3)",
                params![last, crate::time::now() as i64, by],
            )?;
            audit::append(
                tx,
                &self.state,
                &self.audit_key,
                by,
                "revoked",
                &format!(
                    "revoked a capability of {agent} (block {}) and all delegated from it",
                    ids.len() - 1
                ),
                json!({ "revocation": last }),
            )
        })?;
        Ok(last)
    }

    /// The natural-language system call: template match, else the model's ranking of
    /// the registry's candidates; the capability check; execute (read-only,
    /// reversible), stage (irreversible, observe mode) or deny; an English answer. Every
    /// step is in the audit log.
    pub fn syscall(&self, req: &Request, model: Option<&dyn Model>) -> Result<Answer> {
        let agent = req.agent;
        let text = req.text.trim();
        let token = match self.admit(agent, req.token) {
            Ok(t) => t,
            Err(why) => return self.deny_unparsed(agent, None, text, &why),
        };
        let root = Some(token.root());
        if text.is_empty() || text.len() > 4096 || text.contains('\0') {
            return self.deny_unparsed(
                agent,
                root.as_deref(),
                req.text,
                "the request is empty, longer than 4096 bytes or contains a NUL",
            );
        }
        // 1. Template; 2. the model over the registry's candidates.
        let (call, resolution) = match self.registry.match_template(text) {
            Some(c) => (c, Resolution::Template),
            None => match model {
                None => return self.deny_unparsed(
                    agent,
                    root.as_deref(),
                    text,
                    "no template understands the request and no model is attached to choose a tool",
                ),
                Some(m) => match self.propose(m, agent, text)? {
                    Some(c) => (c, Resolution::Model),
                    None => {
                        return self.deny_unparsed(
                            agent,
                            root.as_deref(),
                            text,
                            "no tool of the registry fits the request",
                        )
                    }
                },
            },
        };
        self.decide(agent, text, &token, req.workspace, call, resolution)
    }

    /// A structured call (the model already chose): the same checks as [`Self::syscall`]
    /// from the capability on.
    pub fn call(&self, agent: &str, token: &str, workspace: &Path, call: &Call) -> Result<Answer> {
        let english = self.registry.render(call);
        let token = match self.admit(agent, token) {
            Ok(t) => t,
            Err(why) => return self.deny_unparsed(agent, None, &english, &why),
        };
        let call = match self.registry.validate(call) {
            Ok(c) => c,
            Err(e) => {
                return self.deny_unparsed(agent, Some(&token.root()), &english, &e.to_string())
            }
        };
        self.decide(
            agent,
            &english,
            &token,
            workspace,
            call,
            Resolution::Template,
        )
    }

    /// A well-formed agent name and a token signed by this runtime's key, or why not.
    fn admit(&self, agent: &str, token: &str) -> std::result::Result<Token, String> {
        cap::check_agent(agent).map_err(|e| e.to_string())?;
        Token::parse(token, self.public_key()).map_err(|e| e.to_string())
    }

    /// The registry's candidates for a request with the model's scores, best first
    /// (what step 2 of a syscall chooses from; nothing is checked or run).
    pub fn ranked(&self, m: &dyn Model, text: &str) -> Result<Vec<(Call, String, f64)>> {
        let candidates = self.registry.candidates(text);
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let english: Vec<String> = candidates.iter().map(|c| self.registry.render(c)).collect();
        let scores = m.rank(text, &english)?;
        let mut out: Vec<(Call, String, f64)> = candidates
            .into_iter()
            .zip(english)
            .zip(scores)
            .map(|((c, e), s)| (c, e, s))
            .collect();
        out.sort_by(|a, b| b.2.total_cmp(&a.2));
        Ok(out)
    }

    fn propose(&self, m: &dyn Model, agent: &str, text: &str) -> Result<Option<Call>> {
        let ranked = self.ranked(m, text)?;
        for e in m.events() {
            self.record(agent, "context", &e, json!({}))?;
        }
        let Some((best, english, _)) = ranked.first().filter(|r| r.2.is_finite()) else {
            return Ok(None);
        };
        let candidates: Vec<&str> = ranked.iter().map(|r| r.1.as_str()).collect();
        let scores: Vec<f64> = ranked.iter().map(|r| r.2).collect();
        self.record(
            agent,
            "proposal",
            &format!(
                "the model proposed \"{english}\" for \"{text}\" (of {} candidates)",
                ranked.len()
            ),
            json!({ "candidates": candidates, "scores": scores }),
        )?;
        Ok(Some(best.clone()))
    }

    /// Records a request that never became a call, denied; `root` is the capability
    /// root when the token was admitted (its trust monitor counts the denial).
    fn deny_unparsed(
        &self,
        agent: &str,
        root: Option<&str>,
        text: &str,
        why: &str,
    ) -> Result<Answer> {
        let who = if cap::check_agent(agent).is_ok() {
            agent.to_string()
        } else {
            format!("{agent:?}")
        };
        let id = self.with_tx(|tx| {
            tx.execute(
                "INSERT INTO actions(agent, request, tool, args, english, status, reversibility, token, rules, workspace, created, reason) \
                 VALUES (?1, ?2, '', '{}', ?2, 'denied', '', '', '{}', '', ?3, ?4)",
                params![who, text, crate::time::now() as i64, why],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute("UPDATE actions SET idem = ?1 WHERE id = ?2", params![key(id), id])?;
            note_call(tx, &who, root, "", true)?;
            audit::append(
                tx,
                &self.state,
                &self.audit_key,
                &who,
                "denied",
                &format!("denied action {id} \"{text}\": {why}"),
                json!({ "action": id, "request": text, "reasons": [why] }),
            )?;
            Ok(id)
        })?;
        if let Some(root) = root {
            self.watch(root)?;
        }
        Ok(Answer {
            status: Status::Denied,
            action: id,
            tool: String::new(),
            args: BTreeMap::new(),
            english: format!("denied: {why}"),
            undo: false,
            resolution: None,
            output: None,
        })
    }

    fn decide(
        &self,
        agent: &str,
        text: &str,
        token: &Token,
        workspace: &Path,
        call: Call,
        resolution: Resolution,
    ) -> Result<Answer> {
        let tool = self
            .registry
            .get(&call.tool)
            .cloned()
            .ok_or_else(|| AgentError::NotFound(format!("there is no tool {:?}", call.tool)))?;
        let english = self.registry.render(&call);
        // Symlinks in the workspace path itself are resolved, as at minting.
        let base = match workspace.canonicalize() {
            Ok(p) => p,
            Err(_) => cap::absolute(workspace)?,
        };
        let paths: BTreeMap<String, PathBuf> = tool
            .args
            .iter()
            .filter(|a| a.ty == ArgType::Path)
            .filter_map(|a| {
                Some((
                    a.name.clone(),
                    tools::resolve(&base, call.args.get(&a.name)?),
                ))
            })
            .collect();
        let cap_ws = token.workspace()?;
        let roots = confinement(token, &cap_ws)?;
        let creq = capability_request(agent, &tool, &call, &paths);
        let revs = token.revocation_ids();
        let root = token.root();
        let owner = token.agent()?;
        let observe = self.observing_root(&root, &owner)?;
        let unusual = self.unusual(&root, agent, &tool.name, tool.reversibility)?;
        let now = crate::time::now();
        // Authorize, charge the budget and journal the action in one transaction.
        let (id, decision, lock) = self.with_tx(|tx| {
            let revoked = any_revoked(tx, &revs)?;
            let mut usage = Vec::new();
            for r in &revs {
                usage.push(
                    tx.query_row("SELECT calls, cost FROM usage WHERE rev = ?1", params![r], |r| {
                        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
                    })
                    .optional()?
                    .unwrap_or((0, 0)),
                );
            }
            let verdict: std::result::Result<(), Vec<String>> = if revoked {
                Err(vec!["the capability has been revoked".into()])
            } else {
                token.authorize(&creq, &usage)
            };
            let decision = match verdict {
                Err(reasons) => Decision::Deny(reasons),
                Ok(()) if tool.approval == Approval::Never => {
                    Decision::Deny(vec![format!("{} is listed but never runs", tool.name)])
                }
                Ok(()) => {
                    for r in &revs {
                        tx.execute(
                            "INSERT INTO usage(rev, calls, cost) VALUES (?1, 1, ?2) \
                             ON CONFLICT(rev) DO UPDATE SET calls = calls + 1, cost = cost + ?2",
                            params![r, tool.cost as i64],
                        )?;
                    }
                    if tool.reversibility == Reversibility::Irreversible {
                        Decision::Stage(format!("{} is irreversible", tool.name))
                    } else if tool.approval == Approval::Always {
                        Decision::Stage(format!("{} always needs approval", tool.name))
                    } else if tool.reversibility != Reversibility::ReadOnly && observe.is_some() {
                        Decision::Stage(format!("{agent} is in observe mode ({})", observe.clone().unwrap_or_default()))
                    } else if let Some(why) = &unusual {
                        Decision::Stage(why.clone())
                    } else {
                        Decision::Execute
                    }
                }
            };
            let (status, reason, expires) = match &decision {
                Decision::Deny(r) => ("denied", Some(r.join("; ")), None),
                Decision::Stage(r) => ("staged", Some(r.clone()), Some((now + STAGED_FOR) as i64)),
                Decision::Execute => ("executing", None, None),
            };
            tx.execute(
                "INSERT INTO actions(agent, request, tool, args, english, status, reversibility, token, rules, workspace, created, expires, reason, paths) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    agent,
                    text,
                    tool.name,
                    serde_json::to_string(&call.args).unwrap_or_default(),
                    english,
                    status,
                    tool.reversibility.name(),
                    token.to_base64()?,
                    "{}",
                    cap_ws.display().to_string(),
                    now as i64,
                    expires,
                    reason,
                    serde_json::to_string(&paths).unwrap_or_default()
                ],
            )?;
            let id = tx.last_insert_rowid();
            // The rules name the action's own trash, so they are made with its number.
            let rules = tools::rules_for(&tool, &self.state, &roots, id);
            tx.execute(
                "UPDATE actions SET idem = ?1, rules = ?2 WHERE id = ?3",
                params![key(id), serde_json::to_string(&rules).unwrap_or_default(), id],
            )?;
            note_call(tx, agent, Some(&root), &tool.name, matches!(decision, Decision::Deny(_)))?;
            let how = match resolution {
                Resolution::Template => "template",
                Resolution::Model => "model",
            };
            let fields = json!({ "action": id, "request": text, "tool": tool.name, "args": call.args, "resolution": how });
            audit::append(tx, &self.state, &self.audit_key, agent, "request", &format!("asked \"{text}\" → action {id}: {english} ({how})"), fields.clone())?;
            match &decision {
                Decision::Deny(r) => audit::append(
                    tx,
                    &self.state,
                    &self.audit_key,
                    agent,
                    "denied",
                    &format!("denied action {id} ({english}): {}", r.join("; ")),
                    json!({ "action": id, "reasons": r }),
                )?,
                Decision::Stage(r) => audit::append(
                    tx,
                    &self.state,
                    &self.audit_key,
                    agent,
                    "staged",
                    &format!("staged action {id} ({english}) for a person's approval: {r}"),
                    json!({ "action": id, "reason": r, "expires": crate::time::rfc3339(now + STAGED_FOR) }),
                )?,
                Decision::Execute => audit::append(
                    tx,
                    &self.state,
                    &self.audit_key,
                    agent,
                    "allowed",
                    &format!("allowed action {id} ({english}); executing"),
                    json!({ "action": id }),
                )?,
            };
            // An executing action is locked before anyone can see it executing, so
            // crash recovery in another process never mistakes it for a dead one.
            let lock = match decision {
                Decision::Execute => ExecLock::try_take(&self.state, id)?,
                _ => None,
            };
            Ok((id, decision, lock))
        })?;
        if unusual.is_some() && !matches!(decision, Decision::Deny(_)) {
            self.set_observe(&root, &owner, unusual.as_deref().unwrap_or(""))?;
        }
        self.watch(&root)?;
        let mut answer = Answer {
            status: Status::Denied,
            action: id,
            tool: tool.name.clone(),
            args: call.args.clone(),
            english: String::new(),
            undo: false,
            resolution: Some(resolution),
            output: None,
        };
        match decision {
            Decision::Deny(r) => {
                answer.english = format!("denied: {}", r.join("; "));
            }
            Decision::Stage(r) => {
                answer.status = Status::Staged;
                answer.english = format!(
                    "staged: \"{english}\" waits for a person's approval ({r}); see etch approvals show {id}"
                );
            }
            Decision::Execute => {
                let out = self.run(id, agent, &tool, &call, &paths, &cap_ws, &roots);
                drop(lock);
                let out = out?;
                answer.status = if out.ok {
                    Status::Executed
                } else {
                    Status::Failed
                };
                answer.undo = out.undo.is_some();
                answer.english = out.english;
                answer.output = out.output;
            }
        }
        Ok(answer)
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        id: i64,
        agent: &str,
        tool: &crate::registry::Tool,
        call: &Call,
        paths: &BTreeMap<String, PathBuf>,
        ws: &Path,
        roots: &[PathBuf],
    ) -> Result<tools::Outcome> {
        let k = key(id);
        let env = Env {
            state: &self.state,
            workspace: ws,
            roots,
            action: id,
            key: &k,
            agent,
        };
        fault("before-effect", &self.state);
        let out = match tools::execute(tool, call, paths, &env) {
            Ok(o) => o,
            Err(e) => tools::Outcome {
                ok: false,
                english: e.to_string(),
                output: None,
                undo: None,
            },
        };
        fault("after-effect", &self.state);
        self.finish(id, agent, &out)?;
        Ok(out)
    }

    fn finish(&self, id: i64, agent: &str, out: &tools::Outcome) -> Result<()> {
        let status = if out.ok { "executed" } else { "failed" };
        let undo = out
            .undo
            .as_ref()
            .map(|u| serde_json::to_string(u).unwrap_or_default());
        self.with_tx(|tx| {
            tx.execute(
                "UPDATE actions SET status = ?1, result = ?2, undo = ?3 WHERE id = ?4",
                params![status, out.english, undo, id],
            )?;
            let tail = if out.undo.is_some() {
                format!(" (undo: etch undo {id})")
            } else {
                String::new()
            };
            audit::append(
                tx,
                &self.state,
                &self.audit_key,
                agent,
                status,
                &format!("{status} action {id}: {}{tail}", out.english),
                json!({ "action": id, "ok": out.ok, "undo": out.undo.is_some() }),
            )
        })?;
        Ok(())
    }

    /// Approves a staged action and executes it — exactly once: the action moves to
    /// `executing` in the same transaction that checks it is still `staged`, the
    /// execution holds the action's lock, and its effect carries the action's
    /// idempotency key.
    pub fn approve(&self, id: i64, by: &str) -> Result<Answer> {
        let a = self.get(id)?;
        let token = Token::parse(&a.token, self.public_key())?;
        let tool = self.registry.get(&a.tool).cloned().ok_or_else(|| {
            AgentError::NotFound(format!(
                "action {id}'s tool {} is no longer registered",
                a.tool
            ))
        })?;
        let call = Call {
            tool: a.tool.clone(),
            args: a.args.clone(),
        };
        let ws = PathBuf::from(&a.workspace);
        let paths = a.paths.clone();
        let now = crate::time::now();
        // Still allowed now? (revocation, expiry; the budget was charged at the request)
        let creq = capability_request(&a.agent, &tool, &call, &paths);
        let revs = token.revocation_ids();
        let roots = confinement(&token, &ws)?;
        let lock = self.with_tx(|tx| {
            let status: String = tx.query_row("SELECT status FROM actions WHERE id = ?1", params![id], |r| r.get(0))?;
            if status != "staged" {
                let by_whom = a.decided_by.clone().map(|b| format!(" (decided by {b})")).unwrap_or_default();
                return Err(AgentError::Conflict(format!(
                    "action {id} is not waiting for approval: it is {status}{by_whom}"
                )));
            }
            if a.expires_at.is_some_and(|e| now > e) {
                tx.execute("UPDATE actions SET status = 'denied', reason = 'expired before approval' WHERE id = ?1", params![id])?;
                audit::append(tx, &self.state, &self.audit_key, by, "expired", &format!("action {id} ({}) expired before approval", a.english), json!({ "action": id }))?;
                return Ok(None);
            }
            if any_revoked(tx, &revs)? {
                return Err(AgentError::Conflict(format!("action {id}'s capability has been revoked; deny it instead")));
            }
            if let Err(r) = token.authorize(&creq, &[]) {
                return Err(AgentError::Conflict(format!("action {id}'s capability no longer allows it: {}", r.join("; "))));
            }
            tx.execute(
                "UPDATE actions SET status = 'executing', decided_by = ?1, decided_at = ?2 WHERE id = ?3",
                params![by, now as i64, id],
            )?;
            audit::append(tx, &self.state, &self.audit_key, by, "approved", &format!("approved action {id} of {}: {}", a.agent, a.english), json!({ "action": id, "agent": a.agent }))?;
            Ok(Some(ExecLock::try_take(&self.state, id)?))
        })?;
        let Some(lock) = lock else {
            return Err(AgentError::Conflict(format!(
                "action {id} expired before approval"
            )));
        };
        let out = self.run(id, &a.agent, &tool, &call, &paths, &ws, &roots);
        drop(lock);
        let out = out?;
        Ok(Answer {
            status: if out.ok {
                Status::Executed
            } else {
                Status::Failed
            },
            action: id,
            tool: a.tool,
            args: a.args,
            english: out.english,
            undo: out.undo.is_some(),
            resolution: None,
            output: out.output,
        })
    }

    /// Denies a staged action.
    pub fn deny(&self, id: i64, by: &str, reason: &str) -> Result<()> {
        let a = self.get(id)?;
        self.with_tx(|tx| {
            let status: String = tx.query_row("SELECT status FROM actions WHERE id = ?1", params![id], |r| r.get(0))?;
            if status != "staged" {
                return Err(AgentError::Conflict(format!("action {id} is not waiting for approval: it is {status}")));
            }
            let why = if reason.is_empty() { format!("denied by {by}") } else { format!("denied by {by}: {reason}") };
            tx.execute(
                "UPDATE actions SET status = 'denied', decided_by = ?1, decided_at = ?2, reason = ?3 WHERE id = ?4",
                params![by, crate::time::now() as i64, why, id],
            )?;
            audit::append(tx, &self.state, &self.audit_key, by, "rejected", &format!("denied action {id} of {}: {} ({why})", a.agent, a.english), json!({ "action": id, "reason": reason }))?;
            Ok(())
        })
    }

    /// Undoes an executed reversible action. The action is claimed (`undoing`) under
    /// its lock, so two undos never run at once; whatever stops the undo — a refusal,
    /// a failure, a crash — leaves it undoable again (its steps can be repeated), and
    /// only a finished undo marks it undone.
    pub fn undo(&self, id: i64, by: &str) -> Result<String> {
        let a = self.get(id)?;
        if a.undone == UNDONE {
            return Err(AgentError::Conflict(format!(
                "action {id} has already been undone"
            )));
        }
        if a.status != "executed" {
            return Err(AgentError::Conflict(format!(
                "action {id} cannot be undone: it is {}",
                a.status
            )));
        }
        let Some(u) = a.undo_record.clone() else {
            return Err(AgentError::Conflict(format!(
                "action {id} ({}) is {} and has no undo",
                a.english, a.reversibility
            )));
        };
        let undo: Undo = serde_json::from_str(&u).map_err(|e| {
            AgentError::Invalid(format!("action {id}'s undo record is damaged: {e}"))
        })?;
        let Some(lock) = ExecLock::try_take(&self.state, id)? else {
            return Err(AgentError::Conflict(format!(
                "action {id} is busy in another process"
            )));
        };
        // Claim it. Holding the lock, an `undoing` left behind is a dead process's.
        self.with_tx(|tx| {
            let n = tx.execute(
                "UPDATE actions SET undone = ?1 WHERE id = ?2 AND undone IN (?3, ?1)",
                params![UNDOING, id, NOT_UNDONE],
            )?;
            if n == 0 {
                return Err(AgentError::Conflict(format!(
                    "action {id} has already been undone"
                )));
            }
            Ok(())
        })?;
        fault("during-undo", &self.state);
        let result = tools::undo(&undo, &a.rules);
        let outcome = match &result {
            Ok(Ok(english)) => Ok(english.clone()),
            Ok(Err(why)) => Err(why.clone()),
            Err(e) => Err(e.to_string()),
        };
        self.with_tx(|tx| match &outcome {
            Ok(english) => {
                tx.execute(
                    "UPDATE actions SET undone = ?1 WHERE id = ?2",
                    params![UNDONE, id],
                )?;
                audit::append(
                    tx,
                    &self.state,
                    &self.audit_key,
                    by,
                    "undone",
                    &format!(
                        "undid action {id} of {} ({}): {english}",
                        a.agent, a.english
                    ),
                    json!({ "action": id }),
                )
            }
            Err(why) => {
                tx.execute(
                    "UPDATE actions SET undone = ?1 WHERE id = ?2",
                    params![NOT_UNDONE, id],
                )?;
                audit::append(
                    tx,
                    &self.state,
                    &self.audit_key,
                    by,
                    "undo-failed",
                    &format!("could not undo action {id} ({}): {why}", a.english),
                    json!({ "action": id }),
                )
            }
        })?;
        drop(lock);
        match (outcome, result) {
            (Ok(english), _) => Ok(english),
            (Err(_), Err(e)) if !matches!(e, AgentError::Tool(_)) => Err(e),
            (Err(why), _) => Err(AgentError::Conflict(format!(
                "cannot undo action {id}: {why}"
            ))),
        }
    }

    fn get(&self, id: i64) -> Result<Row> {
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

    /// The audit log's verdict.
    pub fn verify_audit(&self) -> Result<audit::Verdict> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        audit::verify(&db, &self.state, &self.audit_key)
    }

    /// Whether any capability minted for `agent` is in observe mode, and why.
    pub fn observing(&self, agent: &str) -> Result<Option<String>> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let root: Option<Option<String>> = db
            .query_row(
                "SELECT reason FROM root_trust WHERE agent = ?1 AND observe = 1 ORDER BY since LIMIT 1",
                params![agent],
                |r| r.get(0),
            )
            .optional()?;
        let legacy: Option<Option<String>> = db
            .query_row(
                "SELECT reason FROM trust WHERE agent = ?1 AND observe = 1",
                params![agent],
                |r| r.get(0),
            )
            .optional()?;
        Ok(root.or(legacy).map(Option::unwrap_or_default))
    }

    /// Whether the capability root `root` (minted for `owner`) is in observe mode.
    /// A state kept by etch 0.1 per agent name still counts for the minted name.
    fn observing_root(&self, root: &str, owner: &str) -> Result<Option<String>> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let by_root: Option<Option<String>> = db
            .query_row(
                "SELECT reason FROM root_trust WHERE root = ?1 AND observe = 1",
                params![root],
                |r| r.get(0),
            )
            .optional()?;
        let legacy: Option<Option<String>> = db
            .query_row(
                "SELECT reason FROM trust WHERE agent = ?1 AND observe = 1",
                params![owner],
                |r| r.get(0),
            )
            .optional()?;
        Ok(by_root.or(legacy).map(Option::unwrap_or_default))
    }

    /// A person takes the capabilities minted for `agent` (and everything delegated
    /// from them) out of observe mode.
    pub fn trust_again(&self, agent: &str, by: &str) -> Result<()> {
        self.with_tx(|tx| {
            // The monitor's window starts again after a person's decision.
            let last: i64 =
                tx.query_row("SELECT COALESCE(MAX(id), 0) FROM calls", [], |r| r.get(0))?;
            tx.execute(
                "UPDATE root_trust SET observe = 0, cleared = ?2 WHERE agent = ?1",
                params![agent, last],
            )?;
            tx.execute(
                "INSERT INTO trust(agent, observe, cleared) VALUES (?1, 0, ?2) \
                 ON CONFLICT(agent) DO UPDATE SET observe = 0, cleared = ?2",
                params![agent, last],
            )?;
            audit::append(
                tx,
                &self.state,
                &self.audit_key,
                by,
                "trust",
                &format!("took {agent} out of observe mode"),
                json!({ "agent": agent }),
            )?;
            Ok(())
        })
    }

    fn set_observe(&self, root: &str, owner: &str, why: &str) -> Result<()> {
        if self.observing_root(root, owner)?.is_some() {
            return Ok(());
        }
        self.with_tx(|tx| {
            tx.execute(
                "INSERT INTO root_trust(root, agent, observe, reason, since) VALUES (?1, ?2, 1, ?3, ?4) \
                 ON CONFLICT(root) DO UPDATE SET observe = 1, reason = ?3, since = ?4",
                params![root, owner, why, crate::time::now() as i64],
            )?;
            audit::append(
                tx,
                &self.state,
                &self.audit_key,
                "runtime",
                "observe",
                &format!("put {owner} (and every agent its capability was delegated to) in observe mode: {why}; its changes are staged until a person says otherwise"),
                json!({ "agent": owner, "root": root, "reason": why }),
            )?;
            Ok(())
        })
    }

    /// The trust monitor after each call of a capability root: denials and bursts
    /// tighten, never loosen. Counted over every agent name the root's tokens use.
    fn watch(&self, root: &str) -> Result<()> {
        let (denied, n, burst, owner) = {
            let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
            let cleared = "COALESCE((SELECT cleared FROM root_trust WHERE root = ?1), 0)";
            let (denied, n): (i64, i64) = db.query_row(
                &format!(
                    "SELECT COALESCE(SUM(denied), 0), COUNT(*) FROM (SELECT denied FROM calls WHERE root = ?1 \
                     AND id > {cleared} ORDER BY id DESC LIMIT ?2)"
                ),
                params![root, TRUST_WINDOW as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let burst: i64 = db.query_row(
                &format!(
                    "SELECT COUNT(*) FROM calls WHERE root = ?1 AND at >= ?2 AND id > {cleared}"
                ),
                params![
                    root,
                    crate::time::now().saturating_sub(BURST_SECONDS) as i64
                ],
                |r| r.get(0),
            )?;
            let owner: String = db
                .query_row(
                    "SELECT agent FROM calls WHERE root = ?1 ORDER BY id LIMIT 1",
                    params![root],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or_default();
            (denied as u64, n as u64, burst as u64, owner)
        };
        let owner = owner.split('/').next().unwrap_or_default().to_string();
        if denied >= TRUST_DENIALS && denied * 2 >= n {
            self.set_observe(
                root,
                &owner,
                &format!("{denied} of its last {n} calls were denied"),
            )?;
        } else if burst >= BURST_CALLS {
            self.set_observe(
                root,
                &owner,
                &format!("{burst} calls within {BURST_SECONDS} seconds"),
            )?;
        }
        Ok(())
    }

    fn unusual(
        &self,
        root: &str,
        agent: &str,
        tool: &str,
        r: Reversibility,
    ) -> Result<Option<String>> {
        if r != Reversibility::Irreversible {
            return Ok(None);
        }
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let (total, used): (i64, i64) = db.query_row(
            "SELECT COUNT(*), COALESCE(SUM(tool = ?2 AND denied = 0), 0) FROM calls WHERE root = ?1",
            params![root, tool],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((total as u64 >= USUAL_AFTER && used == 0)
            .then(|| format!("{agent} had never used {tool} in {total} calls")))
    }

    /// Recovery after a crash: for every action left `executing` whose process is
    /// gone, an effect carrying the idempotency key is looked for (and the action
    /// finished once); anything else is reported failed, never run a second time.
    fn recover(&self) -> Result<()> {
        {
            let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
            // Appends only happen under the write lock: holding it, no line is half
            // written by anyone alive.
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            audit::recover(&tx, &self.state, &self.audit_key)?;
            tx.commit()?;
        }
        let ids: Vec<i64> = {
            let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
            let mut st =
                db.prepare("SELECT id FROM actions WHERE status = 'executing' ORDER BY id")?;
            let v = st
                .query_map([], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?;
            v
        };
        for id in ids {
            let Some(lock) = ExecLock::try_take(&self.state, id)? else {
                continue; // a live process is executing it
            };
            let a = self.get(id)?;
            if a.status != "executing" {
                continue;
            }
            let tool = self.registry.get(&a.tool).cloned();
            let rerun = tool.as_ref().is_some_and(|t| {
                matches!(t.executor, Executor::Builtin(Builtin::Send))
                    || (t.idempotent && matches!(t.executor, Executor::Command(_)))
            });
            if let (true, Some(tool)) = (rerun, tool) {
                self.record("runtime", "recovered", &format!("action {id} ({}) was interrupted; finishing it once under its idempotency key {}", a.english, key(id)), json!({ "action": id }))?;
                let token = Token::parse(&a.token, self.public_key())?;
                let ws = PathBuf::from(&a.workspace);
                let roots = confinement(&token, &ws)?;
                let call = Call {
                    tool: a.tool.clone(),
                    args: a.args.clone(),
                };
                self.run(id, &a.agent, &tool, &call, &a.paths, &ws, &roots)?;
            } else {
                let why = "interrupted while executing (the process died); it may have partly run and is not retried";
                self.with_tx(|tx| {
                    tx.execute(
                        "UPDATE actions SET status = 'failed', result = ?1 WHERE id = ?2",
                        params![why, id],
                    )?;
                    audit::append(
                        tx,
                        &self.state,
                        &self.audit_key,
                        "runtime",
                        "failed",
                        &format!("action {id} ({}) failed: {why}", a.english),
                        json!({ "action": id }),
                    )
                })?;
            }
            drop(lock);
        }
        self.recover_undos()
    }

    /// An undo whose process died is released: the action can be undone again (the
    /// undo's steps repeat safely).
    fn recover_undos(&self) -> Result<()> {
        let ids: Vec<i64> = {
            let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
            let mut st = db.prepare("SELECT id FROM actions WHERE undone = ?1 ORDER BY id")?;
            let v = st
                .query_map(params![UNDOING], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?;
            v
        };
        for id in ids {
            let Some(lock) = ExecLock::try_take(&self.state, id)? else {
                continue; // a live process is undoing it
            };
            self.with_tx(|tx| {
                let n = tx.execute(
                    "UPDATE actions SET undone = ?1 WHERE id = ?2 AND undone = ?3",
                    params![NOT_UNDONE, id, UNDOING],
                )?;
                if n > 0 {
                    audit::append(
                        tx,
                        &self.state,
                        &self.audit_key,
                        "runtime",
                        "undo-failed",
                        &format!("the undo of action {id} was interrupted (the process died); it can be undone again"),
                        json!({ "action": id }),
                    )?;
                }
                Ok(())
            })?;
            drop(lock);
        }
        Ok(())
    }
}

/// `actions.undone`: not undone (undoable if it has an undo record).
const NOT_UNDONE: i64 = 0;
/// `actions.undone`: undone.
const UNDONE: i64 = 1;
/// `actions.undone`: an undo is running (or its process died; recovery releases it).
const UNDOING: i64 = 2;

enum Decision {
    Deny(Vec<String>),
    Stage(String),
    Execute,
}

/// What the capability is asked about one call.
fn capability_request(
    agent: &str,
    tool: &crate::registry::Tool,
    call: &Call,
    paths: &BTreeMap<String, PathBuf>,
) -> cap::Request {
    cap::Request {
        agent: agent.to_string(),
        tool: tool.name.clone(),
        paths: paths.values().map(|p| p.display().to_string()).collect(),
        recipients: tool
            .args
            .iter()
            .filter(|a| a.ty == ArgType::Recipient)
            .filter_map(|a| call.args.get(&a.name).cloned())
            .collect(),
        cost: tool.cost,
        now: crate::time::now(),
    }
}

/// Whether any of a token's blocks has been revoked.
fn any_revoked(tx: &rusqlite::Transaction, revs: &[String]) -> Result<bool> {
    for r in revs {
        let hit = tx
            .query_row("SELECT 1 FROM revoked WHERE rev = ?1", params![r], |_| {
                Ok(())
            })
            .optional()?;
        if hit.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn key(id: i64) -> String {
    format!("etch-action-{id}")
}

fn note_call(
    tx: &rusqlite::Transaction,
    agent: &str,
    root: Option<&str>,
    tool: &str,
    denied: bool,
) -> Result<()> {
    tx.execute(
        "INSERT INTO calls(agent, tool, at, denied, root) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![agent, tool, crate::time::now() as i64, denied as i64, root],
    )?;
    Ok(())
}

/// Makes the state directory (mode 0700) or checks that the path is one.
fn make_state_dir(state: &Path) -> Result<()> {
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

fn open_db(state: &Path) -> Result<Connection> {
    let db = Connection::open(state.join(DATABASE))?;
    db.busy_timeout(std::time::Duration::from_secs(30))?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    Ok(db)
}

/// The roots a capability confines its tools to: the workspace, narrowed by every
/// delegation's path prefixes (a directory is kept only when every path check
/// reaches it). Only existing directories that are not symbolic links and, resolved,
/// still lie inside the workspace are kept: a link swapped in after the capability
/// was made confines to nothing rather than to where it points.
pub fn confinement(token: &Token, workspace: &Path) -> Result<Vec<PathBuf>> {
    let mut limits = token.path_limits()?;
    if limits.is_empty() {
        limits.push(vec![workspace.display().to_string()]);
    }
    let limits: Vec<Vec<PathBuf>> = limits
        .into_iter()
        .map(|l| l.into_iter().map(PathBuf::from).collect())
        .collect();
    let mut roots: Vec<PathBuf> = limits
        .iter()
        .flatten()
        .filter(|c| limits.iter().all(|l| l.iter().any(|p| c.starts_with(p))))
        .cloned()
        .collect();
    roots.sort();
    roots.dedup();
    let real_ws = workspace.canonicalize().ok();
    // Keep the outermost of nested roots, and only real directories inside.
    let outer: Vec<PathBuf> = roots
        .iter()
        .filter(|r| !roots.iter().any(|o| o != *r && r.starts_with(o)))
        .cloned()
        .collect();
    Ok(outer
        .into_iter()
        .filter(|p| {
            let real = p.canonicalize().ok();
            std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
                && real.as_deref() == Some(p.as_path())
                && real_ws.as_ref().is_some_and(|w| p.starts_with(w))
        })
        .collect())
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|e| AgentError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| AgentError::io("write", path, e))
}

/// Test hook (only with the `test-hooks` feature, which the workspace's tests turn
/// on): `ETCH_FAULT=before-effect` or `after-effect` makes the process mark the point
/// (`STATE/fault-reached`) and sleep there, for the crash tests.
#[cfg(feature = "test-hooks")]
fn fault(point: &str, state: &Path) {
    if std::env::var("ETCH_FAULT").ok().as_deref() == Some(point) {
        let _ = std::fs::write(state.join("fault-reached"), point);
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Without the `test-hooks` feature there are no crash points.
#[cfg(not(feature = "test-hooks"))]
fn fault(_point: &str, _state: &Path) {}

const ROW: &str = "id, agent, request, tool, args, english, status, reversibility, token, rules, workspace, created, expires, decided_by, reason, result, undo, undone, idem, paths";

struct Row {
    id: i64,
    agent: String,
    request: String,
    tool: String,
    args: BTreeMap<String, String>,
    paths: BTreeMap<String, PathBuf>,
    english: String,
    status: String,
    reversibility: String,
    token: String,
    rules: crate::confine::Rules,
    workspace: String,
    created: i64,
    expires_at: Option<u64>,
    decided_by: Option<String>,
    reason: Option<String>,
    result: Option<String>,
    undo_record: Option<String>,
    /// [`NOT_UNDONE`], [`UNDONE`] or [`UNDOING`].
    undone: i64,
    key: Option<String>,
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<Row> {
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
    fn public(&self) -> Action {
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
