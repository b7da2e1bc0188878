//! The tools etch ships: files inside a workspace, process execution, an outbound
//! message.

use super::tool::{Approval, Arg, ArgType, Builtin, Executor, Reversibility, Tool};

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
