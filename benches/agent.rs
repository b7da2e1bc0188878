//! What a system call costs on the host: the capability check alone, and whole
//! template-matched syscalls (journal, audit entries with fsync, a Landlock-confined
//! child for the tool).

use criterion::{criterion_group, criterion_main, Criterion};
use etch_agent::cap::{Grant, Request as CapRequest, Token};
use etch_agent::{Request, Status, Syscalls};

fn syscalls(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("notes.txt"), "remember the milk\n").unwrap();
    let s = Syscalls::open(&dir.path().join("state")).unwrap();
    let token = s.mint(&Grant::new("alice", &ws), "bench").unwrap();
    let parsed = Token::parse(&token, s.public_key()).unwrap();
    let req = CapRequest {
        agent: "alice".into(),
        tool: "fs.read".into(),
        paths: vec![ws.join("notes.txt").display().to_string()],
        recipients: vec![],
        cost: 1,
        now: etch_agent::time::now(),
    };
    let mut g = c.benchmark_group("agent");
    g.bench_function("authorize", |b| {
        b.iter(|| parsed.authorize(&req, &[]).unwrap())
    });
    // Thousands of calls from one agent would trip the burst monitor: every 50 calls
    // come from an agent of their own.
    let mut n = 0u64;
    for (name, text) in [
        ("syscall read (template, executed)", "read notes.txt"),
        (
            "syscall write (template, executed with undo)",
            "write hello to out.txt",
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                let agent = format!("alice/a{}", n / 50);
                let request = Request {
                    agent: &agent,
                    token: &token,
                    workspace: &ws,
                    text,
                };
                let a = s.syscall(&request, None).unwrap();
                assert_eq!(a.status, Status::Executed);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = syscalls
}
criterion_main!(benches);
