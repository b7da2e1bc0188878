//! Property tests: attenuation never widens, the audit chain catches any single
//! tampering, undo restores the exact workspace tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use etch_agent::cap::{Attenuation, Authority, Grant, Limits, Request, Token};
use etch_agent::{Call, Status, Syscalls};
use proptest::prelude::*;

const TOOLS: [&str; 7] = [
    "fs.read",
    "fs.list",
    "fs.write",
    "fs.move",
    "fs.delete",
    "proc.exec",
    "msg.send",
];
const PATTERNS: [&str; 6] = ["fs.*", "fs.read", "fs.write", "msg.send", "proc.exec", "*"];
const DIRS: [&str; 4] = ["a", "a/b", "c", "a/b/d"];
const PEOPLE: [&str; 3] = ["bob", "carol", "dave"];

/// (child agent, tool patterns, path prefixes, recipients, expiry, call budget)
type Narrowing = (
    Option<usize>,
    Vec<usize>,
    Vec<usize>,
    Vec<usize>,
    Option<u64>,
    Option<u64>,
);

fn attenuation() -> impl Strategy<Value = Narrowing> {
    (
        proptest::option::of(0usize..3),
        proptest::collection::vec(0..PATTERNS.len(), 0..3),
        proptest::collection::vec(0..DIRS.len(), 0..3),
        proptest::collection::vec(0..PEOPLE.len(), 0..2),
        proptest::option::of(900u64..1100),
        proptest::option::of(0u64..4),
    )
}

fn request() -> impl Strategy<Value = (usize, usize, Vec<usize>, Option<usize>, u64, u64)> {
    (
        0usize..4,                                  // agent
        0..TOOLS.len(),                             // tool
        proptest::collection::vec(0usize..6, 0..3), // paths
        proptest::option::of(0..PEOPLE.len()),      // recipient
        950u64..1050,                               // now
        0u64..4,                                    // calls used per block
    )
}

const AGENTS: [&str; 4] = ["alice", "alice/helper", "alice/helper/sub", "mallory"];
const PATHS: [&str; 6] = [
    "/ws/a/x",
    "/ws/a/b/y",
    "/ws/c",
    "/ws/a/b/d/z",
    "/other/q",
    "/ws",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever chain of attenuations and delegations is appended, a request the
    /// child allows is allowed by every ancestor.
    #[test]
    fn attenuation_never_widens(
        chain in proptest::collection::vec(attenuation(), 1..4),
        requests in proptest::collection::vec(request(), 12),
        calls in proptest::option::of(1u64..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let auth = Authority::open(dir.path()).unwrap();
        let root = auth.mint(&Grant { agent: "alice".into(), workspace: "/ws".into(), limits: Limits { tools: vec!["*".into()], calls, ..Limits::default() } }).unwrap();
        let mut tokens = vec![Token::parse(&root, auth.public()).unwrap()];
        for (agent, tools, paths, people, expires, calls) in chain {
            let a = Attenuation {
                agent: agent.map(|i| ["alice", "alice/helper", "alice/helper/sub"][i].to_string()),
                paths: paths.iter().map(|&i| PathBuf::from(DIRS[i])).collect(),
                limits: Limits {
                    tools: tools.iter().map(|&i| PATTERNS[i].to_string()).collect(),
                    recipients: people.iter().map(|&i| PEOPLE[i].to_string()).collect(),
                    expires,
                    calls,
                    cost: None,
                },
            };
            // An empty or disallowed delegation is refused, not widened.
            if let Ok(t) = tokens.last().unwrap().attenuate(&a) {
                tokens.push(t);
            }
        }
        for (agent, tool, paths, recipient, now, used) in requests {
            let req = Request {
                agent: AGENTS[agent].into(),
                tool: TOOLS[tool].into(),
                paths: paths.iter().map(|&i| PATHS[i].to_string()).collect(),
                recipients: recipient.map(|i| PEOPLE[i].to_string()).into_iter().collect(),
                cost: 1,
                now,
            };
            let usage = vec![(used, used); 8];
            let allowed: Vec<bool> = tokens.iter().map(|t| t.authorize(&req, &usage).is_ok()).collect();
            for i in 1..allowed.len() {
                prop_assert!(!allowed[i] || allowed[i - 1],
                    "block {i} allows {req:?} but its parent does not");
            }
        }
    }

    /// Any single edit, deletion or reordering of entries is caught.
    #[test]
    fn the_audit_chain_catches_any_single_tampering(
        n in 3usize..12,
        kind in 0usize..5,
        at in 0usize..100,
        other in 0usize..100,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let s = Syscalls::open(dir.path()).unwrap();
        for i in 0..n {
            s.record("tester", "note", &format!("entry number {i}"), serde_json::json!({ "i": i })).unwrap();
        }
        prop_assert!(s.verify_audit().unwrap().intact);
        let path = etch_agent::audit::path(s.state());
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let i = at % lines.len();
        match kind {
            0 => lines[i] = lines[i].replacen("entry number", "entry NUMBER", 1),
            1 => lines[i] = lines[i].replacen(&format!("\"i\":{i}"), &format!("\"i\":{}", i + 100), 1),
            2 => { lines.remove(i); }
            3 => {
                let j = (i + 1 + other % (lines.len() - 1)) % lines.len();
                lines.swap(i, j);
            }
            _ => lines[i] = lines[i].replacen(":", ";", 1), // the time stamp
        }
        let mut out = lines.join("\n");
        if !out.is_empty() { out.push('\n'); }
        prop_assert_ne!(&out, &text);
        std::fs::write(&path, out).unwrap();
        let v = s.verify_audit().unwrap();
        prop_assert!(!v.intact, "tampering {kind} at {i} not caught");
        drop(s);
        // Reopening (crash recovery runs) does not launder it either.
        let s = Syscalls::open(dir.path()).unwrap();
        prop_assert!(!s.verify_audit().unwrap().intact);
    }
}

fn tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

const NAMES: [&str; 5] = ["f1", "f2", "d/f3", "d/e/f4", "d"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random reversible operations, then every undo in reverse order: the exact
    /// workspace tree comes back.
    #[test]
    fn undo_restores_the_exact_tree(ops in proptest::collection::vec((0usize..3, 0..NAMES.len(), 0..NAMES.len(), 0u8..4), 1..10)) {
        if etch_agent::confine::abi().is_err() {
            return Ok(()); // no Landlock: no tool runs at all (tested elsewhere)
        }
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("d")).unwrap();
        std::fs::write(ws.join("f1"), "one").unwrap();
        std::fs::write(ws.join("d/f3"), "three").unwrap();
        let s = Syscalls::open(&dir.path().join("state")).unwrap();
        let token = s.mint(&Grant::new("a", &ws), "t").unwrap();
        let before = tree(&ws);
        let mut done = Vec::new();
        for (op, x, y, v) in ops {
            let call = match op {
                0 => Call { tool: "fs.write".into(), args: [("path".to_string(), NAMES[x].to_string()), ("content".to_string(), format!("v{v}"))].into() },
                1 => Call { tool: "fs.move".into(), args: [("src".to_string(), NAMES[x].to_string()), ("dst".to_string(), NAMES[y].to_string())].into() },
                _ => Call { tool: "fs.delete".into(), args: [("path".to_string(), NAMES[x].to_string())].into() },
            };
            let a = s.call("a", &token, &ws, &call).unwrap();
            prop_assert!(matches!(a.status, Status::Executed | Status::Failed), "{a:?}");
            if a.status == Status::Executed {
                prop_assert!(a.undo);
                done.push(a.action);
            }
        }
        for id in done.iter().rev() {
            s.undo(*id, "t").unwrap();
        }
        prop_assert_eq!(tree(&ws), before);
        prop_assert!(s.verify_audit().unwrap().intact);
    }
}
