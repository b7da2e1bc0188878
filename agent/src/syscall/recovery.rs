//! Recovery after a crash: the audit log's torn line, actions left executing (an
//! effect with the idempotency key is finished once, anything else is failed, never
//! run twice), undos left half way; and the crash points the tests stop at.

use std::path::{Path, PathBuf};

use rusqlite::{params, TransactionBehavior};
use serde_json::json;

use super::*;

impl Syscalls {
    /// Recovery after a crash: for every action left `executing` whose process is
    /// gone, an effect carrying the idempotency key is looked for (and the action
    /// finished once); anything else is reported failed, never run a second time.
    pub(super) fn recover(&self) -> Result<()> {
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
}

/// Test hook (only with the `test-hooks` feature, which the workspace's tests turn
/// on): `ETCH_FAULT=before-effect` or `after-effect` makes the process mark the point
/// (`STATE/fault-reached`) and sleep there, for the crash tests.
#[cfg(feature = "test-hooks")]
pub(super) fn fault(point: &str, state: &Path) {
    if std::env::var("ETCH_FAULT").ok().as_deref() == Some(point) {
        let _ = std::fs::write(state.join("fault-reached"), point);
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
/// Without the `test-hooks` feature there are no crash points.
#[cfg(not(feature = "test-hooks"))]
pub(super) fn fault(_point: &str, _state: &Path) {}
