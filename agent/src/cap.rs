//! Capabilities: unforgeable biscuit tokens instead of permissions.
//!
//! A token is minted by the runtime's root key (kept in `STATE/keys/root.key`) for one
//! agent and one workspace. Its authority block says who may use it (the agent, or a
//! child agent named `agent/child`), which tools (`fs.*`, `msg.send`), that every path
//! lies inside the workspace, and optionally recipients, an expiry and budgets of
//! calls and cost. Delegation appends a block of further checks — attenuation can only
//! add checks, so a delegated token never allows what its parent did not (a property
//! test says so). Budgets are counted per block: a call made with a token counts
//! against every block of it, so a child's calls also spend its parent's budget.
//! Revocation names a block's revocation identifier; every token that contains that
//! block stops working.

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use biscuit_auth::builder::Term;
use biscuit_auth::{
    Algorithm, AuthorizerLimits, Biscuit, BlockBuilder, KeyPair, PrivateKey, PublicKey,
};

use crate::error::{AgentError, Result};

/// The limits a token states, at minting or at each delegation; every one only adds
/// a check.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// Tool patterns: an exact name, `prefix.*` or `*`. Empty: at minting, the shipped
    /// file tools and `msg.send`; in a delegation, no further limit.
    pub tools: Vec<String>,
    /// Recipients allowed for messages (empty: no limit).
    pub recipients: Vec<String>,
    /// UNIX second after which it stops working.
    pub expires: Option<u64>,
    /// At most this many calls (through this block).
    pub calls: Option<u64>,
    /// At most this much estimated cost (through this block).
    pub cost: Option<u64>,
}

/// What a minted token allows.
#[derive(Clone, Debug, Default)]
pub struct Grant {
    /// The agent it is for.
    pub agent: String,
    /// The workspace root (absolute; every path argument must lie inside it).
    pub workspace: PathBuf,
    /// Tools, recipients, expiry, budgets.
    pub limits: Limits,
}

impl Grant {
    /// The default grant: the shipped file tools and `msg.send` for `agent` inside
    /// `workspace`, no expiry, no budget.
    pub fn new(agent: &str, workspace: &Path) -> Self {
        Grant {
            agent: agent.into(),
            workspace: workspace.into(),
            limits: Limits::default(),
        }
    }

    /// The tool patterns it allows (the defaults when none were given).
    pub fn tools(&self) -> Vec<String> {
        if self.limits.tools.is_empty() {
            DEFAULT_TOOLS.iter().map(|s| s.to_string()).collect()
        } else {
            self.limits.tools.clone()
        }
    }
}

/// A narrowing of a token (delegation).
#[derive(Clone, Debug, Default)]
pub struct Attenuation {
    /// Delegate to this child agent (`parent/child`).
    pub agent: Option<String>,
    /// Only paths under these (absolute, or relative to the workspace).
    pub paths: Vec<PathBuf>,
    /// Tools, recipients, expiry, budgets of this block.
    pub limits: Limits,
}

/// One call, as the authorizer sees it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The agent making it.
    pub agent: String,
    /// The tool.
    pub tool: String,
    /// Every path argument, absolute and lexically normalized.
    pub paths: Vec<String>,
    /// Every recipient.
    pub recipients: Vec<String>,
    /// The tool's estimated cost.
    pub cost: u64,
    /// Now, UNIX seconds.
    pub now: u64,
}

/// The default tools of a token minted without `--tool`.
pub const DEFAULT_TOOLS: [&str; 2] = ["fs.*", "msg.send"];

/// The runtime's root key.
pub struct Authority {
    key: KeyPair,
    /// The state directory (no workspace may contain it or lie inside it).
    state: PathBuf,
}

/// Writes a secret key file (mode 0600) unless one is already there: two processes
/// starting at once both write a candidate, the first to land wins and the other is
/// discarded.
pub(crate) fn write_key_file(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| AgentError::io("create", dir, e))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key"),
        std::process::id()
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| AgentError::io("write", &tmp, e))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| AgentError::io("write", &tmp, e))?;
    }
    let r = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(AgentError::io("write", path, e)),
    }
}

impl Authority {
    /// Loads `STATE/keys/root.key`, creating it (mode 0600) on first use.
    pub fn open(state: &Path) -> Result<Self> {
        let path = state.join("keys").join("root.key");
        let text = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_key_file(&path, &KeyPair::new().private().to_bytes_hex())?;
                std::fs::read_to_string(&path).map_err(|e| AgentError::io("read", &path, e))?
            }
            Err(e) => return Err(AgentError::io("read", &path, e)),
        };
        let private = PrivateKey::from_bytes_hex(text.trim(), Algorithm::Ed25519).map_err(|e| {
            AgentError::Capability(format!("the root key {} is unusable: {e}", path.display()))
        })?;
        Ok(Authority {
            key: KeyPair::from(&private),
            state: state.canonicalize().unwrap_or_else(|_| state.to_path_buf()),
        })
    }

    /// The public half, which is all that checking a token needs.
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// Mints a token (base64).
    pub fn mint(&self, g: &Grant) -> Result<String> {
        check_agent(&g.agent)?;
        let ws = match g.workspace.canonicalize() {
            Ok(p) => p,
            Err(_) => absolute(&g.workspace)?,
        };
        if self.state.starts_with(&ws) || ws.starts_with(&self.state) {
            return Err(AgentError::Invalid(format!(
                "the workspace {} and the state directory {} must not contain one another: tools confined to the workspace would reach the keys and the journal",
                ws.display(),
                self.state.display()
            )));
        }
        let ws_s = path_str(&ws)?;
        let tools = g.tools();
        let mut p = Params::default();
        let mut code = format!(
            "agent({a});\nworkspace({w});\ncheck if requester($r), {req};\nreject if path($p), !({paths});\ncheck if tool($t), {tools};\n",
            a = p.str(&g.agent),
            w = p.str(&ws_s),
            req = agent_expr(&mut p, &g.agent),
            paths = prefix_expr(&mut p, std::slice::from_ref(&ws_s)),
            tools = tool_expr(&mut p, &tools)?,
        );
        code += &limits_code(&mut p, 0, &g.limits)?;
        let token = Biscuit::builder()
            .code_with_params(&code, p.0, HashMap::new())?
            .build(&self.key)?;
        Ok(token.to_base64()?)
    }
}

/// A token read and its signatures verified.
#[derive(Clone)]
pub struct Token {
    biscuit: Biscuit,
}

impl Token {
    /// Parses and verifies a token (base64, surrounding whitespace ignored).
    pub fn parse(text: &str, root: PublicKey) -> Result<Self> {
        let biscuit = Biscuit::from_base64(text.trim(), root).map_err(|e| {
            AgentError::Capability(format!(
                "the token is not a valid etch capability (forged, damaged or from another runtime): {e}"
            ))
        })?;
        Ok(Token { biscuit })
    }

    /// Base64 again.
    pub fn to_base64(&self) -> Result<String> {
        Ok(self.biscuit.to_base64()?)
    }

    /// Number of blocks (1 for a minted token, +1 per attenuation).
    pub fn blocks(&self) -> usize {
        self.biscuit.block_count()
    }

    /// Revocation identifiers of the blocks, hex, authority first.
    pub fn revocation_ids(&self) -> Vec<String> {
        self.biscuit
            .revocation_identifiers()
            .iter()
            .map(hex::encode)
            .collect()
    }

    /// The capability root: the revocation identifier of the authority block, shared
    /// by the minted token and everything delegated from it (whatever the agents
    /// call themselves).
    pub fn root(&self) -> String {
        self.revocation_ids().into_iter().next().unwrap_or_default()
    }

    /// The path prefixes of every path check, one list per check (a path must lie
    /// under one prefix of each list), read from the checks' typed terms — never from
    /// their printed text, where a quote inside a path could pass for a second
    /// prefix. Checks of other shapes (which attenuation by a token's holder may add)
    /// only narrow what the authorizer allows and are not needed here: the roots
    /// derived from these lists stay inside the minted workspace.
    pub fn path_limits(&self) -> Result<Vec<Vec<String>>> {
        let authorizer = biscuit_auth::AuthorizerBuilder::new()
            .set_limits(limits())
            .build(&self.biscuit)?;
        let (_, _, checks, _) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| authorizer.dump()))
                .map_err(|_| AgentError::Capability("the token's checks cannot be read".into()))?;
        let mut out = Vec::new();
        for check in checks {
            if check.kind != biscuit_auth::builder::CheckKind::Reject {
                continue;
            }
            for rule in &check.queries {
                if rule.body.iter().any(|p| p.name == "path") {
                    let mut strings = Vec::new();
                    for e in &rule.expressions {
                        collect_strings(&e.ops, &mut strings);
                    }
                    out.push(
                        strings
                            .into_iter()
                            .map(|s| s.trim_end_matches('/').to_string())
                            .filter(|s| !s.is_empty())
                            .collect(),
                    );
                }
            }
        }
        Ok(out)
    }

    /// Datalog source of each block.
    pub fn sources(&self) -> Vec<String> {
        (0..self.blocks())
            .map(|i| self.biscuit.print_block_source(i).unwrap_or_default())
            .collect()
    }

    fn authority_str(&self, pred: &str) -> Result<String> {
        let mut a = biscuit_auth::AuthorizerBuilder::new()
            .set_limits(limits())
            .build(&self.biscuit)?;
        let rule = format!("data($x) <- {pred}($x)");
        let found: Vec<(String,)> = a.query(rule.as_str())?;
        found
            .into_iter()
            .next()
            .map(|(s,)| s)
            .ok_or_else(|| AgentError::Capability(format!("the token names no {pred}")))
    }

    /// The agent it was minted for.
    pub fn agent(&self) -> Result<String> {
        self.authority_str("agent")
    }

    /// The workspace it was minted for.
    pub fn workspace(&self) -> Result<PathBuf> {
        self.authority_str("workspace").map(PathBuf::from)
    }

    /// A narrower token (delegation): the checks of `a` appended as a new block.
    pub fn attenuate(&self, a: &Attenuation) -> Result<Token> {
        let k = self.blocks() as i64;
        let mut p = Params::default();
        let mut code = String::new();
        if let Some(child) = &a.agent {
            check_agent(child)?;
            let parent = self.agent()?;
            if child != &parent && !child.starts_with(&format!("{parent}/")) {
                return Err(AgentError::Capability(format!(
                    "a token of {parent} can only be delegated to {parent} or a child agent {parent}/…, not {child}"
                )));
            }
            code += &format!("check if requester($r), {};\n", agent_expr(&mut p, child));
        }
        if !a.limits.tools.is_empty() {
            code += &format!(
                "check if tool($t), {};\n",
                tool_expr(&mut p, &a.limits.tools)?
            );
        }
        if !a.paths.is_empty() {
            let ws = self.workspace()?;
            let prefixes = a
                .paths
                .iter()
                .map(|q| path_str(&resolve_inside(&ws, q)?))
                .collect::<Result<Vec<_>>>()?;
            code += &format!(
                "reject if path($p), !({});\n",
                prefix_expr(&mut p, &prefixes)
            );
        }
        code += &limits_code(&mut p, k, &a.limits)?;
        if code.is_empty() {
            return Err(AgentError::Invalid(
                "an attenuation must narrow something (agent, tools, paths, recipients, expiry or a budget)".into(),
            ));
        }
        let block = BlockBuilder::new().code_with_params(&code, p.0, HashMap::new())?;
        Ok(Token {
            biscuit: self.biscuit.append(block)?,
        })
    }

    /// Checks one call. `usage[i]` is what block `i` has spent so far (calls, cost).
    /// `Err` holds the reasons in English.
    pub fn authorize(
        &self,
        req: &Request,
        usage: &[(u64, u64)],
    ) -> std::result::Result<(), Vec<String>> {
        let run = || -> std::result::Result<(), biscuit_auth::error::Token> {
            let mut b = biscuit_auth::AuthorizerBuilder::new().set_limits(limits());
            b = b.fact(biscuit_auth::builder::fact(
                "requester",
                &[Term::Str(req.agent.clone())],
            ))?;
            b = b.fact(biscuit_auth::builder::fact(
                "tool",
                &[Term::Str(req.tool.clone())],
            ))?;
            for p in &req.paths {
                b = b.fact(biscuit_auth::builder::fact("path", &[Term::Str(p.clone())]))?;
            }
            for r in &req.recipients {
                b = b.fact(biscuit_auth::builder::fact(
                    "recipient",
                    &[Term::Str(r.clone())],
                ))?;
            }
            b = b.fact(biscuit_auth::builder::fact(
                "now_unix",
                &[Term::Integer(clamp(req.now))],
            ))?;
            b = b.fact(biscuit_auth::builder::fact(
                "call_cost",
                &[Term::Integer(clamp(req.cost))],
            ))?;
            for i in 0..self.blocks() {
                let (calls, cost) = usage.get(i).copied().unwrap_or((0, 0));
                b = b.fact(biscuit_auth::builder::fact(
                    "block_calls",
                    &[Term::Integer(i as i64), Term::Integer(clamp(calls))],
                ))?;
                b = b.fact(biscuit_auth::builder::fact(
                    "block_cost",
                    &[Term::Integer(i as i64), Term::Integer(clamp(cost))],
                ))?;
            }
            b = b.policy("allow if true")?;
            let mut a = b.build(&self.biscuit)?;
            a.authorize()?;
            Ok(())
        };
        match run() {
            Ok(()) => Ok(()),
            Err(biscuit_auth::error::Token::FailedLogic(
                biscuit_auth::error::Logic::Unauthorized { checks, .. }
                | biscuit_auth::error::Logic::NoMatchingPolicy { checks },
            )) => Err(checks.iter().map(|c| explain(c, req)).collect()),
            Err(e) => Err(vec![format!("the capability could not be evaluated: {e}")]),
        }
    }
}

fn limits() -> AuthorizerLimits {
    AuthorizerLimits {
        max_facts: 10_000,
        max_iterations: 1_000,
        max_time: std::time::Duration::from_millis(500),
    }
}

fn clamp(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

/// A failed check in English.
fn explain(c: &biscuit_auth::error::FailedCheck, req: &Request) -> String {
    let (block, rule) = match c {
        biscuit_auth::error::FailedCheck::Block(b) => (Some(b.block_id), b.rule.clone()),
        biscuit_auth::error::FailedCheck::Authorizer(a) => (None, a.rule.clone()),
    };
    let whose = match block {
        Some(0) => "the capability".to_string(),
        Some(i) => format!("delegation {i} of the capability"),
        None => "the runtime".to_string(),
    };
    let what = if rule.contains("requester(") {
        format!("belongs to another agent than {}", req.agent)
    } else if rule.contains("tool(") {
        format!("does not allow the tool {}", req.tool)
    } else if rule.contains("path(") {
        format!("does not reach {}", req.paths.join(" and "))
    } else if rule.contains("recipient(") {
        format!("does not allow messages to {}", req.recipients.join(", "))
    } else if rule.contains("now_unix(") {
        "has expired".to_string()
    } else if rule.contains("block_calls(") {
        "has no calls left in its budget".to_string()
    } else if rule.contains("block_cost(") {
        format!("has not enough cost budget left for {}", req.cost)
    } else {
        format!("refuses it ({rule})")
    };
    format!("{whose} {what}")
}

#[derive(Default)]
struct Params(HashMap<String, Term>);

impl Params {
    fn add(&mut self, t: Term) -> String {
        let name = format!("p{}", self.0.len());
        self.0.insert(name.clone(), t);
        format!("{{{name}}}")
    }
    fn str(&mut self, s: &str) -> String {
        self.add(Term::Str(s.to_string()))
    }
    fn int(&mut self, v: u64) -> String {
        self.add(Term::Integer(clamp(v)))
    }
}

fn agent_expr(p: &mut Params, agent: &str) -> String {
    format!(
        "$r == {} || $r.starts_with({})",
        p.str(agent),
        p.str(&format!("{agent}/"))
    )
}

fn prefix_expr(p: &mut Params, prefixes: &[String]) -> String {
    prefixes
        .iter()
        .map(|pre| {
            let slash = if pre.ends_with('/') {
                pre.clone()
            } else {
                format!("{pre}/")
            };
            format!(
                "$p == {} || $p.starts_with({})",
                p.str(pre.trim_end_matches('/')),
                p.str(&slash)
            )
        })
        .collect::<Vec<_>>()
        .join(" || ")
}

fn tool_expr(p: &mut Params, patterns: &[String]) -> Result<String> {
    let mut parts = Vec::new();
    for pat in patterns {
        let ok = !pat.is_empty()
            && pat
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-*".contains(c))
            && (!pat.contains('*')
                || pat == "*"
                || (pat.ends_with(".*") && pat.matches('*').count() == 1));
        if !ok {
            return Err(AgentError::Invalid(format!(
                "invalid tool pattern {pat:?}: use a tool name, prefix.* or *"
            )));
        }
        parts.push(if pat == "*" {
            "true".to_string()
        } else if let Some(prefix) = pat.strip_suffix('*') {
            format!("$t.starts_with({})", p.str(prefix))
        } else {
            format!("$t == {}", p.str(pat))
        });
    }
    Ok(parts.join(" || "))
}

/// The checks of a block's recipients, expiry and budgets (tools are checked apart:
/// a minted token always names its tools).
fn limits_code(p: &mut Params, block: i64, l: &Limits) -> Result<String> {
    let (recipients, expires, calls, cost) = (&l.recipients, l.expires, l.calls, l.cost);
    let mut code = String::new();
    if !recipients.is_empty() {
        for r in recipients {
            crate::registry::ArgType::Recipient
                .check(r)
                .map_err(|why| AgentError::Invalid(format!("recipient {r:?} {why}")))?;
        }
        let set: BTreeSet<Term> = recipients.iter().map(|r| Term::Str(r.clone())).collect();
        code += &format!(
            "reject if recipient($r), !{}.contains($r);\n",
            p.add(Term::Set(set))
        );
    }
    if let Some(e) = expires {
        code += &format!("check if now_unix($n), $n <= {};\n", p.int(e));
    }
    if let Some(c) = calls {
        code += &format!("check if block_calls({block}, $n), $n < {};\n", p.int(c));
    }
    if let Some(c) = cost {
        code += &format!(
            "check if block_cost({block}, $u), call_cost($c), $u + $c <= {};\n",
            p.int(c)
        );
    }
    Ok(code)
}

/// An agent name: letters, digits and `._-`, children written `parent/child`.
pub(crate) fn check_agent(agent: &str) -> Result<()> {
    let ok = !agent.is_empty()
        && agent.len() <= 128
        && agent.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(AgentError::Invalid(format!(
            "invalid agent name {agent:?}: letters, digits and ._- (not starting with a dot), children written parent/child"
        )))
    }
}

/// `p` made absolute (against the current directory) and lexically normalized.
pub fn absolute(p: &Path) -> Result<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| AgentError::io("read", ".", e))?
            .join(p)
    };
    Ok(lexical(&abs))
}

/// Removes `.` and resolves `..` without touching the file system (never above `/`).
pub fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
        }
    }
    out
}

/// Every string constant of an expression, closures included.
fn collect_strings(ops: &[biscuit_auth::builder::Op], out: &mut Vec<String>) {
    for op in ops {
        match op {
            biscuit_auth::builder::Op::Value(Term::Str(s)) => out.push(s.clone()),
            biscuit_auth::builder::Op::Closure(_, inner) => collect_strings(inner, out),
            _ => {}
        }
    }
}

/// `q` (absolute, or relative to the workspace) with every symbolic link of its
/// existing part resolved; refused when the result leaves the workspace.
pub fn resolve_inside(ws: &Path, q: &Path) -> Result<PathBuf> {
    let lexical_path = lexical(&ws.join(q));
    let real_ws = ws.canonicalize().unwrap_or_else(|_| ws.to_path_buf());
    // The longest existing ancestor, resolved; the rest appended as written.
    let mut existing = lexical_path.clone();
    let mut rest = Vec::new();
    let resolved = loop {
        match existing.canonicalize() {
            Ok(r) => break r,
            Err(_) => match (
                existing.file_name().map(|n| n.to_os_string()),
                existing.parent(),
            ) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    existing = parent.to_path_buf();
                }
                _ => break existing.clone(),
            },
        }
    };
    let mut real = resolved;
    for name in rest.into_iter().rev() {
        real.push(name);
    }
    let real = lexical(&real);
    if !real.starts_with(&real_ws) && !real.starts_with(ws) {
        return Err(AgentError::Invalid(format!(
            "{} leads to {}, outside the workspace {} (a symbolic link?)",
            q.display(),
            real.display(),
            ws.display()
        )));
    }
    Ok(real)
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| AgentError::Invalid(format!("the path {} is not UTF-8", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(agent: &str, tool: &str, paths: &[&str]) -> Request {
        Request {
            agent: agent.into(),
            tool: tool.into(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            recipients: vec![],
            cost: 1,
            now: 1000,
        }
    }

    #[test]
    fn minted_tokens_allow_their_workspace_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Authority::open(dir.path()).unwrap();
        let t = auth
            .mint(&Grant {
                agent: "alice".into(),
                workspace: "/ws".into(),
                ..Grant::default()
            })
            .unwrap();
        let t = Token::parse(&t, auth.public()).unwrap();
        assert_eq!(t.agent().unwrap(), "alice");
        assert!(t
            .authorize(&req("alice", "fs.delete", &["/ws/a.txt"]), &[])
            .is_ok());
        assert!(t
            .authorize(&req("alice/helper", "fs.read", &["/ws"]), &[])
            .is_ok());
        let e = t
            .authorize(&req("alice", "fs.delete", &["/wsx/a"]), &[])
            .unwrap_err();
        assert!(e[0].contains("does not reach /wsx/a"), "{e:?}");
        let e = t
            .authorize(&req("alice", "proc.exec", &[]), &[])
            .unwrap_err();
        assert!(e[0].contains("does not allow the tool proc.exec"), "{e:?}");
        let e = t
            .authorize(&req("bob", "fs.read", &["/ws/a"]), &[])
            .unwrap_err();
        assert!(e[0].contains("another agent"), "{e:?}");
        // Another runtime's key: refused as forged.
        let other = tempfile::tempdir().unwrap();
        let other = Authority::open(other.path()).unwrap();
        assert!(Token::parse(&t.to_base64().unwrap(), other.public()).is_err());
        // The key is kept.
        let again = Authority::open(dir.path()).unwrap();
        assert_eq!(again.public(), auth.public());
    }

    #[test]
    fn attenuation_narrows_and_budgets_count_per_block() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Authority::open(dir.path()).unwrap();
        let t = auth
            .mint(&Grant {
                agent: "alice".into(),
                workspace: "/ws".into(),
                limits: Limits {
                    tools: vec!["*".into()],
                    calls: Some(10),
                    ..Limits::default()
                },
            })
            .unwrap();
        let t = Token::parse(&t, auth.public()).unwrap();
        let child = t
            .attenuate(&Attenuation {
                agent: Some("alice/helper".into()),
                paths: vec!["docs".into()],
                limits: Limits {
                    tools: vec!["fs.read".into()],
                    calls: Some(2),
                    expires: Some(2000),
                    ..Limits::default()
                },
            })
            .unwrap();
        assert!(child
            .authorize(&req("alice/helper", "fs.read", &["/ws/docs/a"]), &[])
            .is_ok());
        assert!(child
            .authorize(&req("alice", "fs.read", &["/ws/docs/a"]), &[])
            .is_err());
        assert!(child
            .authorize(&req("alice/helper", "fs.read", &["/ws/src/a"]), &[])
            .is_err());
        assert!(child
            .authorize(&req("alice/helper", "fs.write", &["/ws/docs/a"]), &[])
            .is_err());
        let e = child
            .authorize(
                &req("alice/helper", "fs.read", &["/ws/docs/a"]),
                &[(0, 0), (2, 2)],
            )
            .unwrap_err();
        assert!(e[0].contains("no calls left"), "{e:?}");
        let mut late = req("alice/helper", "fs.read", &["/ws/docs/a"]);
        late.now = 2001;
        assert!(child.authorize(&late, &[]).unwrap_err()[0].contains("expired"));
        assert!(t
            .attenuate(&Attenuation {
                agent: Some("bob".into()),
                ..Attenuation::default()
            })
            .is_err());
        assert_eq!(child.revocation_ids().len(), 2);
        assert_eq!(child.revocation_ids()[0], t.revocation_ids()[0]);
    }
}
