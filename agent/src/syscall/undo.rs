//! Undo: claimed under the action's lock, repeatable step by step, released by
//! recovery when its process died.

use rusqlite::params;
use serde_json::json;

use super::*;

/// `actions.undone`: not undone (undoable if it has an undo record).
pub(super) const NOT_UNDONE: i64 = 0;
/// `actions.undone`: undone.
pub(super) const UNDONE: i64 = 1;
/// `actions.undone`: an undo is running (or its process died; recovery releases it).
pub(super) const UNDOING: i64 = 2;

impl Syscalls {
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
    /// An undo whose process died is released: the action can be undone again (the
    /// undo's steps repeat safely).
    pub(super) fn recover_undos(&self) -> Result<()> {
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
