//! The call line: the one canonical text a syscall model writes for a request.
//!
//! `fs.move src="a.txt" dst="b.txt"` — the tool's name, then its arguments in the tool's
//! order as `name="value"`; an argument left at its default may be left out (from the
//! end); `none` refuses. Values never contain `"`, a backslash or a control character:
//! they are copied from the request, which the decoder enforces.

use std::collections::BTreeMap;

use crate::error::{AgentError, Result};
use crate::registry::{Call, Registry};

/// What a request is refused as: no tool fits it.
pub const NONE: &str = "none";

/// Whether `v` can be written as a value of a call line.
pub fn writable_value(v: &str) -> bool {
    !v.is_empty() && !v.contains(['"', '\\']) && !v.chars().any(char::is_control)
}

/// `call` (or a refusal, `None`) as its call line: arguments in the tool's order, those
/// equal to their default left out from the end. Fails when a value cannot be written
/// (it holds a quote, a backslash or a control character) or the tool is unknown.
pub fn write(registry: &Registry, call: Option<&Call>) -> Result<String> {
    let Some(call) = call else {
        return Ok(NONE.to_string());
    };
    let tool = registry
        .get(&call.tool)
        .ok_or_else(|| AgentError::NotFound(format!("there is no tool {:?}", call.tool)))?;
    let mut parts: Vec<String> = Vec::new();
    for a in &tool.args {
        let Some(v) = call.args.get(&a.name) else {
            continue;
        };
        if !writable_value(v) {
            return Err(AgentError::Invalid(format!(
                "the value of {} cannot be written in a call line: {v:?}",
                a.name
            )));
        }
        parts.push(format!("{}=\"{v}\"", a.name));
    }
    // Trailing defaults go unsaid.
    let mut keep = parts.len();
    for a in tool.args.iter().rev() {
        match (&a.default, call.args.get(&a.name)) {
            (Some(d), Some(v)) if d == v && keep > 0 => keep -= 1,
            (Some(_), None) => {}
            _ => break,
        }
    }
    parts.truncate(keep);
    let mut line = tool.name.clone();
    for p in parts {
        line.push(' ');
        line.push_str(&p);
    }
    Ok(line)
}

/// Parses a call line against the registry: `Ok(None)` is a refusal. The call is
/// validated (tool, argument names and types, defaults filled in).
pub fn parse(registry: &Registry, line: &str) -> Result<Option<Call>> {
    let line = line.trim();
    if line == NONE {
        return Ok(None);
    }
    let bad = |why: &str| AgentError::Invalid(format!("not a call line ({why}): {line:?}"));
    let (tool, mut rest) = line.split_once(' ').unwrap_or((line, ""));
    let mut args = BTreeMap::new();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| bad("expected name=\"value\""))?;
        let (value, after) = after
            .split_once('"')
            .ok_or_else(|| bad("an unclosed quote"))?;
        if name.is_empty() || name.contains([' ', '"']) {
            return Err(bad("an argument name"));
        }
        if args.insert(name.to_string(), value.to_string()).is_some() {
            return Err(bad("an argument given twice"));
        }
        rest = match after.strip_prefix(' ') {
            Some(r) => r,
            None if after.is_empty() => "",
            None => return Err(bad("arguments are separated by one space")),
        };
    }
    registry
        .validate(&Call {
            tool: tool.to_string(),
            args,
        })
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_in_the_tools_argument_order() {
        let r = Registry::default();
        let c = Call::of("fs.move", &[("dst", "b.txt"), ("src", "a.txt")]);
        let line = write(&r, Some(&c)).unwrap();
        assert_eq!(line, r#"fs.move src="a.txt" dst="b.txt""#);
        assert_eq!(parse(&r, &line).unwrap(), Some(c));
        assert_eq!(write(&r, None).unwrap(), "none");
        assert_eq!(parse(&r, "none").unwrap(), None);
    }

    #[test]
    fn defaults_go_unsaid_and_come_back() {
        let r = Registry::default();
        let listed = Call::of("fs.list", &[("path", ".")]);
        assert_eq!(write(&r, Some(&listed)).unwrap(), "fs.list");
        assert_eq!(parse(&r, "fs.list").unwrap(), Some(listed));
        assert_eq!(
            write(&r, Some(&Call::of("fs.list", &[("path", "docs")]))).unwrap(),
            r#"fs.list path="docs""#
        );
    }

    #[test]
    fn malformed_lines_and_values_are_refused() {
        let r = Registry::default();
        for bad in [
            "fs.nothing",
            r#"fs.read  path="a""#,
            r#"fs.read path="a""#.trim_end_matches('"'),
            r#"fs.read path="a" path="b""#,
            r#"fs.read file="a""#,
            r#"msg.send to="bob smith" body="hi""#,
            "fs.read",
            r#"fs.read path=a"#,
        ] {
            assert!(parse(&r, bad).is_err(), "{bad}");
        }
        assert!(write(&r, Some(&Call::of("fs.read", &[("path", "a\"b")]))).is_err());
    }
}
