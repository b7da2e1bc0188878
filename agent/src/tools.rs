//! Carrying calls out: the shipped tools on top of the confined child processes, and
//! the undo records that put reversible ones back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::confine::{self, FsOp, FsResult, Rules};
use crate::error::{AgentError, Result};
use crate::registry::{Builtin, Call, Executor, Reversibility, Tool};

/// How to take a reversible action back.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Undo {
    /// Put a file's previous content back (or remove it if it did not exist), then
    /// remove the directories the write created.
    Restore {
        /// The file.
        path: PathBuf,
        /// Its previous content, kept under the state directory.
        snapshot: Option<PathBuf>,
        /// Directories created for it, outermost first.
        created: Vec<PathBuf>,
        /// SHA-256 of what the action wrote: undo refuses to discard a later change
        /// (absent in records made before etch 0.2, which are restored unchecked).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        written: Option<String>,
    },
    /// Move something back where it was.
    MoveBack {
        /// Where it is now.
        from: PathBuf,
        /// Where it was.
        to: PathBuf,
    },
}

/// What executing a call gave.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Succeeded.
    pub ok: bool,
    /// One English sentence.
    pub english: String,
    /// The tool's output (file content, listing, command output).
    pub output: Option<String>,
    /// How to undo it.
    pub undo: Option<Undo>,
}

/// Where one action may act and keep things.
pub struct Env<'a> {
    /// The state directory.
    pub state: &'a Path,
    /// The workspace of the capability (commands start there).
    pub workspace: &'a Path,
    /// Read-write roots derived from the capability.
    pub roots: &'a [PathBuf],
    /// The action's number.
    pub action: i64,
    /// The action's idempotency key.
    pub key: &'a str,
    /// Who asked.
    pub agent: &'a str,
}

/// Time limit of a command.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The outbox of a state directory.
pub fn outbox(state: &Path) -> PathBuf {
    state.join("outbox")
}

/// Where one action's deleted files go: a directory of its own, so that no other
/// action (and no other agent) is ever confined to reach it.
pub fn trash(state: &Path, action: i64) -> PathBuf {
    state.join("trash").join(action.to_string())
}

/// Resolves a path argument against the workspace, lexically.
pub fn resolve(base: &Path, arg: &str) -> PathBuf {
    crate::cap::lexical(&base.join(arg))
}

fn rel(env: &Env, p: &Path) -> String {
    match p.strip_prefix(env.workspace) {
        Ok(r) if r.as_os_str().is_empty() => ".".into(),
        Ok(r) => r.display().to_string(),
        Err(_) => p.display().to_string(),
    }
}

fn os_err(what: &str, p: &Path, e: &std::io::Error) -> String {
    let why = match e.raw_os_error() {
        Some(libc::EACCES) => {
            "permission denied by the kernel (outside the capability's paths)".to_string()
        }
        Some(libc::ENOENT) => "it does not exist".to_string(),
        Some(libc::EEXIST) => "something is already there".to_string(),
        Some(libc::EISDIR) => "it is a directory".to_string(),
        Some(libc::ENOTDIR) => "a part of it is not a directory".to_string(),
        _ => e.to_string(),
    };
    format!("cannot {what} {}: {why}", p.display())
}

fn failed(english: String) -> Outcome {
    Outcome {
        ok: false,
        english,
        output: None,
        undo: None,
    }
}

/// The rules for action `action` of a tool: file tools get the capability's roots
/// (read-only for tools that only read; deletes also their own trash directory),
/// messages only the outbox. The state directory itself is hidden from all of them.
pub fn rules_for(tool: &Tool, state: &Path, roots: &[PathBuf], action: i64) -> Rules {
    let read_only_tool = tool.reversibility == Reversibility::ReadOnly;
    let (read_write, read_only) = match tool.executor {
        Executor::Builtin(Builtin::Send) => (vec![outbox(state)], vec![]),
        Executor::Builtin(Builtin::Delete) => {
            let mut r = roots.to_vec();
            r.push(trash(state, action));
            (r, vec![])
        }
        _ if read_only_tool => (vec![], roots.to_vec()),
        _ => (roots.to_vec(), vec![]),
    };
    Rules {
        read_write,
        read_only,
        hidden: vec![state.to_path_buf()],
    }
}

/// Executes a validated call. `paths` holds the call's path arguments resolved.
pub fn execute(
    tool: &Tool,
    call: &Call,
    paths: &BTreeMap<String, PathBuf>,
    env: &Env,
) -> Result<Outcome> {
    let rules = rules_for(tool, env.state, env.roots, env.action);
    let arg = |k: &str| call.args.get(k).cloned().unwrap_or_default();
    let path = |k: &str| paths.get(k).cloned().unwrap_or_default();
    match &tool.executor {
        Executor::Builtin(Builtin::Read) => {
            let p = path("path");
            Ok(match confine::fs(&rules, &FsOp::Read(p.clone()))? {
                Ok(FsResult::Bytes(b)) => Outcome {
                    ok: true,
                    english: format!("read {} ({} bytes)", rel(env, &p), b.len()),
                    output: Some(String::from_utf8_lossy(&b).into_owned()),
                    undo: None,
                },
                Ok(_) => failed(format!("cannot read {}", rel(env, &p))),
                Err(e) => failed(os_err("read", &p, &e)),
            })
        }
        Executor::Builtin(Builtin::List) => {
            let p = path("path");
            Ok(match confine::fs(&rules, &FsOp::List(p.clone()))? {
                Ok(FsResult::Entries(list)) => Outcome {
                    ok: true,
                    english: format!("listed {} ({} entries)", rel(env, &p), list.len()),
                    output: Some(
                        list.iter()
                            .map(|(n, d)| {
                                if *d {
                                    format!("{n}/\n")
                                } else {
                                    format!("{n}\n")
                                }
                            })
                            .collect(),
                    ),
                    undo: None,
                },
                Ok(_) => failed(format!("cannot list {}", rel(env, &p))),
                Err(e) => failed(os_err("list", &p, &e)),
            })
        }
        Executor::Builtin(Builtin::Write) => {
            write(env, &rules, &path("path"), arg("content").into_bytes())
        }
        Executor::Builtin(Builtin::Move) => {
            let (src, dst) = (path("src"), path("dst"));
            Ok(
                match confine::fs(
                    &rules,
                    &FsOp::Rename {
                        from: src.clone(),
                        to: dst.clone(),
                    },
                )? {
                    Ok(_) => Outcome {
                        ok: true,
                        english: format!("moved {} to {}", rel(env, &src), rel(env, &dst)),
                        output: None,
                        undo: Some(Undo::MoveBack { from: dst, to: src }),
                    },
                    Err(e) => failed(os_err(&format!("move {} to", src.display()), &dst, &e)),
                },
            )
        }
        Executor::Builtin(Builtin::Delete) => {
            let p = path("path");
            if p == env.workspace {
                return Ok(failed("refusing to delete the workspace itself".into()));
            }
            let dir = trash(env.state, env.action);
            std::fs::create_dir_all(&dir).map_err(|e| AgentError::io("create", &dir, e))?;
            let name = p
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_else(|| "item".into());
            let into = dir.join(name);
            Ok(
                match confine::fs(
                    &rules,
                    &FsOp::Rename {
                        from: p.clone(),
                        to: into.clone(),
                    },
                )? {
                    Ok(_) => Outcome {
                        ok: true,
                        english: format!("deleted {} into the trash", rel(env, &p)),
                        output: None,
                        undo: Some(Undo::MoveBack { from: into, to: p }),
                    },
                    Err(e) => {
                        let _ = std::fs::remove_dir(&dir);
                        failed(os_err("delete", &p, &e))
                    }
                },
            )
        }
        Executor::Builtin(Builtin::Exec) => {
            let argv = vec!["/bin/sh".to_string(), "-c".to_string(), arg("command")];
            run(env, &rules, &argv, &arg("command"))
        }
        Executor::Command(template) => {
            let argv: Vec<String> = template
                .iter()
                .map(|t| {
                    let mut s = t.clone();
                    for (k, v) in &call.args {
                        s = s.replace(&format!("{{{k}}}"), v);
                    }
                    s
                })
                .collect();
            let shown = argv.join(" ");
            run(env, &rules, &argv, &shown)
        }
        Executor::Builtin(Builtin::Send) => {
            let dir = outbox(env.state);
            std::fs::create_dir_all(&dir).map_err(|e| AgentError::io("create", &dir, e))?;
            let msg = serde_json::json!({
                "to": arg("to"),
                "from": env.agent,
                "body": arg("body"),
                "action": env.action,
                "key": env.key,
                "time": crate::time::rfc3339(crate::time::now()),
            });
            let op = FsOp::WriteOnce {
                tmp: dir.join(format!(".{}.tmp", env.key)),
                path: dir.join(format!("{}.json", env.key)),
                data: format!("{msg:#}\n").into_bytes(),
            };
            Ok(match confine::fs(&rules, &op)? {
                Ok(FsResult::Existed) => Outcome {
                    ok: true,
                    english: format!(
                        "the message to {} had already been sent (key {})",
                        arg("to"),
                        env.key
                    ),
                    output: None,
                    undo: None,
                },
                Ok(_) => Outcome {
                    ok: true,
                    english: format!(
                        "sent the message to {} (outbox/{}.json)",
                        arg("to"),
                        env.key
                    ),
                    output: None,
                    undo: None,
                },
                Err(e) => failed(os_err("write the message to", &dir, &e)),
            })
        }
        Executor::None => Ok(failed(format!(
            "{} has no executor on this host (an imported description only)",
            tool.name
        ))),
    }
}

fn run(env: &Env, rules: &Rules, argv: &[String], shown: &str) -> Result<Outcome> {
    let ran = confine::command(rules, argv, env.workspace, COMMAND_LIMIT)?;
    let mut output = ran.stdout.clone();
    if !ran.stderr.is_empty() {
        output += &ran.stderr;
    }
    let english = match (ran.code, ran.timed_out) {
        (_, true) => format!("ran `{shown}`: stopped after {} s", COMMAND_LIMIT.as_secs()),
        (Some(0), _) => format!("ran `{shown}`: exit status 0"),
        (Some(c), _) => format!("ran `{shown}`: exit status {c}"),
        (None, _) => format!("ran `{shown}`: killed by a signal"),
    };
    Ok(Outcome {
        ok: ran.code == Some(0),
        english,
        output: Some(output),
        undo: None,
    })
}

fn write(env: &Env, rules: &Rules, p: &Path, data: Vec<u8>) -> Result<Outcome> {
    if p == env.workspace {
        return Ok(failed(
            "cannot write to the workspace directory itself".into(),
        ));
    }
    let snapshot = match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            return Ok(failed(format!(
                "cannot write {}: it is a directory",
                rel(env, p)
            )))
        }
        Ok(_) => match confine::fs(rules, &FsOp::Read(p.to_path_buf()))? {
            Ok(FsResult::Bytes(old)) => {
                let dir = env.state.join("snapshots");
                std::fs::create_dir_all(&dir).map_err(|e| AgentError::io("create", &dir, e))?;
                let snap = dir.join(format!("{}.bin", env.action));
                write_private(&snap, &old)?;
                Some(snap)
            }
            Ok(_) => None,
            Err(e) => return Ok(failed(os_err("read the previous content of", p, &e))),
        },
        Err(_) => None,
    };
    // Directories to create, outermost first, stopping at the workspace.
    let mut created = Vec::new();
    let mut d = p.parent();
    while let Some(dir) = d {
        if dir == env.workspace || !dir.starts_with(env.workspace) || dir.exists() {
            break;
        }
        created.push(dir.to_path_buf());
        d = dir.parent();
    }
    created.reverse();
    let written = Some(sha256_hex(&data));
    let op = FsOp::Write {
        path: p.to_path_buf(),
        mkdirs: created.clone(),
        data,
    };
    Ok(match confine::fs(rules, &op)? {
        Ok(_) => Outcome {
            ok: true,
            english: format!(
                "wrote {} ({})",
                rel(env, p),
                if snapshot.is_some() {
                    "the previous content is kept for undo"
                } else {
                    "a new file"
                }
            ),
            output: None,
            undo: Some(Undo::Restore {
                path: p.to_path_buf(),
                snapshot,
                created,
                written,
            }),
        },
        Err(e) => failed(os_err("write", p, &e)),
    })
}

/// A file of the state directory only its owner can read (snapshots hold the
/// content of files that may have been private).
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AgentError::io("write", path, e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| AgentError::io("write", path, e))
}

/// SHA-256 of bytes, as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Takes an action back under the rules it ran with. Every step can be repeated: an
/// undo cut short (a crash, a person's edit in the way) can be tried again and ends
/// in the same place. A file changed since the action wrote it is not touched.
pub fn undo(u: &Undo, rules: &Rules) -> Result<std::result::Result<String, String>> {
    match u {
        Undo::Restore {
            path,
            snapshot,
            created,
            written,
        } => {
            let before = match snapshot {
                Some(s) => Some(std::fs::read(s).map_err(|e| AgentError::io("read", s, e))?),
                None => None,
            };
            let now = match confine::fs(rules, &FsOp::Read(path.clone()))? {
                Ok(FsResult::Bytes(b)) => Some(b),
                Ok(_) => None,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
                Err(e) => return Ok(Err(os_err("read", path, &e))),
            };
            let already = now.as_deref() == before.as_deref();
            if !already {
                if let (Some(w), Some(n)) = (written, &now) {
                    if &sha256_hex(n) != w {
                        return Ok(Err(format!(
                            "{} has changed since the action wrote it; undoing would discard that change (restore it by hand, or write it back first)",
                            path.display()
                        )));
                    }
                }
                let r = match (&before, &now) {
                    (Some(data), _) => confine::fs(
                        rules,
                        &FsOp::Write {
                            path: path.clone(),
                            mkdirs: vec![],
                            data: data.clone(),
                        },
                    )?,
                    (None, Some(_)) => confine::fs(rules, &FsOp::Unlink(path.clone()))?,
                    (None, None) => Ok(FsResult::Done),
                };
                if let Err(e) = r {
                    return Ok(Err(os_err("restore", path, &e)));
                }
            }
            // Directories the write made go if they are empty; one that holds
            // something a person put there since stays.
            let mut kept = Vec::new();
            for d in created.iter().rev() {
                match confine::fs(rules, &FsOp::Rmdir(d.clone()))? {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(_) => kept.push(d.display().to_string()),
                }
            }
            let tail = if kept.is_empty() {
                String::new()
            } else {
                format!(" (kept the directory {}: it is not empty)", kept.join(", "))
            };
            Ok(Ok(match snapshot {
                Some(_) => format!("restored the previous content of {}{tail}", path.display()),
                None => format!(
                    "removed {}, which the action had created{tail}",
                    path.display()
                ),
            }))
        }
        Undo::MoveBack { from, to } => {
            let gone = std::fs::symlink_metadata(from).is_err();
            let back = std::fs::symlink_metadata(to).is_ok();
            if gone && back {
                // An earlier undo got this far.
                return Ok(Ok(format!(
                    "{} is back at {}",
                    from.display(),
                    to.display()
                )));
            }
            Ok(
                match confine::fs(
                    rules,
                    &FsOp::Rename {
                        from: from.clone(),
                        to: to.clone(),
                    },
                )? {
                    Ok(_) => {
                        if let Some(parent) = from.parent() {
                            // A trash directory of its own is left empty: tidy it.
                            if parent.parent().and_then(|p| p.file_name()) == Some("trash".as_ref())
                            {
                                let _ = std::fs::remove_dir(parent);
                            }
                        }
                        Ok(format!("moved {} back to {}", from.display(), to.display()))
                    }
                    Err(e) => Err(os_err(&format!("move {} back to", from.display()), to, &e)),
                },
            )
        }
    }
}
