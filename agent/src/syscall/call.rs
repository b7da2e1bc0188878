//! The natural-language system call: template or model, the capability check in
//! one transaction with the budget and the journal, then execute, stage or deny.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use serde_json::json;

use super::*;

/// A call on its way to a decision: the tool, its arguments and paths, the
/// capability's view of it, the trust monitor's state.
struct Pending {
    agent: String,
    text: String,
    english: String,
    tool: crate::registry::Tool,
    call: Call,
    resolution: Resolution,
    paths: BTreeMap<String, PathBuf>,
    cap_ws: PathBuf,
    roots: Vec<PathBuf>,
    request: cap::Request,
    revocations: Vec<String>,
    root: String,
    owner: String,
    observe: Option<String>,
    unusual: Option<String>,
    /// The token as text (journaled with the action).
    token: String,
    /// The token, to authorize with.
    authority: Token,
    now: u64,
}

pub(super) enum Decision {
    Deny(Vec<String>),
    Stage(String),
    Execute,
}

impl Syscalls {
    /// The natural-language system call: a template match where it is unambiguous
    /// (with a syscall model attached) or any template match (without), else the
    /// model — a syscall model writes the call under constrained decoding, another
    /// model ranks the registry's candidates; the capability check; execute
    /// (read-only, reversible), stage (irreversible, observe mode) or deny; an English
    /// answer. Every step is in the audit log.
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
        // 1. A template, where it is unambiguous; 2. the model: a syscall model writes
        // the call, any other ranks the registry's candidates.
        let template = self.registry.match_template(text);
        let syscall_model = model.is_some_and(|m| m.writes_calls());
        let template = template.filter(|c| !syscall_model || unambiguous(&self.registry, c));
        if let (None, Some(m)) = (&template, model) {
            if let Some(understood) = m.understand(&self.registry, text) {
                for e in m.events() {
                    self.record(agent, "context", &e, json!({}))?;
                }
                return match understood {
                    Ok(u) => {
                        self.understood(agent, root.as_deref(), text, &token, req.workspace, u)
                    }
                    Err(e) => self.deny_unparsed(
                        agent,
                        root.as_deref(),
                        text,
                        &format!("the syscall model could not read the request: {e}"),
                    ),
                };
            }
        }
        let (call, resolution) = match template {
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
    /// A request the syscall model wrote a call line for: recorded, then refused
    /// (`none`) or decided like any call.
    fn understood(
        &self,
        agent: &str,
        root: Option<&str>,
        text: &str,
        token: &Token,
        workspace: &Path,
        u: crate::understand::Understood,
    ) -> Result<Answer> {
        self.record(
            agent,
            "proposal",
            &format!(
                "the syscall model read \"{}\" as `{}` ({} prompt and {}, {})",
                text,
                u.line,
                u.prompt_tokens,
                counted(u.call_tokens, "call token", "call tokens"),
                counted(u.choices, "chip pass", "chip passes")
            ),
            json!({ "line": u.line, "prompt_tokens": u.prompt_tokens, "call_tokens": u.call_tokens, "choices": u.choices }),
        )?;
        match u.call {
            None => self.deny_unparsed(
                agent,
                root,
                text,
                "the syscall model read it as no tool call (none)",
            ),
            Some(call) => self.decide(agent, text, token, workspace, call, Resolution::Model),
        }
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
    pub(super) fn propose(&self, m: &dyn Model, agent: &str, text: &str) -> Result<Option<Call>> {
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
    pub(super) fn deny_unparsed(
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
    /// From a call on: check it against the capability (with the budget charged and
    /// the action journaled in one transaction), then execute, stage or deny it.
    pub(super) fn decide(
        &self,
        agent: &str,
        text: &str,
        token: &Token,
        workspace: &Path,
        call: Call,
        resolution: Resolution,
    ) -> Result<Answer> {
        let p = self.pending(agent, text, token, workspace, call, resolution)?;
        let (id, decision, lock) = self.with_tx(|tx| {
            let decision = self.verdict(tx, &p)?;
            let id = self.journal_action(tx, &p, &decision)?;
            // An executing action is locked before anyone can see it executing, so
            // crash recovery in another process never mistakes it for a dead one.
            let lock = match decision {
                Decision::Execute => ExecLock::try_take(&self.state, id)?,
                _ => None,
            };
            Ok((id, decision, lock))
        })?;
        if p.unusual.is_some() && !matches!(decision, Decision::Deny(_)) {
            self.set_observe(&p.root, &p.owner, p.unusual.as_deref().unwrap_or(""))?;
        }
        self.watch(&p.root)?;
        let mut answer = Answer {
            status: Status::Denied,
            action: id,
            tool: p.tool.name.clone(),
            args: p.call.args.clone(),
            english: String::new(),
            undo: false,
            resolution: Some(p.resolution),
            output: None,
        };
        match decision {
            Decision::Deny(r) => {
                answer.english = format!("denied: {}", r.join("; "));
            }
            Decision::Stage(r) => {
                answer.status = Status::Staged;
                answer.english = format!(
                    "staged: \"{}\" waits for a person's approval ({r}); see etch approvals show {id}",
                    p.english
                );
            }
            Decision::Execute => {
                let out = self.run(id, agent, &p.tool, &p.call, &p.paths, &p.cap_ws, &p.roots);
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

    /// Everything a decision needs about a call, gathered before its transaction.
    fn pending(
        &self,
        agent: &str,
        text: &str,
        token: &Token,
        workspace: &Path,
        call: Call,
        resolution: Resolution,
    ) -> Result<Pending> {
        let tool = self
            .registry
            .get(&call.tool)
            .cloned()
            .ok_or_else(|| AgentError::NotFound(format!("there is no tool {:?}", call.tool)))?;
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
        let root = token.root();
        let owner = token.agent()?;
        Ok(Pending {
            agent: agent.to_string(),
            text: text.to_string(),
            english: self.registry.render(&call),
            roots: confinement(token, &cap_ws)?,
            request: capability_request(agent, &tool, &call, &paths),
            revocations: token.revocation_ids(),
            observe: self.observing_root(&root, &owner)?,
            unusual: self.unusual(&root, agent, &tool.name, tool.reversibility)?,
            token: token.to_base64()?,
            authority: token.clone(),
            root,
            owner,
            paths,
            cap_ws,
            tool,
            call,
            resolution,
            now: crate::time::now(),
        })
    }

    /// The capability's verdict (revocation, checks, budgets — charged when allowed),
    /// then the approval policy and the trust monitor's say: deny, stage or execute.
    fn verdict(&self, tx: &rusqlite::Transaction, p: &Pending) -> Result<Decision> {
        let tool = &p.tool;
        let mut usage = Vec::new();
        for r in &p.revocations {
            usage.push(
                tx.query_row(
                    "SELECT calls, cost FROM usage WHERE rev = ?1",
                    params![r],
                    |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
                )
                .optional()?
                .unwrap_or((0, 0)),
            );
        }
        let verdict = if any_revoked(tx, &p.revocations)? {
            Err(vec!["the capability has been revoked".into()])
        } else {
            p.authority.authorize(&p.request, &usage)
        };
        if let Err(reasons) = verdict {
            return Ok(Decision::Deny(reasons));
        }
        if tool.approval == Approval::Never {
            return Ok(Decision::Deny(vec![format!(
                "{} is listed but never runs",
                tool.name
            )]));
        }
        for r in &p.revocations {
            tx.execute(
                "INSERT INTO usage(rev, calls, cost) VALUES (?1, 1, ?2) \
                 ON CONFLICT(rev) DO UPDATE SET calls = calls + 1, cost = cost + ?2",
                params![r, tool.cost as i64],
            )?;
        }
        Ok(if tool.reversibility == Reversibility::Irreversible {
            Decision::Stage(format!("{} is irreversible", tool.name))
        } else if tool.approval == Approval::Always {
            Decision::Stage(format!("{} always needs approval", tool.name))
        } else if let (true, Some(why)) =
            (tool.reversibility != Reversibility::ReadOnly, &p.observe)
        {
            Decision::Stage(format!("{} is in observe mode ({why})", p.agent))
        } else if let Some(why) = &p.unusual {
            Decision::Stage(why.clone())
        } else {
            Decision::Execute
        })
    }

    /// The action in the journal (with the rules its tools run under) and its request
    /// and decision in the audit log.
    fn journal_action(
        &self,
        tx: &rusqlite::Transaction,
        p: &Pending,
        decision: &Decision,
    ) -> Result<i64> {
        let (tool, english, text, agent, now) = (&p.tool, &p.english, &p.text, &p.agent, p.now);
        let (status, reason, expires) = match decision {
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
                serde_json::to_string(&p.call.args).unwrap_or_default(),
                english,
                status,
                tool.reversibility.name(),
                p.token,
                "{}",
                p.cap_ws.display().to_string(),
                now as i64,
                expires,
                reason,
                serde_json::to_string(&p.paths).unwrap_or_default()
            ],
        )?;
        let id = tx.last_insert_rowid();
        // The rules name the action's own trash, so they are made with its number.
        let rules = tools::rules_for(tool, &self.state, &p.roots, id);
        tx.execute(
            "UPDATE actions SET idem = ?1, rules = ?2 WHERE id = ?3",
            params![
                key(id),
                serde_json::to_string(&rules).unwrap_or_default(),
                id
            ],
        )?;
        let denied = matches!(decision, Decision::Deny(_));
        note_call(tx, agent, Some(&p.root), &tool.name, denied)?;
        let how = match p.resolution {
            Resolution::Template => "template",
            Resolution::Model => "model",
        };
        let append = |event: &str, english: &str, fields: serde_json::Value| {
            audit::append(
                tx,
                &self.state,
                &self.audit_key,
                agent,
                event,
                english,
                fields,
            )
        };
        append(
            "request",
            &format!("asked \"{text}\" → action {id}: {english} ({how})"),
            json!({ "action": id, "request": text, "tool": tool.name, "args": p.call.args, "resolution": how }),
        )?;
        match decision {
            Decision::Deny(r) => append(
                "denied",
                &format!("denied action {id} ({english}): {}", r.join("; ")),
                json!({ "action": id, "reasons": r }),
            )?,
            Decision::Stage(r) => append(
                "staged",
                &format!("staged action {id} ({english}) for a person's approval: {r}"),
                json!({ "action": id, "reason": r, "expires": crate::time::rfc3339(now + STAGED_FOR) }),
            )?,
            Decision::Execute => append(
                "allowed",
                &format!("allowed action {id} ({english}); executing"),
                json!({ "action": id }),
            )?,
        };
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
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
    pub(super) fn finish(&self, id: i64, agent: &str, out: &tools::Outcome) -> Result<()> {
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
}

/// Whether a template's reading is safe to take without the syscall model: every path
/// and recipient it found is one word ("show me notes.txt" matches `show {path}` with
/// the path "me notes.txt", which the model reads better).
pub fn unambiguous(registry: &Registry, call: &Call) -> bool {
    let Some(tool) = registry.get(&call.tool) else {
        return false;
    };
    tool.args
        .iter()
        .all(|a| match (a.ty, call.args.get(&a.name)) {
            (ArgType::Path | ArgType::Recipient, Some(v)) => !v.contains(char::is_whitespace),
            _ => true,
        })
}

/// `n` and the noun in the number it takes: "1 chip pass", "11 chip passes".
fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
