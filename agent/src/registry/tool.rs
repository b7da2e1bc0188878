//! The registry's data model: a tool, its typed arguments, its reversibility and
//! approval policy, what carries it out; a call; how a request found it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Approval {
    /// Read-only and reversible calls run; irreversible ones are staged.
    #[default]
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
    /// Its name in messages and MCP descriptors.
    pub fn name(self) -> &'static str {
        match self {
            ArgType::Path => "path",
            ArgType::Text => "text",
            ArgType::Recipient => "recipient",
            ArgType::Command => "command",
        }
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

#[cfg(test)]
impl Call {
    /// A call of `tool` with `args` (tests).
    pub(crate) fn of(tool: &str, args: &[(&str, &str)]) -> Self {
        Call {
            tool: tool.into(),
            args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
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
