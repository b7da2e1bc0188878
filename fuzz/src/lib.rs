//! What each fuzz target checks: one function per target, taking the raw input.
//!
//! `fuzz_targets/NAME.rs` hands libFuzzer's input to `NAME` here (scripts/fuzz: cargo
//! fuzz, instrumented). The workspace's `tests/fuzz_corpora.rs` includes this file and
//! replays every input of `fuzz/corpus/NAME` through the same function in the plain
//! test build, so that CI checks the corpora without an instrumented build.
//!
//! Each function asserts its target's property and panics only where the property
//! fails: a panic is the finding.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use etch_agent::cap::{Attenuation, Authority, Grant, Request, Token};
use etch_agent::Registry;
use etch_driver::{Device, Serial};
use etch_firmware::descriptor::{COMMAND_BYTES, COMPLETION_BYTES};
use etch_firmware::{Command, Completion};
use etch_sim::server::guard::{check, Header, HEADER_BYTES};

/// A fuzz target: what it checks of one input.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/Cargo.toml` declares them and `fuzz/corpus/` holds
/// their inputs.
pub const TARGETS: [(&str, Target); 10] = [
    ("audit_log", audit_log),
    ("capability", capability),
    ("checkpoint", checkpoint),
    ("descriptor", descriptor),
    ("manifest", manifest),
    ("mcp_import", mcp_import),
    ("serial", serial),
    ("template", template),
    ("tokenizer", tokenizer),
    ("vfio_user", vfio_user),
];

/// The process's scratch directory (removed when the process exits normally): targets
/// whose parser reads files write each input there.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
}

/// An audit log someone edited: the reader returns every line as an entry or as the
/// reason it is not one, and never panics.
pub fn audit_log(data: &[u8]) {
    let path = etch_agent::audit::path(scratch());
    std::fs::write(&path, data).expect("write the input");
    if let Ok(entries) = etch_agent::audit::read(scratch()) {
        for e in entries.into_iter().flatten() {
            let _ = etch_agent::text::printable(&e.english);
        }
    }
    let _ = etch_agent::audit::tail(scratch(), 3);
}

/// The authority, a valid token and a workspace, made once per process.
struct CapabilityFixture {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    authority: Authority,
    token: String,
    workspace: PathBuf,
}

fn capability_fixture() -> &'static CapabilityFixture {
    static F: OnceLock<CapabilityFixture> = OnceLock::new();
    F.get_or_init(|| {
        let state = tempfile::tempdir().expect("a temporary directory");
        let ws = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir_all(ws.path().join("docs/sub")).expect("directories");
        let authority = Authority::open(state.path()).expect("a root key");
        let workspace = ws.path().canonicalize().expect("the workspace");
        let token = authority
            .mint(&Grant::new("alice", &workspace))
            .expect("a token");
        CapabilityFixture {
            _dirs: (state, ws),
            authority,
            token,
            workspace,
        }
    })
}

/// What the capability target reads from its input.
#[derive(Arbitrary, Debug)]
struct CapabilityInput<'a> {
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

/// Capability tokens from anyone, and delegations and calls with any paths, tools and
/// names: a token that does not verify is refused; a child token never allows a call
/// its parent refuses.
pub fn capability(data: &[u8]) {
    let Ok(input) = CapabilityInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let f = capability_fixture();
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
}

/// A checkpoint file from anyone: `Checkpoint::open` refuses a bad header, a size that
/// does not match it, or a weight that is not finite, with an error; a file it accepts
/// splits into every tensor.
pub fn checkpoint(data: &[u8]) {
    let path = scratch().join("model.bin");
    std::fs::write(&path, data).expect("write the input");
    if let Ok(ck) = etch_compiler::Checkpoint::open(&path) {
        let c = *ck.config();
        let w = ck.weights();
        let total: usize = w
            .named(c.shared_classifier)
            .iter()
            .map(|(_, t)| t.len())
            .sum();
        assert!(total <= ck.floats().len() + w.wcls.len());
        assert_eq!(ck.file_bytes().len(), data.len());
    }
}

/// Ring entries as a hostile peer writes them: any 64 command bytes and any 16
/// completion bytes decode, and what decodes encodes to a value that decodes the same.
pub fn descriptor(data: &[u8]) {
    let mut c = [0u8; COMMAND_BYTES];
    let n = data.len().min(COMMAND_BYTES);
    c[..n].copy_from_slice(&data[..n]);
    let cmd = Command::from_bytes(&c);
    assert_eq!(Command::from_bytes(&cmd.to_bytes()), cmd);
    let mut d = [0u8; COMPLETION_BYTES];
    let rest = &data[n..];
    let m = rest.len().min(COMPLETION_BYTES);
    d[..m].copy_from_slice(&rest[..m]);
    let done = Completion::from_bytes(&d);
    assert_eq!(Completion::from_bytes(&done.to_bytes()), done);
}

/// A chip directory's `manifest.json` from anyone: `Manifest::load` refuses what is not
/// a manifest with an error; every hash a loaded one carries either decodes or errors.
pub fn manifest(data: &[u8]) {
    std::fs::write(scratch().join("manifest.json"), data).expect("write the input");
    if let Ok(m) = etch_contract::Manifest::load(scratch()) {
        let _ = m.datapath();
        let _ = m.identity_words();
        let _ = m.firmware_words();
        let _ = m.rom_signature_value();
        let _ = m.quant.check_format();
        let _ = serde_json::to_string(&m);
    }
}

/// MCP tool descriptors from anyone: the registry imports well-formed tools and refuses
/// the rest with an error; what it imported exports, re-imports, and matches requests.
pub fn mcp_import(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let mut registry = Registry::default();
    if registry.import_mcp(&value).is_ok() {
        let exported = registry.export_mcp();
        let mut again = Registry::default();
        let _ = again.import_mcp(&exported);
        for request in [
            "list files",
            "run `make test`",
            "read notes.txt",
            "do the thing",
        ] {
            if let Some(call) = registry.match_template(request) {
                let _ = registry.render(&call);
                let _ = registry.validate(&call);
            }
            let _ = registry.candidates(request);
        }
    }
}

/// A pseudo-terminal: the master's file and the slave's path.
fn pty() -> (std::fs::File, PathBuf) {
    // SAFETY: plain libc calls on a descriptor this function owns; `ptsname_r` writes
    // at most `buf.len()` bytes.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0, "posix_openpt");
        let master = OwnedFd::from_raw_fd(fd);
        assert_eq!(libc::grantpt(fd), 0);
        assert_eq!(libc::unlockpt(fd), 0);
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()), 0);
        let name = std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned();
        (std::fs::File::from(master), name.into())
    }
}

/// A hostile board on the serial link: the driver (`etch_driver::Serial`) talks to a
/// pseudo-terminal behind which the input is the board's whole answer (after the reset
/// acknowledgement): any frames, DMA requests at any address, interrupts, bytes that
/// start no frame, replies out of step. Every operation returns a value or an error
/// within its deadline, and never panics; DMA never touches memory outside the buffers
/// the host allocated.
pub fn serial(data: &[u8]) {
    let (mut master, slave) = pty();
    let mut answer = vec![b'z'];
    answer.extend_from_slice(data);
    let mut reader = master.try_clone().expect("the master again");
    // The board: its whole answer at once, then it drains what the host sends.
    let board = std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let _ = reader.read(&mut sink);
        let _ = master.write_all(&answer);
        drop(master);
        while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
    });
    if let Ok(mut dev) = Serial::open(&slave, 115_200, Duration::from_millis(5)) {
        let buf = dev.dma_alloc(24);
        let _ = dev.read_reg(0);
        let _ = dev.write_reg(1, 0x5a5a);
        let _ = dev.wait(0xffff_ffff);
        let _ = dev.read_reg(2);
        if let Ok(b) = buf {
            let mut out = [0u8; 24];
            dev.dma_read(&b, 0, &mut out)
                .expect("the host's own buffer reads");
        }
        let _ = dev.reset();
        drop(dev);
    }
    let _ = board.join();
}

/// English requests from an agent: the template matcher and the candidate builder take
/// any text; every call they produce names a registry tool and passes its schema.
pub fn template(data: &[u8]) {
    let request = String::from_utf8_lossy(data);
    let registry = Registry::default();
    if let Some(call) = registry.match_template(&request) {
        assert!(registry.get(&call.tool).is_some(), "{call:?}");
        let _ = registry.render(&call);
    }
    for call in registry.candidates(&request) {
        assert!(registry.validate(&call).is_ok(), "{call:?}");
        let _ = registry.render(&call);
    }
}

/// A tokenizer file from anyone: `Tokenizer::parse_any` must refuse it with an error or
/// load it, and a loaded one must encode and decode any text without panicking.
pub fn tokenizer(data: &[u8]) {
    let Ok(tok) = etch_contract::Tokenizer::parse_any(data, Path::new("fuzz.bin")) else {
        return;
    };
    // The input's tail as text too, so that merges of the loaded pieces are reached.
    let text = String::from_utf8_lossy(&data[data.len().saturating_sub(64)..]);
    let ids = tok.encode(&text);
    for &id in &ids {
        assert!((id as usize) < tok.vocab_size(), "encode gave id {id}");
    }
    let _ = tok.decode_all(1, &ids);
    // Ids from the input itself, in and out of range.
    let raw: Vec<u32> = data
        .chunks(2)
        .map(|c| c[0] as u32 | (c.get(1).copied().unwrap_or(0) as u32) << 8)
        .collect();
    let _ = tok.decode_all(1, &raw);
}

/// vfio-user messages as the server receives them from a client: the header is framed
/// (a size the guard refuses ends the connection before any body is read), the body
/// read to the announced length, and the guard accepts or refuses the whole message
/// without panicking.
pub fn vfio_user(data: &[u8]) {
    if data.len() < HEADER_BYTES + 1 {
        return;
    }
    // The first byte: file descriptors received with the message (low bits), and
    // whether the header's size is the input's or the body's own (top bit), so that
    // both framing and the commands' checks are reached.
    let fds = (data[0] & 0x7) as usize;
    let mut header = Header::decode(data[1..=HEADER_BYTES].try_into().expect("16 bytes"));
    let body = &data[HEADER_BYTES + 1..];
    if data[0] & 0x80 != 0 {
        header.size = (HEADER_BYTES + body.len()) as u32;
    }
    if let Ok(len) = header.body_len() {
        if len == body.len() {
            if let Ok(cmd) = check(&header, body, fds) {
                assert_eq!(cmd as u16, header.command);
            }
        }
    }
}
