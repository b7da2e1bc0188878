//! The kernel boundary: every tool that touches the operating system runs in a child
//! process confined by a Landlock ruleset derived from the capability's paths, so a
//! buggy tool cannot exceed the capability either.
//!
//! File operations run in a forked child that does nothing but raw system calls
//! (everything it needs — C strings, data — is prepared before the fork, so the child
//! never allocates, which keeps `fork` in a multi-threaded process sound). Commands run
//! through `execve` with the ruleset applied between `fork` and `exec`. Without
//! Landlock in the kernel nothing runs: etch fails closed.
//!
//! What a confined child may do:
//! * files: only beneath the rule's directories — read-write roots, read-only roots —
//!   and, for commands, read and execute on the system's program directories
//!   ([`SYSTEM_READ`]) and a few character devices. Nothing else of the file system is
//!   visible, the state directory above all: a ruleset whose roots would contain one
//!   of [`Rules::hidden`] is refused before anything runs.
//! * the capability's roots are opened with `RESOLVE_NO_SYMLINKS`: a root that a
//!   symbolic link leads to (swapped in after the capability was made) is refused
//!   rather than followed out of the workspace.
//! * network: no TCP bind or connect (Landlock ABI 4 and later).
//! * scope: no signals to processes outside the sandbox and no connections to
//!   abstract UNIX sockets made outside it (ABI 6 and later).
//! * time: a file operation is killed after [`FS_LIMIT`], a command after its limit.
//!
//! Raw system calls are kept on purpose: the child after `fork` in a multi-threaded
//! process may only make async-signal-safe calls, so everything — the ruleset, the
//! paths as C strings, the data — is made before the fork, and the child makes the
//! `landlock_restrict_self` and file system calls itself, with no allocation. The
//! `landlock` crate builds its rulesets the same way but allocates when enforcing.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{AgentError, Result};

const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const REFER: u64 = 1 << 13;
const TRUNCATE: u64 = 1 << 14;
const IOCTL_DEV: u64 = 1 << 15;
/// Landlock network rights (ABI 4): bind and connect on TCP ports.
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
/// Landlock scopes (ABI 6): abstract UNIX sockets and signals stay inside.
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

/// Directories a confined command may read and execute from: the programs and their
/// libraries and configuration. Never the state directory (checked).
pub const SYSTEM_READ: [&str; 8] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];
/// Devices a confined command may read (and `/dev/null`, `/dev/full` write).
const DEVICES: [(&str, bool); 5] = [
    ("/dev/null", true),
    ("/dev/zero", false),
    ("/dev/full", true),
    ("/dev/random", false),
    ("/dev/urandom", false),
];
/// A confined file operation that takes longer than this is killed (a FIFO or a
/// device that never answers).
pub const FS_LIMIT: Duration = Duration::from_secs(30);

/// Every file-system right the running kernel's Landlock ABI knows.
fn handled(abi: i64) -> u64 {
    let mut all = (1 << 13) - 1; // ABI 1: EXECUTE … MAKE_SYM
    if abi >= 2 {
        all |= REFER;
    }
    if abi >= 3 {
        all |= TRUNCATE;
    }
    if abi >= 5 {
        all |= IOCTL_DEV;
    }
    all
}

/// The Landlock ABI version of the running kernel, or why there is none.
pub fn abi() -> std::result::Result<i64, String> {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only
    // returns the ABI version; no memory is passed.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    if v < 1 {
        Err(format!(
            "Landlock is not available on this kernel ({}); etch does not run tools unconfined",
            std::io::Error::last_os_error()
        ))
    } else {
        Ok(v)
    }
}

/// Where a confined child may read and write.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Rules {
    /// Read, write, create, remove beneath these.
    pub read_write: Vec<PathBuf>,
    /// Read and execute beneath these.
    pub read_only: Vec<PathBuf>,
    /// Directories no rule may reach (the state directory): a ruleset whose roots
    /// contain one of them is refused.
    #[serde(default)]
    pub hidden: Vec<PathBuf>,
}

impl Rules {
    /// Refuses roots that would expose a hidden directory: a root that is one of them
    /// or lies above one. Compared after resolving symbolic links.
    fn check_hidden(&self, extra: &[PathBuf]) -> Result<()> {
        let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        for h in &self.hidden {
            let h = real(h);
            for root in self.read_write.iter().chain(&self.read_only).chain(extra) {
                if h.starts_with(real(root)) {
                    return Err(AgentError::Tool(format!(
                        "refusing to confine a tool to {}: it contains the state directory {}",
                        root.display(),
                        h.display()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A Landlock ruleset, created in the parent; a child enforces it on itself.
struct Ruleset {
    fd: libc::c_int,
}

impl Drop for Ruleset {
    fn drop(&mut self) {
        // SAFETY: the fd is owned by this value and closed once.
        unsafe { libc::close(self.fd) };
    }
}

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Whether a rule's path may be reached through symbolic links.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Follow {
    /// The system's own directories (`/bin` is a link to `/usr/bin` on most systems).
    System,
    /// A capability's roots: no link anywhere on the way.
    Never,
}

#[repr(C, packed)]
struct PathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}

impl Ruleset {
    fn new(rules: &Rules) -> Result<Self> {
        let abi = abi().map_err(AgentError::Tool)?;
        let all = handled(abi);
        let attr = RulesetAttr {
            handled_access_fs: all,
            handled_access_net: if abi >= 4 {
                NET_BIND_TCP | NET_CONNECT_TCP
            } else {
                0
            },
            scoped: if abi >= 6 {
                SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
            } else {
                0
            },
        };
        // The attribute's size is the one the kernel's ABI knows: the network field
        // came with ABI 4, the scope field with ABI 6.
        let size = match abi {
            ..=3 => 8,
            4..=5 => 16,
            _ => std::mem::size_of::<RulesetAttr>(),
        };
        // SAFETY: attr is a valid landlock_ruleset_attr of at least `size` bytes.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                size,
                0u32,
            )
        };
        if fd < 0 {
            return Err(AgentError::Tool(format!(
                "cannot create a Landlock ruleset: {}",
                std::io::Error::last_os_error()
            )));
        }
        let set = Ruleset {
            fd: fd as libc::c_int,
        };
        let read = EXECUTE | READ_FILE | READ_DIR;
        for (paths, access) in [(&rules.read_only, read), (&rules.read_write, all)] {
            for p in paths {
                set.allow(p, access, Follow::Never)?;
            }
        }
        Ok(set)
    }

    fn allow(&self, path: &Path, access: u64, follow: Follow) -> Result<()> {
        let c = cstring(path)?;
        let dir = match follow {
            // SAFETY: c is a NUL-terminated path; O_PATH opens no file contents.
            Follow::System => unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) },
            Follow::Never => {
                let how = OpenHow {
                    flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
                    mode: 0,
                    resolve: libc::RESOLVE_NO_SYMLINKS,
                };
                // SAFETY: openat2 with a NUL-terminated path and a valid open_how of
                // the size passed; O_PATH opens no file contents.
                unsafe {
                    libc::syscall(
                        libc::SYS_openat2,
                        libc::AT_FDCWD,
                        c.as_ptr(),
                        &how as *const OpenHow,
                        std::mem::size_of::<OpenHow>(),
                    ) as libc::c_int
                }
            }
        };
        if dir < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ELOOP) {
                return Err(AgentError::Tool(format!(
                    "refusing to confine a tool to {}: a symbolic link lies on the way to it",
                    path.display()
                )));
            }
            return Err(AgentError::io("open for the Landlock ruleset", path, e));
        }
        // A file (not a directory) may only carry file rights.
        // SAFETY: an all-zero stat is a valid value of this plain C struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: dir is a valid fd and st a valid stat buffer.
        let is_dir = unsafe { libc::fstat(dir, &mut st) } == 0
            && (st.st_mode & libc::S_IFMT) == libc::S_IFDIR;
        let access = if is_dir {
            access
        } else {
            access & (EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV)
        };
        let rule = PathBeneath {
            allowed_access: access,
            parent_fd: dir,
        };
        // SAFETY: rule is a valid landlock_path_beneath_attr; type 1 = PATH_BENEATH.
        let r = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.fd,
                1u32,
                &rule as *const PathBeneath,
                0u32,
            )
        };
        let err = std::io::Error::last_os_error();
        // SAFETY: dir was opened above and is closed once.
        unsafe { libc::close(dir) };
        if r < 0 {
            return Err(AgentError::Tool(format!(
                "cannot add {} to the Landlock ruleset: {err}",
                path.display()
            )));
        }
        Ok(())
    }
}

/// Applies a ruleset to the calling process (a child after `fork`): only raw system
/// calls, async-signal-safe.
fn enforce(fd: libc::c_int) -> libc::c_int {
    // SAFETY: prctl and landlock_restrict_self take no pointers here.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return *libc::__errno_location();
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0 {
            return *libc::__errno_location();
        }
    }
    0
}

/// A file operation for a confined child.
#[derive(Debug)]
pub enum FsOp {
    /// The bytes of a file.
    Read(PathBuf),
    /// The names in a directory.
    List(PathBuf),
    /// Create the directories (in order), then write the file (truncating it).
    Write {
        /// The file.
        path: PathBuf,
        /// Directories to create first, outermost first.
        mkdirs: Vec<PathBuf>,
        /// Its new content.
        data: Vec<u8>,
    },
    /// Write `tmp`, then move it to `path` unless `path` exists (then `tmp` goes and
    /// the result is [`FsResult::Existed`]): an idempotent write.
    WriteOnce {
        /// Scratch name beside `path`.
        tmp: PathBuf,
        /// The final name.
        path: PathBuf,
        /// Content.
        data: Vec<u8>,
    },
    /// Rename, never over an existing name.
    Rename {
        /// From.
        from: PathBuf,
        /// To.
        to: PathBuf,
    },
    /// Remove a file.
    Unlink(PathBuf),
    /// Remove an empty directory.
    Rmdir(PathBuf),
}

/// What a confined file operation gave.
#[derive(Debug, PartialEq, Eq)]
pub enum FsResult {
    /// Done.
    Done,
    /// A file's bytes.
    Bytes(Vec<u8>),
    /// Directory entries: (name, is a directory), sorted.
    Entries(Vec<(String, bool)>),
    /// [`FsOp::WriteOnce`] found its file already there.
    Existed,
}

/// Largest file a confined read returns.
pub const MAX_READ: usize = 16 << 20;

/// Runs one file operation in a child confined by `rules`. An `Err` from the kernel
/// inside the child comes back as an `io::Error` with its errno (EACCES when Landlock
/// refused).
pub fn fs(rules: &Rules, op: &FsOp) -> Result<std::result::Result<FsResult, std::io::Error>> {
    rules.check_hidden(&[])?;
    let set = Ruleset::new(rules)?;
    let prepared = Prepared::new(op)?;
    let mut pipe = [0 as libc::c_int; 2];
    // SAFETY: pipe is a valid 2-int buffer.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(AgentError::Tool(format!(
            "cannot create a pipe: {}",
            std::io::Error::last_os_error()
        )));
    }
    let (rd, wr) = (pipe[0], pipe[1]);
    // SAFETY: the child runs only async-signal-safe system calls on memory prepared
    // before the fork (no allocation, no locks) and leaves through _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: both ends are ours.
        unsafe {
            libc::close(rd);
            libc::close(wr);
        }
        return Err(AgentError::Tool(format!(
            "cannot fork a confined child: {e}"
        )));
    }
    if pid == 0 {
        // SAFETY: in the child; see above.
        unsafe {
            libc::close(rd);
            let mut code = enforce(set.fd);
            if code == 0 {
                code = prepared.run(wr);
            }
            libc::_exit(code);
        }
    }
    // SAFETY: the write end belongs to the child now.
    unsafe { libc::close(wr) };
    // SAFETY: rd is an open pipe end owned from here on by the File.
    let out = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(rd) };
    let read = read_bounded(&out, FS_LIMIT);
    drop(out);
    if read.is_err() {
        // Out of time: the child is stuck (a FIFO, a device); it goes.
        // SAFETY: pid is our child, not yet waited for.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let status = wait(pid)?;
    let bytes = match read {
        Ok(b) => b,
        Err(ReadEnd::TimedOut) => {
            return Ok(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "it did not answer within {} s (a pipe or a device?)",
                    FS_LIMIT.as_secs()
                ),
            )))
        }
        Err(ReadEnd::Failed(e)) => {
            return Err(AgentError::Tool(format!(
                "cannot read from the confined child: {e}"
            )))
        }
    };
    if !libc::WIFEXITED(status) {
        return Err(AgentError::Tool(format!(
            "the confined child died (wait status {status:#x})"
        )));
    }
    match libc::WEXITSTATUS(status) {
        0 => {}
        EXISTED => return Ok(Ok(FsResult::Existed)),
        NOT_A_FILE => {
            return Ok(Err(std::io::Error::other(
                "it is not a regular file (a pipe, a socket or a device)",
            )))
        }
        libc::EFBIG => return Ok(Err(too_large())),
        code => return Ok(Err(std::io::Error::from_raw_os_error(code))),
    }
    if bytes.len() > MAX_READ {
        return Ok(Err(too_large()));
    }
    Ok(Ok(match op {
        FsOp::Read(_) => FsResult::Bytes(bytes),
        FsOp::List(_) => FsResult::Entries(parse_dirents(&bytes)),
        _ => FsResult::Done,
    }))
}

fn too_large() -> std::io::Error {
    std::io::Error::other(format!("it is larger than {} MiB", MAX_READ >> 20))
}

enum ReadEnd {
    TimedOut,
    Failed(std::io::Error),
}

/// Everything the child writes (at most [`MAX_READ`] + 1 bytes: the child stops at
/// the limit itself), within `limit`.
fn read_bounded(out: &std::fs::File, limit: Duration) -> std::result::Result<Vec<u8>, ReadEnd> {
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + limit;
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadEnd::TimedOut);
        }
        let mut pfd = libc::pollfd {
            fd: out.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(ReadEnd::Failed(e));
        }
        if r == 0 {
            return Err(ReadEnd::TimedOut);
        }
        match (&mut &*out).read(&mut buf) {
            Ok(0) => return Ok(bytes),
            Ok(n) => {
                bytes.extend_from_slice(&buf[..n]);
                if bytes.len() > MAX_READ + 1 {
                    return Err(ReadEnd::Failed(std::io::Error::other(
                        "the confined child wrote more than it may",
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadEnd::Failed(e)),
        }
    }
}

/// Exit code of a child asked to read something that is not a regular file.
const NOT_A_FILE: i32 = 251;
/// Exit code of a child whose [`FsOp::WriteOnce`] found the file there.
const EXISTED: i32 = 250;

fn wait(pid: libc::pid_t) -> Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid int; pid is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(AgentError::Tool(format!(
                "cannot wait for the confined child: {e}"
            )));
        }
    }
}

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| AgentError::Invalid(format!("the path {} contains a NUL byte", p.display())))
}

/// An [`FsOp`] with its C strings made before the fork: `a` and `b` are the
/// operation's first and second path (empty when it has one), `dirs` the directories
/// of a write.
struct Prepared<'a> {
    op: &'a FsOp,
    a: CString,
    b: CString,
    dirs: Vec<CString>,
}

impl<'a> Prepared<'a> {
    fn new(op: &'a FsOp) -> Result<Self> {
        let (a, b, dirs): (&Path, Option<&Path>, &[PathBuf]) = match op {
            FsOp::Read(p) | FsOp::List(p) | FsOp::Unlink(p) | FsOp::Rmdir(p) => (p, None, &[]),
            FsOp::Write { path, mkdirs, .. } => (path, None, mkdirs),
            FsOp::WriteOnce { tmp, path, .. } => (tmp, Some(path), &[]),
            FsOp::Rename { from, to } => (from, Some(to), &[]),
        };
        Ok(Prepared {
            op,
            a: cstring(a)?,
            b: b.map(cstring).transpose()?.unwrap_or_default(),
            dirs: dirs.iter().map(|d| cstring(d)).collect::<Result<_>>()?,
        })
    }

    /// In the child: the operation, output to `out`; returns 0 or an errno.
    ///
    /// # Safety
    /// Only after `fork`, in the child.
    unsafe fn run(&self, out: libc::c_int) -> libc::c_int {
        let errno = || *libc::__errno_location();
        let ok_or_errno = |r: libc::c_int| if r == 0 { 0 } else { errno() };
        let noreplace = || {
            libc::renameat2(
                libc::AT_FDCWD,
                self.a.as_ptr(),
                libc::AT_FDCWD,
                self.b.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        match self.op {
            FsOp::Read(_) | FsOp::List(_) => {
                let list = matches!(self.op, FsOp::List(_));
                // O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
                let flags = if list {
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC
                } else {
                    libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC
                };
                let fd = libc::open(self.a.as_ptr(), flags);
                if fd < 0 {
                    return errno();
                }
                if !list {
                    let mut st: libc::stat = std::mem::zeroed();
                    if libc::fstat(fd, &mut st) != 0 {
                        return errno();
                    }
                    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                        return NOT_A_FILE;
                    }
                    if st.st_size as u64 > MAX_READ as u64 {
                        return libc::EFBIG;
                    }
                }
                let mut buf = [0u8; 65536];
                let mut total = 0usize;
                loop {
                    let n = if list {
                        libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len())
                            as isize
                    } else {
                        libc::read(fd, buf.as_mut_ptr().cast(), buf.len())
                    };
                    if n < 0 {
                        return errno();
                    }
                    if n == 0 {
                        return 0;
                    }
                    total += n as usize;
                    if !list && total > MAX_READ {
                        return libc::EFBIG;
                    }
                    if write_all(out, &buf[..n as usize]) != 0 {
                        return errno();
                    }
                }
            }
            FsOp::Write { data, .. } => {
                for d in &self.dirs {
                    if libc::mkdir(d.as_ptr(), 0o755) != 0 && errno() != libc::EEXIST {
                        return errno();
                    }
                }
                write_file(&self.a, data)
            }
            FsOp::WriteOnce { data, .. } => {
                let r = write_file(&self.a, data);
                if r != 0 {
                    return r;
                }
                if noreplace() != 0 {
                    let e = errno();
                    libc::unlink(self.a.as_ptr());
                    return if e == libc::EEXIST { EXISTED } else { e };
                }
                0
            }
            FsOp::Rename { .. } => ok_or_errno(noreplace()),
            FsOp::Unlink(_) => ok_or_errno(libc::unlink(self.a.as_ptr())),
            FsOp::Rmdir(_) => ok_or_errno(libc::rmdir(self.a.as_ptr())),
        }
    }
}

/// # Safety
/// Async-signal-safe; `fd` is open for writing.
unsafe fn write_all(fd: libc::c_int, mut data: &[u8]) -> libc::c_int {
    while !data.is_empty() {
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        if n < 0 {
            if *libc::__errno_location() == libc::EINTR {
                continue;
            }
            return -1;
        }
        data = data.get(n as usize..).unwrap_or(&[]);
    }
    0
}

/// # Safety
/// Async-signal-safe.
unsafe fn write_file(path: &CString, data: &[u8]) -> libc::c_int {
    // O_NONBLOCK: a FIFO with no reader fails (ENXIO) instead of waiting forever.
    let fd = libc::open(
        path.as_ptr(),
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NONBLOCK | libc::O_CLOEXEC,
        0o644 as libc::c_uint,
    );
    if fd < 0 {
        return *libc::__errno_location();
    }
    if write_all(fd, data) != 0 || libc::fsync(fd) != 0 {
        let e = *libc::__errno_location();
        libc::close(fd);
        return e;
    }
    libc::close(fd);
    0
}

fn parse_dirents(mut b: &[u8]) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
    while b.len() >= 19 {
        let reclen = u16::from_ne_bytes([b[16], b[17]]) as usize;
        if reclen < 19 || reclen > b.len() {
            break;
        }
        let kind = b[18];
        let name = &b[19..reclen];
        let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
        let name = String::from_utf8_lossy(name).into_owned();
        if name != "." && name != ".." {
            out.push((name, kind == libc::DT_DIR));
        }
        b = &b[reclen..];
    }
    out.sort();
    out
}

/// What a confined command did.
#[derive(Debug)]
pub struct Ran {
    /// Exit code (`None`: killed by a signal or the time limit).
    pub code: Option<i32>,
    /// Standard output, then standard error, cut at 64 KiB each.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Killed at the time limit.
    pub timed_out: bool,
}

/// Runs `argv` in `cwd` confined by `rules` (plus read and execute on the system's
/// program directories, [`SYSTEM_READ`], and a few devices), with a clean environment,
/// no inherited descriptors beyond standard input, output and error, and a time limit.
pub fn command(rules: &Rules, argv: &[String], cwd: &Path, limit: Duration) -> Result<Ran> {
    let system: Vec<PathBuf> = SYSTEM_READ
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect();
    rules.check_hidden(&system)?;
    let set = Ruleset::new(rules)?;
    for p in &system {
        set.allow(p, EXECUTE | READ_FILE | READ_DIR, Follow::System)?;
    }
    for (dev, writable) in DEVICES {
        if Path::new(dev).exists() {
            // `2>/dev/null` opens with O_TRUNC: writable devices need the truncate
            // right where the kernel's ABI has it.
            let access = if writable {
                (READ_FILE | WRITE_FILE | TRUNCATE) & handled(abi().map_err(AgentError::Tool)?)
            } else {
                READ_FILE
            };
            set.allow(Path::new(dev), access, Follow::System)?;
        }
    }
    let fd = set.fd;
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| AgentError::Invalid("an empty command".into()))?;
    let mut cmd = std::process::Command::new(prog);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: close_range and enforce() make only async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(move || {
            // Every descriptor above standard error closes at exec (the state
            // database's among them): Landlock checks opening files, not using
            // descriptors already open.
            if libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            match enforce(fd) {
                0 => Ok(()),
                e => Err(std::io::Error::from_raw_os_error(e)),
            }
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| AgentError::Tool(format!("cannot start {prog:?} confined: {e}")))?;
    drop(set);
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t_out = std::thread::spawn(move || capture(so.as_mut()));
    let t_err = std::thread::spawn(move || capture(se.as_mut()));
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                timed_out = true;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(AgentError::Tool(format!("cannot wait for {prog:?}: {e}"))),
        }
    };
    Ok(Ran {
        code: status.code(),
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
        timed_out,
    })
}

fn capture(r: Option<&mut impl Read>) -> String {
    let mut v = Vec::new();
    if let Some(r) = r {
        let _ = r.take(65_536).read_to_end(&mut v);
        // Drain the rest so the child never blocks on a full pipe.
        let _ = std::io::copy(r, &mut std::io::sink());
    }
    String::from_utf8_lossy(&v).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confined_child_cannot_write_outside_its_paths() {
        if let Err(why) = abi() {
            // Fail closed: nothing runs at all.
            let dir = tempfile::tempdir().unwrap();
            let r = fs(&Rules::default(), &FsOp::Read(dir.path().into()));
            assert!(r.unwrap_err().to_string().contains("Landlock"), "{why}");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let inside = root.path().join("inside");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let rules = Rules {
            read_write: vec![inside.clone()],
            read_only: vec![],
            hidden: vec![],
        };
        let w = |p: PathBuf| FsOp::Write {
            path: p,
            mkdirs: vec![],
            data: b"x".to_vec(),
        };
        assert_eq!(
            fs(&rules, &w(inside.join("a"))).unwrap().unwrap(),
            FsResult::Done
        );
        let e = fs(&rules, &w(outside.join("a"))).unwrap().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        assert!(!outside.join("a").exists());
        // A symlink inside pointing outside does not help.
        std::os::unix::fs::symlink(&outside, inside.join("link")).unwrap();
        let e = fs(&rules, &w(inside.join("link/b"))).unwrap().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        // Reading outside is refused too; inside works.
        std::fs::write(outside.join("secret"), "s").unwrap();
        let e = fs(&rules, &FsOp::Read(outside.join("secret")))
            .unwrap()
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        assert_eq!(
            fs(&rules, &FsOp::Read(inside.join("a"))).unwrap().unwrap(),
            FsResult::Bytes(b"x".to_vec())
        );
        let entries = fs(&rules, &FsOp::List(inside.clone())).unwrap().unwrap();
        assert_eq!(
            entries,
            FsResult::Entries(vec![("a".into(), false), ("link".into(), false)])
        );
        // A command: whatever its code does, the kernel says no.
        let ran = command(
            &rules,
            &[
                "sh".into(),
                "-c".into(),
                format!("echo hi > {}/c; echo ok > c", outside.display()),
            ],
            &inside,
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(ran.stderr.contains("Permission denied"), "{ran:?}");
        assert!(!outside.join("c").exists());
        assert_eq!(std::fs::read_to_string(inside.join("c")).unwrap(), "ok\n");
    }

    #[test]
    fn write_once_is_idempotent() {
        if abi().is_err() {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let rules = Rules {
            read_write: vec![root.path().into()],
            read_only: vec![],
            hidden: vec![],
        };
        let op = FsOp::WriteOnce {
            tmp: root.path().join(".m.tmp"),
            path: root.path().join("m"),
            data: b"1".to_vec(),
        };
        assert_eq!(fs(&rules, &op).unwrap().unwrap(), FsResult::Done);
        assert_eq!(fs(&rules, &op).unwrap().unwrap(), FsResult::Existed);
        assert!(!root.path().join(".m.tmp").exists());
    }
}
