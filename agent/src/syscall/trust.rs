//! The trust monitor: per capability root, denials and bursts put it in observe mode
//! (changes staged); only a person takes it out.

use rusqlite::{params, OptionalExtension};
use serde_json::json;

use super::*;

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
pub(super) fn note_call(
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

impl Syscalls {
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
    pub(super) fn observing_root(&self, root: &str, owner: &str) -> Result<Option<String>> {
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
    pub(super) fn set_observe(&self, root: &str, owner: &str, why: &str) -> Result<()> {
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
    pub(super) fn watch(&self, root: &str) -> Result<()> {
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
    pub(super) fn unusual(
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
}
