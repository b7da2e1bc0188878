//! The staging area's decisions: approving (exactly once, under the action's lock)
//! and denying.

use std::path::PathBuf;

use rusqlite::params;
use serde_json::json;

use super::*;

impl Syscalls {
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
}
