//! MCP tool descriptors in and out, as serde types.
//!
//! A descriptor is `{name, description, inputSchema, annotations, _meta}`: the schema
//! lists the arguments (strings, etch's only kind), the annotations carry MCP's hints
//! (`readOnlyHint`, `destructiveHint`, `idempotentHint`, `openWorldHint`), and etch's
//! own fields live under `_meta` — `etch/templates`, `etch/argTypes`, `etch/cost`,
//! `etch/approval`, `etch/reversibility` (exported only: an imported tool's class
//! comes from its hints), `etch/command` (argv with `{arg}` placeholders).
//!
//! Importing decides what etch can promise: `readOnlyHint` makes a tool read-only;
//! any other imported tool is irreversible (etch has no undo for code it does not
//! know); `idempotentHint` lets crash recovery re-run it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::template::placeholders;
use super::tool::{Approval, Arg, ArgType, Builtin, Executor, Reversibility, Tool};
use crate::error::{AgentError, Result};

/// `{"tools": [...]}`, or a bare list.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Descriptors {
    /// The MCP `tools/list` result.
    Listed {
        /// The tools.
        tools: Vec<serde_json::Value>,
    },
    /// A bare list.
    Bare(Vec<serde_json::Value>),
}

/// One tool as MCP describes it.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct McpTool {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    input_schema: InputSchema,
    #[serde(default)]
    annotations: Annotations,
    #[serde(rename = "_meta", default)]
    meta: Meta,
}

#[derive(Serialize, Deserialize, Default)]
struct InputSchema {
    #[serde(rename = "type", default = "object")]
    kind: String,
    #[serde(default)]
    properties: BTreeMap<String, Property>,
    #[serde(default)]
    required: Vec<String>,
}

fn object() -> String {
    "object".into()
}

fn string() -> String {
    "string".into()
}

#[derive(Serialize, Deserialize)]
struct Property {
    #[serde(rename = "type", default = "string")]
    kind: String,
    #[serde(default)]
    description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<String>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Annotations {
    #[serde(default)]
    read_only_hint: bool,
    #[serde(default)]
    destructive_hint: bool,
    #[serde(default)]
    idempotent_hint: bool,
    #[serde(default)]
    open_world_hint: bool,
}

#[derive(Serialize, Deserialize, Default)]
struct Meta {
    #[serde(rename = "etch/templates", default)]
    templates: Vec<String>,
    #[serde(rename = "etch/argTypes", default)]
    arg_types: BTreeMap<String, ArgType>,
    #[serde(rename = "etch/cost", default = "one")]
    cost: u64,
    #[serde(rename = "etch/approval", default)]
    approval: Approval,
    #[serde(
        rename = "etch/reversibility",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    reversibility: Option<Reversibility>,
    #[serde(
        rename = "etch/command",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    command: Option<Vec<String>>,
}

fn one() -> u64 {
    1
}

impl From<&Tool> for McpTool {
    fn from(t: &Tool) -> Self {
        let mut schema = InputSchema {
            kind: object(),
            ..InputSchema::default()
        };
        let mut arg_types = BTreeMap::new();
        for a in &t.args {
            schema.properties.insert(
                a.name.clone(),
                Property {
                    kind: string(),
                    description: a.description.clone(),
                    default: a.default.clone(),
                },
            );
            if a.default.is_none() {
                schema.required.push(a.name.clone());
            }
            arg_types.insert(a.name.clone(), a.ty);
        }
        McpTool {
            name: t.name.clone(),
            description: t.description.clone(),
            input_schema: schema,
            annotations: Annotations {
                read_only_hint: t.reversibility == Reversibility::ReadOnly,
                destructive_hint: t.reversibility == Reversibility::Irreversible,
                idempotent_hint: t.idempotent,
                open_world_hint: matches!(
                    t.executor,
                    Executor::Builtin(Builtin::Send) | Executor::Builtin(Builtin::Exec)
                ),
            },
            meta: Meta {
                templates: t.templates.clone(),
                arg_types,
                cost: t.cost,
                approval: t.approval,
                reversibility: Some(t.reversibility),
                command: match &t.executor {
                    Executor::Command(argv) => Some(argv.clone()),
                    _ => None,
                },
            },
        }
    }
}

/// Reads one descriptor, or says what is wrong with it (naming the tool).
pub(super) fn tool_from_value(d: &serde_json::Value) -> Result<Tool> {
    let bad = |why: String| AgentError::Invalid(format!("MCP descriptor: {why}"));
    let name = d.get("name").and_then(serde_json::Value::as_str);
    let label = name.unwrap_or("a tool").to_string();
    let m: McpTool = serde_json::from_value(d.clone()).map_err(|e| {
        if name.is_none() {
            bad("a tool without a \"name\"".into())
        } else {
            bad(format!("{label}: {e}"))
        }
    })?;
    m.into_tool().map_err(bad)
}

impl McpTool {
    /// The tool etch makes of this descriptor, or why it cannot.
    fn into_tool(self) -> std::result::Result<Tool, String> {
        let name = self.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(format!(
                "the tool name {name:?} is not letters, digits and ._- (at most 64)"
            ));
        }
        let mut args = Vec::new();
        for (k, p) in self.input_schema.properties {
            if p.kind != "string" {
                return Err(format!(
                    "{name}: argument {k:?} is not a string (etch tools take strings)"
                ));
            }
            if p.default.is_none() && !self.input_schema.required.contains(&k) {
                return Err(format!("{name}: optional argument {k:?} needs a default"));
            }
            args.push(Arg {
                ty: self
                    .meta
                    .arg_types
                    .get(&k)
                    .copied()
                    .unwrap_or(ArgType::Text),
                name: k,
                description: p.description,
                default: p.default,
            });
        }
        if let Some(k) = self
            .meta
            .arg_types
            .keys()
            .find(|k| !args.iter().any(|a| &a.name == *k))
        {
            return Err(format!(
                "{name}: etch/argTypes names {k:?}, which is not an argument"
            ));
        }
        for t in &self.meta.templates {
            for p in placeholders(t) {
                if !args.iter().any(|a| a.name == p) {
                    return Err(format!(
                        "{name}: the template {t:?} names {{{p}}}, which is not an argument"
                    ));
                }
            }
        }
        let executor = match self.meta.command {
            None => Executor::None,
            Some(argv) if argv.is_empty() => return Err(format!("{name}: etch/command is empty")),
            Some(argv) => Executor::Command(argv),
        };
        Ok(Tool {
            name,
            description: self.description,
            args,
            templates: self.meta.templates,
            reversibility: if self.annotations.read_only_hint {
                Reversibility::ReadOnly
            } else {
                Reversibility::Irreversible
            },
            cost: self.meta.cost,
            approval: self.meta.approval,
            idempotent: self.annotations.idempotent_hint,
            executor,
        })
    }
}
