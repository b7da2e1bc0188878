//! Capabilities through the state directory: minting, delegation and revocation
//! (each in the audit log), admitting a token, what it is asked about a call, and
//! the directories its tools are confined to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use serde_json::json;

use super::*;

impl Syscalls {
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
    /// A well-formed agent name and a token signed by this runtime's key, or why not.
    pub(super) fn admit(&self, agent: &str, token: &str) -> std::result::Result<Token, String> {
        cap::check_agent(agent).map_err(|e| e.to_string())?;
        Token::parse(token, self.public_key()).map_err(|e| e.to_string())
    }
}

/// What the capability is asked about one call.
pub(super) fn capability_request(
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
pub(super) fn any_revoked(tx: &rusqlite::Transaction, revs: &[String]) -> Result<bool> {
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
