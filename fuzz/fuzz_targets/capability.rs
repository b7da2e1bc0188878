//! Capability tokens from anyone, and delegations and calls with any paths, tools and
//! names: a token that does not verify is refused; a child token never allows a call
//! its parent refuses.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use etch_agent::cap::{Attenuation, Authority, Grant, Request, Token};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    authority: Authority,
    token: String,
    workspace: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let state = tempfile::tempdir().expect("a temporary directory");
        let ws = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir_all(ws.path().join("docs/sub")).expect("directories");
        let authority = Authority::open(state.path()).expect("a root key");
        let workspace = ws.path().canonicalize().expect("the workspace");
        let token = authority
            .mint(&Grant::new("alice", &workspace))
            .expect("a token");
        Fixture {
            _dirs: (state, ws),
            authority,
            token,
            workspace,
        }
    })
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// A token text; a valid token is used when it is empty.
    token: &'a str,
    child: Option<&'a str>,
    narrow_to: Vec<&'a str>,
    agent: &'a str,
    tool: &'a str,
    paths: Vec<&'a str>,
    recipients: Vec<&'a str>,
    cost: u16,
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let text = if input.token.is_empty() {
        f.token.as_str()
    } else {
        input.token
    };
    let Ok(parent) = Token::parse(text, f.authority.public()) else {
        return;
    };
    let _ = parent.path_limits();
    let req = Request {
        agent: input.agent.to_string(),
        tool: input.tool.to_string(),
        paths: input
            .paths
            .iter()
            .map(|p| f.workspace.join(p).display().to_string())
            .collect(),
        recipients: input.recipients.iter().map(|r| r.to_string()).collect(),
        cost: input.cost as u64,
        now: 1_800_000_000,
    };
    let usage = vec![(0, 0); parent.blocks() + 1];
    let parent_allows = parent.authorize(&req, &usage).is_ok();
    let attenuation = Attenuation {
        agent: input.child.map(|c| format!("alice/{c}")),
        paths: input.narrow_to.iter().map(PathBuf::from).collect(),
        ..Default::default()
    };
    if let Ok(child) = parent.attenuate(&attenuation) {
        let _ = child.path_limits();
        if child.authorize(&req, &usage).is_ok() {
            assert!(
                parent_allows,
                "the child allows what its parent refuses: {req:?}"
            );
        }
    }
});
