//! The natural-language system calls end to end: the CLI's contract, the staging
//! area across SIGKILL, eight agents at once, Landlock at the kernel boundary, bad
//! input, budgets, revocation, the trust monitor, and the chip choosing a tool.

mod common;

use common::agent::*;

use std::sync::Arc;
use std::time::Duration;

use etch_agent::cap::{Attenuation, Grant, Limits};
use etch_agent::{Call, Request, Status, Syscalls};
use serde_json::Value;

#[test]
fn the_cli_session_of_the_docs() {
    let dir = tempfile::tempdir().unwrap();
    let (ws, state, cap) = setup(dir.path(), &[]);

    // A reversible call executes, with an undo.
    let (code, v) = syscall(&state, &ws, &cap, "delete docs/notes.txt");
    assert_eq!(code, Some(0));
    assert_eq!(v["status"], "executed");
    assert_eq!(v["tool"], "fs.delete");
    assert_eq!(v["args"]["path"], "docs/notes.txt");
    assert_eq!(v["undo"], true);
    assert!(v["english"]
        .as_str()
        .unwrap()
        .contains("deleted docs/notes.txt"));
    assert!(!ws.join("docs/notes.txt").exists());
    let deleted = v["action"].as_i64().unwrap();

    // An irreversible one is staged.
    let (code, v) = syscall(
        &state,
        &ws,
        &cap,
        "send a message to bob saying the build is green",
    );
    assert_eq!(code, Some(0));
    assert_eq!(v["status"], "staged");
    assert_eq!(v["tool"], "msg.send");
    assert_eq!(v["args"]["to"], "bob");
    assert_eq!(v["args"]["body"], "the build is green");
    assert_eq!(v["undo"], false);
    let staged = v["action"].as_i64().unwrap();
    let outbox = state.join("outbox");
    assert!(!outbox.exists() || std::fs::read_dir(&outbox).unwrap().count() == 0);

    let list = json(&etch(&state, &["approvals", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], staged);
    let show = json(&etch(
        &state,
        &["approvals", "show", &staged.to_string(), "--json"],
    ));
    assert_eq!(show["status"], "staged");
    assert_eq!(show["reversibility"], "irreversible");

    // Approved: runs once; approving again is an error.
    let o = etch(
        &state,
        &["approvals", "approve", &staged.to_string(), "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["status"], "executed");
    let msgs: Vec<_> = std::fs::read_dir(&outbox).unwrap().collect();
    assert_eq!(msgs.len(), 1);
    let msg: Value =
        serde_json::from_slice(&std::fs::read(msgs[0].as_ref().unwrap().path()).unwrap()).unwrap();
    assert_eq!(msg["to"], "bob");
    assert_eq!(msg["from"], "alice");
    let o = etch(&state, &["approvals", "approve", &staged.to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not waiting for approval"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 1);

    // A denied staged action never runs.
    let (_, v) = syscall(&state, &ws, &cap, "send a message to carol saying hello");
    let second = v["action"].as_i64().unwrap().to_string();
    let o = etch(
        &state,
        &["approvals", "deny", &second, "--reason", "not now"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        json(&etch(&state, &["approvals", "show", &second, "--json"]))["status"],
        "denied"
    );
    assert_eq!(
        etch(&state, &["approvals", "approve", &second])
            .status
            .code(),
        Some(2)
    );

    // Undo brings the file back; twice is an error; irreversible has no undo.
    let o = etch(&state, &["undo", &deleted.to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(ws.join("docs/notes.txt")).unwrap(),
        "remember the milk\n"
    );
    assert_eq!(
        etch(&state, &["undo", &deleted.to_string()]).status.code(),
        Some(2)
    );
    let o = etch(&state, &["undo", &staged.to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("has no undo"), "{}", stderr(&o));

    // Denials: a tool outside the capability, a path outside the workspace.
    let (code, v) = syscall(&state, &ws, &cap, "run rm -rf /");
    assert_eq!(code, Some(4));
    assert_eq!(v["status"], "denied");
    assert!(v["english"]
        .as_str()
        .unwrap()
        .contains("does not allow the tool proc.exec"));
    let (code, v) = syscall(&state, &ws, &cap, "read ../../../etc/passwd");
    assert_eq!(code, Some(4));
    assert!(
        v["english"]
            .as_str()
            .unwrap()
            .contains("does not reach /etc/passwd"),
        "{v}"
    );

    // Every step is in the log, in English, and the chain verifies.
    let tail = String::from_utf8(etch(&state, &["audit", "tail", "-n", "100"]).stdout).unwrap();
    for needle in [
        "minted a capability for alice",
        "asked \"delete docs/notes.txt\"",
        "staged action",
        "sam: approved action",
        "sam: denied action",
        "sam: undid action",
        "does not allow the tool proc.exec",
    ] {
        assert!(tail.contains(needle), "{needle} missing from:\n{tail}");
    }
    let o = etch(&state, &["audit", "verify", "--json"]);
    assert!(o.status.success());
    assert_eq!(json(&o)["intact"], true);

    // An edited entry: verify says where, with exit code 4.
    let log = state.join("audit.log");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, text.replacen("sam: approved", "eve: approved", 1)).unwrap();
    let o = etch(&state, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stdout).contains("was edited"));

    // The registry in MCP form.
    let mcp = json(&etch(&state, &["agent", "tools", "--mcp"]));
    assert_eq!(mcp["tools"].as_array().unwrap().len(), 7);
}

#[test]
fn an_approved_action_runs_once_across_sigkill() {
    for point in ["before-effect", "after-effect"] {
        let dir = tempfile::tempdir().unwrap();
        let (ws, state, cap) = setup(
            dir.path(),
            &[
                "--tool",
                "fs.*",
                "--tool",
                "msg.send",
                "--tool",
                "proc.exec",
            ],
        );
        // A message: its effect carries the idempotency key, so recovery finishes it once.
        let (_, v) = syscall(&state, &ws, &cap, "send a message to bob saying deploy");
        let id = v["action"].as_i64().unwrap();
        approve_with_fault(&state, id, point);
        let show = json(&etch(
            &state,
            &["approvals", "show", &id.to_string(), "--json"],
        ));
        assert_eq!(show["status"], "executed", "{point}: {show}");
        let msgs = std::fs::read_dir(state.join("outbox"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            });
        assert_eq!(msgs.count(), 1, "{point}: exactly one message");
        // Approving again cannot send a second one.
        assert_eq!(
            etch(&state, &["approvals", "approve", &id.to_string()])
                .status
                .code(),
            Some(2)
        );

        // A command cannot be checked: recovery reports it failed, never reruns it.
        let (_, v) = syscall(&state, &ws, &cap, "run echo ran >> runs.txt");
        assert_eq!(v["status"], "staged");
        let id = v["action"].as_i64().unwrap();
        approve_with_fault(&state, id, point);
        let show = json(&etch(
            &state,
            &["approvals", "show", &id.to_string(), "--json"],
        ));
        assert_eq!(show["status"], "failed", "{point}: {show}");
        assert!(show["result"].as_str().unwrap().contains("not retried"));
        let runs = std::fs::read_to_string(ws.join("runs.txt")).unwrap_or_default();
        let expect = if point == "before-effect" { 0 } else { 1 };
        assert_eq!(runs.lines().count(), expect, "{point}: ran {runs:?}");
        // Reopening again changes nothing.
        let show2 = json(&etch(
            &state,
            &["approvals", "show", &id.to_string(), "--json"],
        ));
        assert_eq!(show2["status"], "failed");
        assert_eq!(
            std::fs::read_to_string(ws.join("runs.txt"))
                .unwrap_or_default()
                .lines()
                .count(),
            expect
        );
        let o = etch(&state, &["audit", "verify"]);
        assert!(
            o.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        let tail = String::from_utf8(etch(&state, &["audit", "tail", "-n", "50"]).stdout).unwrap();
        assert!(tail.contains("is not retried"), "{tail}");
    }
}

#[test]
fn eight_agents_at_once_keep_a_whole_chain() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let state = dir.path().join("state");
    let s = Syscalls::open(&state).unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("agent{i}")).collect();
    let tokens: Vec<String> = names
        .iter()
        .map(|n| s.mint(&Grant::new(n, &ws), "t").unwrap())
        .collect();
    // Four threads share one handle (one connection behind a lock), four open their
    // own, as separate processes would.
    let shared = Arc::new(s);
    let ws = Arc::new(ws);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (name, token, ws, state) = (
                names[i].clone(),
                tokens[i].clone(),
                ws.clone(),
                state.clone(),
            );
            let shared = shared.clone();
            std::thread::spawn(move || {
                let own;
                let s: &Syscalls = if i < 4 {
                    &shared
                } else {
                    own = Syscalls::open(&state).unwrap();
                    &own
                };
                let mut ids = Vec::new();
                for j in 0..6 {
                    let text = match j % 3 {
                        0 => format!("write \"{name} {j}\" to {name}/f{j}.txt"),
                        1 => format!("read {name}/f{}.txt", j - 1),
                        _ => "run true".to_string(), // not in the capability: denied
                    };
                    let a = s
                        .syscall(
                            &Request {
                                agent: &name,
                                token: &token,
                                workspace: &ws,
                                text: &text,
                            },
                            None,
                        )
                        .unwrap();
                    let want = if j % 3 == 2 {
                        Status::Denied
                    } else {
                        Status::Executed
                    };
                    assert_eq!(a.status, want, "{name} {text}: {a:?}");
                    ids.push(a.action);
                }
                ids
            })
        })
        .collect();
    let ids: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(ids.len(), 48);
    let s = Syscalls::open(&state).unwrap();
    let v = s.verify_audit().unwrap();
    assert!(v.intact, "{v:?}");
    let entries = etch_agent::audit::tail(&state, 10_000).unwrap();
    for id in &ids {
        let of: Vec<_> = entries
            .iter()
            .filter(|e| e.fields["action"] == *id)
            .collect();
        assert!(
            of.iter().any(|e| e.event == "request"),
            "action {id} has no request entry"
        );
        assert!(
            of.iter()
                .any(|e| e.event == "executed" || e.event == "denied"),
            "action {id} has no outcome entry"
        );
    }
    for n in &names {
        for j in [0, 3] {
            assert_eq!(
                std::fs::read_to_string(ws.join(format!("{n}/f{j}.txt"))).unwrap(),
                format!("{n} {j}")
            );
        }
    }
}

#[test]
fn a_tool_writing_outside_its_capability_gets_eacces_from_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let (ws, state, cap) = setup(dir.path(), &["--tool", "*"]);
    // A buggy imported tool: its argument is text (so the capability's path check does
    // not see it), and its code writes wherever that says.
    let tools = dir.path().join("tools.json");
    std::fs::write(
        &tools,
        serde_json::json!({ "tools": [{
            "name": "notes.save",
            "description": "Save a note (buggy: writes where it is told)",
            "inputSchema": { "type": "object", "properties": { "target": { "type": "string" } }, "required": ["target"] },
            "annotations": { "readOnlyHint": false, "destructiveHint": false },
            "_meta": {
                "etch/templates": ["save a note at {target}"],
                "etch/command": ["/bin/sh", "-c", "echo note > {target} && echo wrote"],
                "etch/approval": "auto"
            }
        }]})
        .to_string(),
    )
    .unwrap();
    let o = etch(
        &state,
        &["agent", "tools", "--import", tools.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let target = outside.join("pwned.txt");
    let (_, v) = syscall(
        &state,
        &ws,
        &cap,
        &format!("save a note at {}", target.display()),
    );
    assert_eq!(
        v["status"], "staged",
        "imported writing tools are irreversible: {v}"
    );
    let id = v["action"].as_i64().unwrap().to_string();
    let o = etch(&state, &["approvals", "approve", &id, "--json"]);
    let v = json(&o);
    if let Err(why) = etch_agent::confine::abi() {
        // Fail closed: without Landlock nothing runs.
        assert_eq!(v["status"], "failed", "{why}: {v}");
    } else {
        assert_eq!(v["status"], "failed", "{v}");
        assert!(
            v["output"].as_str().unwrap().contains("Permission denied"),
            "{v}"
        );
    }
    assert!(
        !target.exists(),
        "the kernel let the tool write outside its capability"
    );
    // Inside the workspace the same tool works.
    let (_, v) = syscall(
        &state,
        &ws,
        &cap,
        &format!("save a note at {}", ws.join("n.txt").display()),
    );
    let id = v["action"].as_i64().unwrap().to_string();
    let v = json(&etch(&state, &["approvals", "approve", &id, "--json"]));
    if etch_agent::confine::abi().is_ok() {
        assert_eq!(v["status"], "executed", "{v}");
        assert_eq!(std::fs::read_to_string(ws.join("n.txt")).unwrap(), "note\n");
    }
    // And a shell command allowed by the capability is confined the same way.
    let (_, v) = syscall(
        &state,
        &ws,
        &cap,
        &format!("run touch {}", outside.join("x").display()),
    );
    let id = v["action"].as_i64().unwrap().to_string();
    let v = json(&etch(&state, &["approvals", "approve", &id, "--json"]));
    assert_eq!(v["status"], "failed", "{v}");
    assert!(!outside.join("x").exists());
}

#[test]
fn commands_other_than_mint_refuse_a_state_directory_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("stat");
    for args in [
        &["audit", "verify"][..],
        &["audit", "tail"],
        &["approvals", "list"],
        &["approvals", "approve", "1"],
        &["undo", "1"],
    ] {
        let o = etch(&typo, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("there is no etch state at"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(!typo.exists(), "{args:?} made a state directory");
    }
    // Minting makes it; then the same commands work.
    setup(dir.path(), &[]);
    let o = etch(&dir.path().join("state"), &["audit", "verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_input_is_denied_clearly_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let s = Syscalls::open(&dir.path().join("state")).unwrap();
    let now = etch_agent::time::now();
    let token = s.mint(&Grant::new("alice", &ws), "t").unwrap();
    let expired = s
        .mint(
            &Grant {
                agent: "alice".into(),
                workspace: ws.clone(),
                limits: Limits {
                    expires: Some(now - 1),
                    ..Limits::default()
                },
            },
            "t",
        )
        .unwrap();
    let other = tempfile::tempdir().unwrap();
    let foreign = Syscalls::open(other.path())
        .unwrap()
        .mint(&Grant::new("alice", &ws), "t")
        .unwrap();
    let mut forged = token.clone();
    forged.replace_range(
        40..44,
        if &forged[40..44] == "AAAA" {
            "BBBB"
        } else {
            "AAAA"
        },
    );
    let ask = |agent: &str, token: &str, text: &str| ask(&s, &ws, agent, token, text);
    let cases: Vec<(etch_agent::Answer, &str)> = vec![
        (ask("alice", &token, ""), "empty"),
        (ask("alice", &token, "write \0 to x"), "NUL"),
        (ask("alice", &token, "dance the tango"), "no template"),
        (ask("alice", &expired, "list files"), "has expired"),
        (
            ask("alice", &foreign, "list files"),
            "not a valid etch capability",
        ),
        (
            ask("alice", &forged, "list files"),
            "not a valid etch capability",
        ),
        (
            ask("alice", "not a token at all", "list files"),
            "not a valid etch capability",
        ),
        (ask("bob", &token, "list files"), "another agent"),
        (ask("../../x", &token, "list files"), "invalid agent name"),
        (
            ask("alice", &token, "send a message to bob smith saying hi"),
            "no template",
        ),
    ];
    let bad_calls = [
        (
            Call {
                tool: "fs.nuke".into(),
                args: Default::default(),
            },
            "there is no tool",
        ),
        (
            Call {
                tool: "msg.send".into(),
                args: [("to".into(), "a b".into()), ("body".into(), "x".into())].into(),
            },
            "is not a recipient",
        ),
        (
            Call {
                tool: "fs.read".into(),
                args: [("mode".into(), "x".into())].into(),
            },
            "has no argument",
        ),
        (
            Call {
                tool: "fs.read".into(),
                args: Default::default(),
            },
            "needs its argument",
        ),
    ];
    let mut answers = cases;
    for (c, why) in bad_calls {
        answers.push((s.call("alice", &token, &ws, &c).unwrap(), why));
    }
    let log = etch_agent::audit::tail(s.state(), 10_000).unwrap();
    for (a, why) in &answers {
        assert_eq!(a.status, Status::Denied, "{why}: {a:?}");
        assert!(
            a.english.contains(why),
            "expected {why:?} in {:?}",
            a.english
        );
        let recorded = log
            .iter()
            .any(|e| e.event == "denied" && e.fields["action"] == a.action);
        assert!(recorded, "the denial of {why} is not in the audit log");
    }
    assert!(s.verify_audit().unwrap().intact);
}

#[test]
fn budgets_revocation_delegation_and_the_trust_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("docs")).unwrap();
    std::fs::create_dir_all(ws.join("src")).unwrap();
    let s = Syscalls::open(&dir.path().join("state")).unwrap();
    let ask = |agent: &str, token: &str, text: &str| ask(&s, &ws, agent, token, text);
    // A budget of three calls.
    let t = s
        .mint(
            &Grant {
                agent: "alice".into(),
                workspace: ws.clone(),
                limits: Limits {
                    calls: Some(3),
                    ..Limits::default()
                },
            },
            "t",
        )
        .unwrap();
    for _ in 0..3 {
        assert_eq!(ask("alice", &t, "list files").status, Status::Executed);
    }
    let a = ask("alice", &t, "list files");
    assert_eq!(a.status, Status::Denied);
    assert!(a.english.contains("no calls left"), "{}", a.english);

    // Delegation narrows to docs/ and to a child agent; revoking the child leaves the
    // parent working, revoking the parent stops the child.
    let parent = s.mint(&Grant::new("bob", &ws), "t").unwrap();
    let child = s
        .attenuate(
            &parent,
            &Attenuation {
                agent: Some("bob/helper".into()),
                paths: vec!["docs".into()],
                ..Attenuation::default()
            },
            "bob",
        )
        .unwrap();
    assert_eq!(
        ask("bob/helper", &child, "write hi to docs/a.txt").status,
        Status::Executed
    );
    let a = ask("bob/helper", &child, "write hi to src/a.txt");
    assert_eq!(a.status, Status::Denied);
    assert!(
        a.english
            .contains("delegation 1 of the capability does not reach"),
        "{}",
        a.english
    );
    assert_eq!(ask("bob", &child, "list docs").status, Status::Denied);
    let inspect = etch_agent::cap::Token::parse(&child, s.public_key()).unwrap();
    assert_eq!(
        etch_agent::confinement(&inspect, &ws.canonicalize().unwrap()).unwrap(),
        vec![ws.canonicalize().unwrap().join("docs")]
    );
    s.revoke(&child, "bob").unwrap();
    assert!(ask("bob/helper", &child, "list docs")
        .english
        .contains("revoked"));
    assert_eq!(ask("bob", &parent, "list docs").status, Status::Executed);
    s.revoke(&parent, "t").unwrap();
    assert!(ask("bob", &parent, "list docs").english.contains("revoked"));

    // Trust: enough denials put an agent in observe mode, where its changes wait.
    let c = s.mint(&Grant::new("carol", &ws), "t").unwrap();
    for _ in 0..etch_agent::TRUST_DENIALS {
        assert_eq!(ask("carol", &c, "run true").status, Status::Denied);
    }
    let why = s
        .observing("carol")
        .unwrap()
        .expect("carol should be observed");
    assert!(why.contains("were denied"), "{why}");
    let a = ask("carol", &c, "write x to docs/c.txt");
    assert_eq!(a.status, Status::Staged, "{a:?}");
    assert!(!ws.join("docs/c.txt").exists());
    // Reading still works; observe mode never grants more.
    assert_eq!(ask("carol", &c, "list docs").status, Status::Executed);
    assert_eq!(ask("carol", &c, "run true").status, Status::Denied);
    s.trust_again("carol", "sam").unwrap();
    assert_eq!(
        ask("carol", &c, "write x to docs/c.txt").status,
        Status::Executed
    );
    assert!(s.verify_audit().unwrap().intact);
}

#[test]
fn the_chip_chooses_a_tool_when_no_template_matches() {
    let dir = tempfile::tempdir().unwrap();
    let (out, m) = common::small_chip(dir.path());
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("docs")).unwrap();
    std::fs::write(ws.join("docs/old.txt"), "old").unwrap();
    let s = Syscalls::open(&dir.path().join("state")).unwrap();
    let token = s.mint(&Grant::new("alice", &ws), "t").unwrap();
    let dev = etch_driver::InProcess::open(&out, &m.design_hash).unwrap();
    let engine = etch_runtime::Engine::open(
        dev,
        &out,
        None,
        etch_driver::Timeout::Wall(Duration::from_secs(60)),
    )
    .unwrap();
    let text = "could you get rid of docs/old.txt";
    assert!(s.registry().match_template(text).is_none());
    let a = s
        .syscall(
            &Request {
                agent: "alice",
                token: &token,
                workspace: &ws,
                text,
            },
            Some(&engine),
        )
        .unwrap();
    // Whatever the (random) model picked is a registry call over the request's values,
    // and the capability and staging rules applied to it as to any other.
    assert_eq!(a.resolution, Some(etch_agent::registry::Resolution::Model));
    let candidates = s.registry().candidates(text);
    assert!(
        candidates
            .iter()
            .any(|c| c.tool == a.tool && c.args == a.args),
        "{a:?}"
    );
    // It ran (a list of a file fails honestly) unless it is irreversible: staged.
    match s.registry().get(&a.tool).unwrap().reversibility {
        etch_agent::Reversibility::Irreversible => assert_eq!(a.status, Status::Staged, "{a:?}"),
        _ => assert!(
            matches!(a.status, Status::Executed | Status::Failed),
            "{a:?}"
        ),
    }
    let log = etch_agent::audit::tail(s.state(), 100).unwrap();
    let proposal = log
        .iter()
        .find(|e| e.event == "proposal")
        .expect("a proposal entry");
    assert_eq!(
        proposal.fields["scores"].as_array().unwrap().len(),
        candidates.len()
    );
    assert!(proposal.fields["scores"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v.as_f64().unwrap() < 0.0));
}
