//! The tool registry — etch's system-call table.
//!
//! A [`Tool`] is a name, an English description, typed arguments, English templates
//! ("move {src} to {dst}") that a request is matched against, a [`Reversibility`]
//! class, an estimated cost and an [`Approval`] policy. The registry holds the shipped
//! tools ([`shipped`]: files inside a workspace, process execution, an outbound
//! message) and any imported from MCP tool descriptors (`mcp`); it exports itself in
//! the same format. Requests are matched against the templates (`template`).

mod mcp;
mod shipped;
mod template;
mod tool;

use std::collections::BTreeMap;

pub use shipped::shipped;
pub use tool::{Approval, Arg, ArgType, Builtin, Call, Executor, Resolution, Reversibility, Tool};

use crate::error::{AgentError, Result};
use template::{literal_len, match_one, normalize, Words};

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

    /// Adds tools from MCP descriptors (`{"tools": [...]}` or a bare list); names must
    /// be new (`mcp` says what etch makes of them).
    pub fn import_mcp(&mut self, descriptors: &serde_json::Value) -> Result<Vec<String>> {
        let list = match serde_json::from_value::<mcp::Descriptors>(descriptors.clone()) {
            Ok(mcp::Descriptors::Listed { tools }) | Ok(mcp::Descriptors::Bare(tools)) => tools,
            Err(_) => {
                return Err(AgentError::Invalid(
                    "MCP descriptors: expected {\"tools\": [...]} or a list".into(),
                ))
            }
        };
        let mut added = Vec::new();
        let mut new_tools = Vec::new();
        for d in &list {
            let tool = mcp::tool_from_value(d)?;
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
    pub fn export_mcp(&self) -> serde_json::Value {
        let tools: Vec<mcp::McpTool> = self.tools.iter().map(mcp::McpTool::from).collect();
        serde_json::json!({ "tools": tools })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_understand_the_documented_phrasings() {
        let r = Registry::default();
        let cases = [
            (
                "delete docs/notes.txt",
                Call::of("fs.delete", &[("path", "docs/notes.txt")]),
            ),
            (
                "Please delete docs/notes.txt.",
                Call::of("fs.delete", &[("path", "docs/notes.txt")]),
            ),
            (
                "send a message to bob saying the build is green",
                Call::of("msg.send", &[("to", "bob"), ("body", "the build is green")]),
            ),
            (
                "move a.txt to b/c.txt",
                Call::of("fs.move", &[("src", "a.txt"), ("dst", "b/c.txt")]),
            ),
            (
                "write \"hello to you\" to greeting.txt",
                Call::of(
                    "fs.write",
                    &[("path", "greeting.txt"), ("content", "hello to you")],
                ),
            ),
            ("list files", Call::of("fs.list", &[("path", ".")])),
            (
                "Read README.md",
                Call::of("fs.read", &[("path", "README.md")]),
            ),
            ("run ls -l", Call::of("proc.exec", &[("command", "ls -l")])),
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
        let e = r
            .validate(&Call::of("fs.nuke", &[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no tool \"fs.nuke\""), "{e}");
        let e = r
            .validate(&Call::of("fs.read", &[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs its argument \"path\""), "{e}");
        let e = r
            .validate(&Call::of("msg.send", &[("to", "a b"), ("body", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a recipient"), "{e}");
        let e = r
            .validate(&Call::of("fs.read", &[("path", "a"), ("mode", "x")]))
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
            .any(|c| c == &Call::of("fs.delete", &[("path", "docs/old.txt")])));
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
