//! The tool registry — etch's system-call table.
//!
//! A [`Tool`] is a name, an English description, typed arguments, English templates
//! ("move {src} to {dst}") that a request is matched against, a [`Reversibility`]
//! class, an estimated cost and an [`Approval`] policy. The registry holds the shipped
//! tools (files inside a workspace, process execution, an outbound message) and any
//! imported from MCP tool descriptors; it exports itself in the same format.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{AgentError, Result};

/// What running a tool does to the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reversibility {
    /// Looks, changes nothing.
    ReadOnly,
    /// Changes something that an undo record can put back exactly.
    Reversible,
    /// Cannot be taken back (a process ran, a message left): waits for a person.
    Irreversible,
}

impl Reversibility {
    /// "read-only", "reversible" or "irreversible".
    pub fn name(self) -> &'static str {
        match self {
            Reversibility::ReadOnly => "read-only",
            Reversibility::Reversible => "reversible",
            Reversibility::Irreversible => "irreversible",
        }
    }
}

/// When a person must approve a call that the capability allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Approval {
    /// Read-only and reversible calls run; irreversible ones are staged.
    Auto,
    /// Every call is staged.
    Always,
    /// The tool is listed but never runs.
    Never,
}

/// The type of an argument; a value that does not fit is refused before any check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArgType {
    /// A path inside the workspace (relative to it, or absolute beneath it).
    Path,
    /// Free text (a file's content, a message body).
    Text,
    /// Someone a message goes to: letters, digits and `._-+@`.
    Recipient,
    /// A shell command line.
    Command,
}

impl ArgType {
    fn name(self) -> &'static str {
        match self {
            ArgType::Path => "path",
            ArgType::Text => "text",
            ArgType::Recipient => "recipient",
            ArgType::Command => "command",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "path" => ArgType::Path,
            "text" => ArgType::Text,
            "recipient" => ArgType::Recipient,
            "command" => ArgType::Command,
            _ => return None,
        })
    }

    /// Why `v` is not a value of this type, if it is not.
    pub fn check(self, v: &str) -> std::result::Result<(), String> {
        if v.is_empty() {
            return Err("is empty".into());
        }
        if v.contains('\0') {
            return Err("contains a NUL character".into());
        }
        match self {
            ArgType::Path => {
                if v.len() > 4096 {
                    return Err("is longer than 4096 bytes".into());
                }
                if v.chars().any(char::is_control) {
                    return Err("contains a control character".into());
                }
            }
            ArgType::Recipient => {
                if v.len() > 64
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-+@".contains(c))
                {
                    return Err("is not a recipient (letters, digits and ._-+@, at most 64)".into());
                }
            }
            ArgType::Text | ArgType::Command => {
                if v.len() > 65_536 {
                    return Err("is longer than 64 KiB".into());
                }
            }
        }
        Ok(())
    }
}

/// One argument of a tool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    /// Name, as in the templates' `{name}`.
    pub name: String,
    /// Its type.
    pub ty: ArgType,
    /// English.
    pub description: String,
    /// The value used when a request leaves the argument out.
    pub default: Option<String>,
}

/// The code that carries a tool out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Executor {
    /// One of etch's own tools.
    Builtin(Builtin),
    /// A program run in a Landlock-confined child: argv with `{arg}` placeholders.
    Command(Vec<String>),
    /// Described only (an imported tool with no command): calls are refused at
    /// execution with a clear message.
    None,
}

/// etch's shipped tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// Read a file.
    Read,
    /// List a directory.
    List,
    /// Write a file (the previous content is kept for undo).
    Write,
    /// Move or rename (refuses to overwrite).
    Move,
    /// Delete into the trash (undo puts it back).
    Delete,
    /// Run a shell command.
    Exec,
    /// Put a message in the outbox.
    Send,
}

/// A system call of the registry.
#[derive(Clone, Debug)]
pub struct Tool {
    /// Dotted name, `fs.delete`.
    pub name: String,
    /// English: what it does.
    pub description: String,
    /// Typed arguments.
    pub args: Vec<Arg>,
    /// English request templates; the first is also how a call is written out.
    pub templates: Vec<String>,
    /// What it does to the world.
    pub reversibility: Reversibility,
    /// Estimated cost of one call, in the units of the capabilities' cost budgets.
    pub cost: u64,
    /// When a person must approve.
    pub approval: Approval,
    /// Running it twice with the same idempotency key has the effect of once.
    pub idempotent: bool,
    /// What carries it out.
    pub executor: Executor,
}

/// A tool with its arguments: what a request became.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The tool's name.
    pub tool: String,
    /// Argument values by name.
    pub args: BTreeMap<String, String>,
}

/// How a request found its call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// A template matched.
    Template,
    /// The model ranked the registry's candidates (SCORE).
    Model,
}

fn arg(name: &str, ty: ArgType, description: &str) -> Arg {
    Arg {
        name: name.into(),
        ty,
        description: description.into(),
        default: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    name: &str,
    description: &str,
    args: Vec<Arg>,
    templates: &[&str],
    reversibility: Reversibility,
    cost: u64,
    idempotent: bool,
    b: Builtin,
) -> Tool {
    Tool {
        name: name.into(),
        description: description.into(),
        args,
        templates: templates.iter().map(|s| s.to_string()).collect(),
        reversibility,
        cost,
        approval: Approval::Auto,
        idempotent,
        executor: Executor::Builtin(b),
    }
}

/// The tools etch ships.
pub fn shipped() -> Vec<Tool> {
    use ArgType::*;
    use Reversibility::*;
    let mut list_path = arg("path", Path, "the directory to list");
    list_path.default = Some(".".into());
    vec![
        builtin(
            "fs.read",
            "Read a file of the workspace.",
            vec![arg("path", Path, "the file to read")],
            &[
                "read {path}",
                "show {path}",
                "cat {path}",
                "print {path}",
                "open {path}",
            ],
            ReadOnly,
            1,
            true,
            Builtin::Read,
        ),
        builtin(
            "fs.list",
            "List a directory of the workspace.",
            vec![list_path],
            &[
                "list {path}",
                "list the files in {path}",
                "list files in {path}",
                "what is in {path}",
                "ls {path}",
                "list files",
                "list the files",
                "ls",
            ],
            ReadOnly,
            1,
            true,
            Builtin::List,
        ),
        builtin(
            "fs.write",
            "Write text to a file of the workspace, creating it (and its directories) if \
             needed; undo restores the previous content.",
            vec![
                arg("path", Path, "the file to write"),
                arg("content", Text, "the text to write"),
            ],
            &[
                "write {content} to {path}",
                "save {content} to {path}",
                "write to {path} saying {content}",
                "write {path} with {content}",
                "create {path} with {content}",
            ],
            Reversible,
            2,
            true,
            Builtin::Write,
        ),
        builtin(
            "fs.move",
            "Move or rename a file or directory inside the workspace (never over an \
             existing one); undo moves it back.",
            vec![
                arg("src", Path, "what to move"),
                arg("dst", Path, "where to"),
            ],
            &[
                "move {src} to {dst}",
                "rename {src} to {dst}",
                "mv {src} {dst}",
            ],
            Reversible,
            2,
            false,
            Builtin::Move,
        ),
        builtin(
            "fs.delete",
            "Delete a file or directory of the workspace into the trash; undo puts it back.",
            vec![arg("path", Path, "what to delete")],
            &[
                "delete {path}",
                "remove {path}",
                "rm {path}",
                "trash {path}",
            ],
            Reversible,
            2,
            false,
            Builtin::Delete,
        ),
        builtin(
            "proc.exec",
            "Run a shell command in the workspace, confined to the capability's paths.",
            vec![arg("command", Command, "the command line")],
            &[
                "run the command {command}",
                "run {command}",
                "execute {command}",
                "exec {command}",
            ],
            Irreversible,
            10,
            false,
            Builtin::Exec,
        ),
        builtin(
            "msg.send",
            "Send a message to someone (it is written to the outbox).",
            vec![
                arg("to", Recipient, "who receives it"),
                arg("body", Text, "the message"),
            ],
            &[
                "send a message to {to} saying {body}",
                "send a message to {to}: {body}",
                "send {to} a message saying {body}",
                "send {to} a message: {body}",
                "message {to} saying {body}",
                "message {to}: {body}",
                "tell {to} that {body}",
                "email {to}: {body}",
            ],
            Irreversible,
            5,
            true,
            Builtin::Send,
        ),
    ]
}

/// The tools a runtime knows: the shipped ones and imported MCP descriptors.
#[derive(Clone, Debug)]
pub struct Registry {
    tools: Vec<Tool>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry { tools: shipped() }
    }
}

impl Registry {
    /// Every tool, shipped first.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Checks a call against its tool's schema: the tool exists, every argument is
    /// known and well typed, the required ones are there (defaults filled in).
    pub fn validate(&self, call: &Call) -> Result<Call> {
        let tool = self
            .get(&call.tool)
            .ok_or_else(|| AgentError::NotFound(format!("there is no tool {:?}", call.tool)))?;
        for name in call.args.keys() {
            if !tool.args.iter().any(|a| &a.name == name) {
                return Err(AgentError::Invalid(format!(
                    "{} has no argument {name:?} (it takes {})",
                    tool.name,
                    tool.args
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let mut args = BTreeMap::new();
        for a in &tool.args {
            let v = match (call.args.get(&a.name), &a.default) {
                (Some(v), _) => v.clone(),
                (None, Some(d)) => d.clone(),
                (None, None) => {
                    return Err(AgentError::Invalid(format!(
                        "{} needs its argument {:?} ({})",
                        tool.name,
                        a.name,
                        a.ty.name()
                    )))
                }
            };
            a.ty.check(&v).map_err(|why| {
                AgentError::Invalid(format!(
                    "the argument {:?} of {} is not a {}: it {why}",
                    a.name,
                    tool.name,
                    a.ty.name()
                ))
            })?;
            args.insert(a.name.clone(), v);
        }
        Ok(Call {
            tool: tool.name.clone(),
            args,
        })
    }

    /// The call in English: the tool's first template with its arguments.
    pub fn render(&self, call: &Call) -> String {
        match self.get(&call.tool) {
            Some(t) if !t.templates.is_empty() => {
                let mut s = t.templates[0].clone();
                for (k, v) in &call.args {
                    s = s.replace(&format!("{{{k}}}"), v);
                }
                s
            }
            _ => {
                let args: Vec<String> = call
                    .args
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect();
                format!("{} {}", call.tool, args.join(" "))
            }
        }
    }

    /// Step 1 of a syscall: the first template (most literal words first) that the
    /// request matches with well-typed arguments.
    pub fn match_template(&self, request: &str) -> Option<Call> {
        let request = normalize(request);
        let mut templates: Vec<(&Tool, &String)> = self
            .tools
            .iter()
            .flat_map(|t| t.templates.iter().map(move |s| (t, s)))
            .collect();
        templates.sort_by_key(|(_, s)| std::cmp::Reverse(literal_len(s)));
        for (tool, template) in templates {
            if let Some(found) = match_one(template, &request) {
                let call = Call {
                    tool: tool.name.clone(),
                    args: found,
                };
                if let Ok(call) = self.validate(&call) {
                    return Some(call);
                }
            }
        }
        None
    }

    /// Step 2's candidate set: every tool with its arguments filled from the words of
    /// the request, by type — only registry tools and well-typed values, so whatever
    /// the model ranks first is a valid call.
    pub fn candidates(&self, request: &str) -> Vec<Call> {
        let request = normalize(request);
        let words = Words::of(&request);
        let mut out = Vec::new();
        for tool in &self.tools {
            if tool.approval == Approval::Never {
                continue;
            }
            let mut args = BTreeMap::new();
            let mut paths = words.paths.iter();
            let mut ok = true;
            for a in &tool.args {
                let v = match a.ty {
                    ArgType::Path => paths.next().cloned(),
                    ArgType::Recipient => words.recipient.clone(),
                    ArgType::Text => words.text.clone(),
                    ArgType::Command => words.command.clone(),
                };
                match v.or_else(|| a.default.clone()) {
                    Some(v) => {
                        args.insert(a.name.clone(), v);
                    }
                    None => ok = false,
                }
            }
            if ok {
                let call = Call {
                    tool: tool.name.clone(),
                    args,
                };
                if let Ok(call) = self.validate(&call) {
                    out.push(call);
                }
            }
        }
        out
    }

    /// Adds tools from MCP descriptors (`{"tools": [...]}` or a bare list). Names must
    /// be new. `readOnlyHint` makes a tool read-only; any other imported tool is
    /// irreversible (etch has no undo for code it does not know); `idempotentHint`
    /// lets crash recovery re-run it. etch's own fields live under `_meta`:
    /// `etch/templates`, `etch/argTypes`, `etch/cost`, `etch/approval`,
    /// `etch/command` (argv with `{arg}` placeholders).
    pub fn import_mcp(&mut self, descriptors: &Value) -> Result<Vec<String>> {
        let list = match descriptors {
            Value::Array(a) => a,
            Value::Object(o) => match o.get("tools") {
                Some(Value::Array(a)) => a,
                _ => {
                    return Err(AgentError::Invalid(
                        "MCP descriptors: expected {\"tools\": [...]}".into(),
                    ))
                }
            },
            _ => {
                return Err(AgentError::Invalid(
                    "MCP descriptors: expected a JSON object or list".into(),
                ))
            }
        };
        let mut added = Vec::new();
        let mut new_tools = Vec::new();
        for d in list {
            let tool = tool_from_mcp(d)?;
            if self.get(&tool.name).is_some()
                || new_tools.iter().any(|t: &Tool| t.name == tool.name)
            {
                return Err(AgentError::Conflict(format!(
                    "MCP descriptors: a tool named {:?} already exists",
                    tool.name
                )));
            }
            added.push(tool.name.clone());
            new_tools.push(tool);
        }
        self.tools.extend(new_tools);
        Ok(added)
    }

    /// The registry as MCP tool descriptors (`{"tools": [...]}`).
    pub fn export_mcp(&self) -> Value {
        let tools: Vec<Value> = self.tools.iter().map(tool_to_mcp).collect();
        json!({ "tools": tools })
    }
}

fn tool_to_mcp(t: &Tool) -> Value {
    let mut props = serde_json::Map::new();
    let mut types = serde_json::Map::new();
    let mut required = Vec::new();
    for a in &t.args {
        let mut p = json!({ "type": "string", "description": a.description });
        if let Some(d) = &a.default {
            p["default"] = json!(d);
        } else {
            required.push(json!(a.name));
        }
        props.insert(a.name.clone(), p);
        types.insert(a.name.clone(), json!(a.ty.name()));
    }
    let mut meta = json!({
        "etch/templates": t.templates,
        "etch/argTypes": types,
        "etch/cost": t.cost,
        "etch/approval": t.approval,
        "etch/reversibility": t.reversibility,
    });
    if let Executor::Command(argv) = &t.executor {
        meta["etch/command"] = json!(argv);
    }
    json!({
        "name": t.name,
        "description": t.description,
        "inputSchema": { "type": "object", "properties": props, "required": required },
        "annotations": {
            "readOnlyHint": t.reversibility == Reversibility::ReadOnly,
            "destructiveHint": t.reversibility == Reversibility::Irreversible,
            "idempotentHint": t.idempotent,
            "openWorldHint": matches!(t.executor, Executor::Builtin(Builtin::Send) | Executor::Builtin(Builtin::Exec)),
        },
        "_meta": meta,
    })
}

fn tool_from_mcp(d: &Value) -> Result<Tool> {
    let bad = |why: String| AgentError::Invalid(format!("MCP descriptor: {why}"));
    let name = d
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a tool without a \"name\"".into()))?;
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(bad(format!(
            "the tool name {name:?} is not letters, digits and ._- (at most 64)"
        )));
    }
    let description = d
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let meta = d.get("_meta").cloned().unwrap_or(Value::Null);
    let hints = d.get("annotations").cloned().unwrap_or(Value::Null);
    let schema = d.get("inputSchema").cloned().unwrap_or(Value::Null);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut args = Vec::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            if p.get("type").and_then(Value::as_str).unwrap_or("string") != "string" {
                return Err(bad(format!(
                    "{name}: argument {k:?} is not a string (etch tools take strings)"
                )));
            }
            let ty = match meta.get("etch/argTypes").and_then(|t| t.get(k)) {
                Some(t) => t
                    .as_str()
                    .and_then(ArgType::parse)
                    .ok_or_else(|| bad(format!("{name}: unknown etch/argTypes value for {k:?}")))?,
                None => ArgType::Text,
            };
            let default = p.get("default").and_then(Value::as_str).map(str::to_string);
            if default.is_none() && !required.contains(&k.as_str()) {
                return Err(bad(format!(
                    "{name}: optional argument {k:?} needs a default"
                )));
            }
            args.push(Arg {
                name: k.clone(),
                ty,
                description: p
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
                default,
            });
        }
    }
    let read_only = hints.get("readOnlyHint").and_then(Value::as_bool) == Some(true);
    let reversibility = if read_only {
        Reversibility::ReadOnly
    } else {
        Reversibility::Irreversible
    };
    // A field that must be a list of strings (absent: empty).
    let strings = |field: &str| -> Result<Vec<String>> {
        match meta.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(format!("{name}: {field} must be a list of strings")))
                })
                .collect(),
            Some(_) => Err(bad(format!("{name}: {field} must be a list of strings"))),
        }
    };
    let templates = strings("etch/templates")?;
    for t in &templates {
        for p in placeholders(t) {
            if !args.iter().any(|a| a.name == p) {
                return Err(bad(format!(
                    "{name}: the template {t:?} names {{{p}}}, which is not an argument"
                )));
            }
        }
    }
    let approval = match meta.get("etch/approval") {
        None => Approval::Auto,
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| bad(format!("{name}: etch/approval is auto, always or never")))?,
    };
    let cost = match meta.get("etch/cost") {
        None => 1,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad(format!("{name}: etch/cost must be a whole number")))?,
    };
    let command = strings("etch/command")?;
    let executor = match (meta.get("etch/command"), command.is_empty()) {
        (None, _) => Executor::None,
        (Some(_), false) => Executor::Command(command),
        (Some(_), true) => return Err(bad(format!("{name}: etch/command is empty"))),
    };
    Ok(Tool {
        name: name.into(),
        description,
        args,
        templates,
        reversibility,
        cost,
        approval,
        idempotent: hints.get("idempotentHint").and_then(Value::as_bool) == Some(true),
        executor,
    })
}

/// Lower case, single spaces, no "please", no closing punctuation — but the text of
/// quoted values is kept as written.
fn normalize(request: &str) -> String {
    let mut s: String = request.split_whitespace().collect::<Vec<_>>().join(" ");
    for p in ["please ", "Please ", "could you ", "Could you "] {
        if let Some(rest) = s.strip_prefix(p) {
            s = rest.to_string();
        }
    }
    while s.ends_with(['.', '!', '?']) || s.ends_with(" please") {
        if let Some(r) = s.strip_suffix(" please") {
            s = r.to_string();
        } else {
            s.pop();
        }
    }
    s
}

fn literal_len(template: &str) -> usize {
    pieces(template)
        .iter()
        .map(|p| match p {
            Piece::Lit(l) => l.chars().count(),
            Piece::Hole(_) => 0,
        })
        .sum()
}

fn placeholders(template: &str) -> Vec<String> {
    pieces(template)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Hole(h) => Some(h),
            Piece::Lit(_) => None,
        })
        .collect()
}

enum Piece {
    Lit(String),
    Hole(String),
}

fn pieces(template: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else { break };
        if i > 0 {
            out.push(Piece::Lit(rest[..i].to_lowercase()));
        }
        out.push(Piece::Hole(rest[i + 1..i + j].to_string()));
        rest = &rest[i + j + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Lit(rest.to_lowercase()));
    }
    out
}

/// Matches a request against one template: literals case-insensitively, each hole a
/// non-empty stretch (the shortest that lets the rest match); values are trimmed and
/// lose one pair of surrounding quotes.
fn match_one(template: &str, request: &str) -> Option<BTreeMap<String, String>> {
    let ps = pieces(template);
    // Lower-casing keeps byte offsets only for ASCII; match on chars instead.
    let req: Vec<char> = request.chars().collect();
    let low: Vec<char> = request.chars().flat_map(char::to_lowercase).collect();
    if low.len() != req.len() {
        return None;
    }
    let mut out = BTreeMap::new();
    if go(&ps, 0, &req, &low, 0, &mut out) {
        Some(out)
    } else {
        None
    }
}

fn go(
    ps: &[Piece],
    k: usize,
    req: &[char],
    low: &[char],
    at: usize,
    out: &mut BTreeMap<String, String>,
) -> bool {
    match ps.get(k) {
        None => at == req.len(),
        Some(Piece::Lit(l)) => {
            let l: Vec<char> = l.chars().collect();
            if low.len() >= at + l.len() && low[at..at + l.len()] == l[..] {
                go(ps, k + 1, req, low, at + l.len(), out)
            } else {
                false
            }
        }
        Some(Piece::Hole(name)) => {
            let ends: Vec<usize> = if k + 1 == ps.len() {
                vec![req.len()]
            } else {
                (at + 1..=req.len()).collect()
            };
            for end in ends {
                if end <= at {
                    continue;
                }
                let raw: String = req[at..end].iter().collect();
                let v = unquote(raw.trim());
                if v.is_empty() || (k + 1 < ps.len() && quoted_open(&raw)) {
                    continue;
                }
                out.insert(name.clone(), v);
                if go(ps, k + 1, req, low, end, out) {
                    return true;
                }
                out.remove(name);
            }
            false
        }
    }
}

/// True when a stretch opens a quote it does not close (the hole must go on).
fn quoted_open(s: &str) -> bool {
    let t = s.trim_start();
    for q in ['"', '\'', '`'] {
        if t.starts_with(q) && !(t.len() > 1 && t.trim_end().ends_with(q)) {
            return true;
        }
    }
    false
}

fn unquote(s: &str) -> String {
    for q in ['"', '\'', '`'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

/// The values a request offers, by type (for the model's candidates).
struct Words {
    paths: Vec<String>,
    recipient: Option<String>,
    text: Option<String>,
    command: Option<String>,
}

impl Words {
    fn of(request: &str) -> Words {
        let quoted: Vec<String> = request
            .split(['"', '`'])
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s.to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let bare: Vec<&str> = request
            .split(['"', '`'])
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .flat_map(|(_, s)| s.split_whitespace())
            .collect();
        let paths: Vec<String> = bare
            .iter()
            .map(|w| w.trim_end_matches([',', ';', ':']))
            .filter(|w| {
                w.contains('/') || (w.contains('.') && !w.ends_with('.') && !w.starts_with('.'))
            })
            .map(str::to_string)
            .collect();
        let recipient = bare
            .windows(2)
            .find(|w| {
                w[0].eq_ignore_ascii_case("to")
                    && ArgType::Recipient.check(w[1]).is_ok()
                    && !w[1].contains('/')
            })
            .map(|w| w[1].to_string());
        let after = |keys: &[&str]| {
            let low = request.to_lowercase();
            keys.iter()
                .filter_map(|k| {
                    low.find(k)
                        .map(|i| request[i + k.len()..].trim().to_string())
                })
                .find(|s| !s.is_empty())
        };
        let text = quoted
            .first()
            .cloned()
            .or_else(|| after(&[" saying ", " that ", ": ", " with "]));
        // A command is never made up from prose: only a quoted one is offered.
        let command = quoted.first().cloned();
        Words {
            paths,
            recipient,
            text,
            command,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(tool: &str, args: &[(&str, &str)]) -> Call {
        Call {
            tool: tool.into(),
            args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn templates_understand_the_documented_phrasings() {
        let r = Registry::default();
        let cases = [
            (
                "delete docs/notes.txt",
                call("fs.delete", &[("path", "docs/notes.txt")]),
            ),
            (
                "Please delete docs/notes.txt.",
                call("fs.delete", &[("path", "docs/notes.txt")]),
            ),
            (
                "send a message to bob saying the build is green",
                call("msg.send", &[("to", "bob"), ("body", "the build is green")]),
            ),
            (
                "move a.txt to b/c.txt",
                call("fs.move", &[("src", "a.txt"), ("dst", "b/c.txt")]),
            ),
            (
                "write \"hello to you\" to greeting.txt",
                call(
                    "fs.write",
                    &[("path", "greeting.txt"), ("content", "hello to you")],
                ),
            ),
            ("list files", call("fs.list", &[("path", ".")])),
            ("Read README.md", call("fs.read", &[("path", "README.md")])),
            ("run ls -l", call("proc.exec", &[("command", "ls -l")])),
        ];
        for (request, want) in cases {
            assert_eq!(r.match_template(request), Some(want), "{request}");
        }
        assert_eq!(r.match_template("make me a sandwich"), None);
        // A recipient that is not one makes the template fail, not a bad call.
        assert_eq!(
            r.match_template("send a message to bob smith saying hi"),
            None
        );
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let r = Registry::default();
        let e = r.validate(&call("fs.nuke", &[])).unwrap_err().to_string();
        assert!(e.contains("no tool \"fs.nuke\""), "{e}");
        let e = r.validate(&call("fs.read", &[])).unwrap_err().to_string();
        assert!(e.contains("needs its argument \"path\""), "{e}");
        let e = r
            .validate(&call("msg.send", &[("to", "a b"), ("body", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a recipient"), "{e}");
        let e = r
            .validate(&call("fs.read", &[("path", "a"), ("mode", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no argument \"mode\""), "{e}");
    }

    #[test]
    fn candidates_are_valid_calls() {
        let r = Registry::default();
        let c = r.candidates("could you get rid of docs/old.txt for me");
        assert!(c
            .iter()
            .any(|c| c == &call("fs.delete", &[("path", "docs/old.txt")])));
        for c in &c {
            r.validate(c).unwrap();
        }
    }

    #[test]
    fn mcp_round_trip_keeps_the_classes() {
        let r = Registry::default();
        let exported = r.export_mcp();
        let fs_read = &exported["tools"][0];
        assert_eq!(fs_read["annotations"]["readOnlyHint"], true);
        let send = exported["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "msg.send")
            .unwrap();
        assert_eq!(send["annotations"]["destructiveHint"], true);
        // Import under new names.
        let mut renamed = exported.clone();
        for t in renamed["tools"].as_array_mut().unwrap() {
            let n = format!("x.{}", t["name"].as_str().unwrap());
            t["name"] = json!(n);
        }
        let mut r2 = Registry::default();
        let added = r2.import_mcp(&renamed).unwrap();
        assert_eq!(added.len(), r.tools().len());
        let t = r2.get("x.fs.read").unwrap();
        assert_eq!(t.reversibility, Reversibility::ReadOnly);
        assert_eq!(t.templates, r.get("fs.read").unwrap().templates);
        // Without an undo etch knows, a writing tool comes in irreversible.
        assert_eq!(
            r2.get("x.fs.write").unwrap().reversibility,
            Reversibility::Irreversible
        );
        assert!(r2
            .import_mcp(&renamed)
            .unwrap_err()
            .to_string()
            .contains("already exists"));
        let e = r2
            .import_mcp(&json!({"tools": [{"name": "bad name!"}]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not letters"), "{e}");
    }
}
