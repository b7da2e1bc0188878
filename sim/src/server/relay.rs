//! One client connection, relayed to the protocol crate through the [`guard`].
//!
//! ```text
//!  client ──requests──▶ read_message ─ guard::check ─▶ crate's socket ─▶ vfio_user::Server
//!    ▲                     │ refused: error reply                            │
//!    └──────────── writer (one whole message at a time) ◀── replies ◀────────┘
//! ```
//!
//! The client's socket is read here, never by the crate: a message is read whole
//! (header, body and the file descriptors sent with it) before anything is
//! forwarded, within [`MESSAGE_DEADLINE`] once its first byte has arrived, and only
//! if its header announces a size the guard accepts. A well-framed message the guard
//! refuses gets an error reply and the connection goes on; a header that cannot be
//! framed, a stalled message or a client that stops reading its replies
//! ([`WRITE_DEADLINE`]) ends the connection, and the server resets the chip for the
//! next client.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use super::guard::{self, Header, HEADER_BYTES, MAX_FDS};

/// Once a message has begun, the rest of it must arrive within this.
pub const MESSAGE_DEADLINE: Duration = Duration::from_secs(5);
/// A reply the client does not take within this ends the connection.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// A message read whole from the client.
pub struct Message {
    /// Its header.
    pub header: Header,
    /// The bytes after the header.
    pub body: Vec<u8>,
    /// File descriptors that came with it.
    pub fds: Vec<File>,
}

/// Why a connection ends.
#[derive(Debug)]
pub enum End {
    /// The client closed it between messages.
    Closed,
    /// The stream cannot be trusted any more.
    Broken(String),
}

/// Receives into `buf`, collecting file descriptors; `deadline` bounds the wait
/// (`None`: wait for the client as long as it takes).
fn recv(
    s: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<File>,
    deadline: Option<Instant>,
) -> Result<usize, End> {
    let timeout = match deadline {
        None => None,
        Some(d) => Some(
            d.checked_duration_since(Instant::now())
                .filter(|t| !t.is_zero())
                .ok_or_else(stalled)?,
        ),
    };
    s.set_read_timeout(timeout)
        .map_err(|e| End::Broken(format!("cannot set a read deadline: {e}")))?;
    let mut raw: [RawFd; MAX_FDS * 8] = [-1; MAX_FDS * 8];
    let mut iov = [libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    }];
    let r = loop {
        // SAFETY: the iovec points into `buf`, which is borrowed mutably for the
        // call; any bytes may be written there.
        match unsafe { s.recv_with_fds(&mut iov, &mut raw) } {
            Err(e) if e.errno() == libc::EINTR => continue,
            r => break r,
        }
    };
    match r {
        Ok((n, nfds)) => {
            for &fd in &raw[..nfds] {
                // SAFETY: recvmsg installed these descriptors in this process; each is
                // owned by exactly one File from here on.
                fds.push(unsafe { File::from_raw_fd(fd) });
            }
            if fds.len() > MAX_FDS * 4 {
                return Err(End::Broken(format!(
                    "a message came with {} file descriptors",
                    fds.len()
                )));
            }
            Ok(n)
        }
        Err(e) if e.errno() == libc::EAGAIN || e.errno() == libc::EWOULDBLOCK => Err(stalled()),
        Err(e) => Err(End::Broken(format!("reading from the client failed: {e}"))),
    }
}

fn stalled() -> End {
    End::Broken(format!(
        "the client sent part of a message and nothing more for {} s",
        MESSAGE_DEADLINE.as_secs()
    ))
}

/// Fills `buf` (part of a message that has begun).
fn fill(s: &UnixStream, buf: &mut [u8], fds: &mut Vec<File>, deadline: Instant) -> Result<(), End> {
    let mut at = 0;
    while at < buf.len() {
        let n = recv(s, &mut buf[at..], fds, Some(deadline))?;
        if n == 0 {
            return Err(End::Broken(
                "the client closed the connection in the middle of a message".into(),
            ));
        }
        at += n;
    }
    Ok(())
}

/// Reads one whole message: waits for its first byte as long as the client likes,
/// then for the rest within [`MESSAGE_DEADLINE`].
pub fn read_message(s: &UnixStream) -> Result<Message, End> {
    let mut head = [0u8; HEADER_BYTES];
    let mut fds = Vec::new();
    let first = recv(s, &mut head, &mut fds, None)?;
    if first == 0 {
        return Err(End::Closed);
    }
    let deadline = Instant::now() + MESSAGE_DEADLINE;
    fill(s, &mut head[first..], &mut fds, deadline)?;
    let header = Header::decode(&head);
    let len = header.body_len().map_err(|f| End::Broken(f.0))?;
    let mut body = vec![0u8; len];
    fill(s, &mut body, &mut fds, deadline)?;
    Ok(Message { header, body, fds })
}

/// Writes whole messages to the client, one at a time.
#[derive(Clone)]
pub struct Writer(Arc<Mutex<UnixStream>>);

impl Writer {
    /// Writes to `s`, giving up on a client that does not read within
    /// [`WRITE_DEADLINE`].
    pub fn new(s: UnixStream) -> std::io::Result<Self> {
        s.set_write_timeout(Some(WRITE_DEADLINE))?;
        Ok(Writer(Arc::new(Mutex::new(s))))
    }

    fn send(&self, parts: &[&[u8]]) -> std::io::Result<()> {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for p in parts {
            s.write_all(p)?;
        }
        Ok(())
    }
}

/// Client → crate: every message through the guard. Returns why the connection ended.
pub fn requests(client: &UnixStream, to_crate: &UnixStream, writer: &Writer) -> End {
    loop {
        let m = match read_message(client) {
            Ok(m) => m,
            Err(end) => return end,
        };
        match guard::check(&m.header, &m.body, m.fds.len()) {
            Ok(cmd) => {
                tracing::trace!("forwarding {cmd:?} ({} bytes)", m.header.size);
                let raw: Vec<RawFd> = m.fds.iter().map(|f| f.as_raw_fd()).collect();
                let head = m.header.encode();
                let sent = if raw.is_empty() {
                    let mut s = to_crate;
                    s.write_all(&head).and_then(|_| s.write_all(&m.body))
                } else {
                    send_with_fds(to_crate, &head, &m.body, &raw)
                };
                if let Err(e) = sent {
                    return End::Broken(format!(
                        "the protocol server stopped taking messages: {e}"
                    ));
                }
            }
            Err(refusal) => {
                tracing::warn!("refused a client message: {}", refusal.why);
                let reply = m.header.error_reply(refusal.errno).encode();
                if let Err(e) = writer.send(&[&reply]) {
                    return End::Broken(format!("the client does not take its replies: {e}"));
                }
            }
        }
        // The message's descriptors are closed here: the crate has its own copies.
    }
}

/// Header and body in one go, the descriptors attached to the header's first byte
/// (where the crate's receive of the header finds them).
fn send_with_fds(s: &UnixStream, head: &[u8], body: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let n = s
        .send_with_fds(&[head], fds)
        .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))?;
    let mut w = s;
    w.write_all(&head[n..])?;
    w.write_all(body)
}

/// Crate → client: whole replies, so that the guard's own error replies never land
/// inside one.
pub fn replies(mut from_crate: &UnixStream, writer: &Writer) {
    loop {
        let mut head = [0u8; HEADER_BYTES];
        if from_crate.read_exact(&mut head).is_err() {
            return;
        }
        let size = Header::decode(&head).size as usize;
        let mut body = vec![0u8; size.saturating_sub(HEADER_BYTES).min(1 << 20)];
        if from_crate.read_exact(&mut body).is_err() {
            return;
        }
        if let Err(e) = writer.send(&[&head, &body]) {
            tracing::warn!("the client does not take its replies ({e}); ending the connection");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_message_times_out_and_a_whole_one_is_read() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut w = &a;
        let h = Header {
            id: 1,
            command: 13,
            size: 20,
            flags: 0,
            error: 0,
        };
        w.write_all(&h.encode()).unwrap();
        w.write_all(&[1, 2, 3, 4]).unwrap();
        let m = read_message(&b).unwrap();
        assert_eq!((m.header, m.body, m.fds.len()), (h, vec![1, 2, 3, 4], 0));
        // Half a header, then silence.
        w.write_all(&h.encode()[..5]).unwrap();
        let t = Instant::now();
        match read_message(&b) {
            Err(End::Broken(why)) => assert!(why.contains("nothing more"), "{why}"),
            other => panic!("{:?}", other.map(|m| m.header)),
        }
        assert!(t.elapsed() >= MESSAGE_DEADLINE);
        // A header announcing 4 GiB is refused before its body is read.
        let (a, b) = UnixStream::pair().unwrap();
        let huge = Header {
            size: u32::MAX,
            ..h
        };
        (&a).write_all(&huge.encode()).unwrap();
        assert!(matches!(read_message(&b), Err(End::Broken(w)) if w.contains("longer")));
        drop(a);
        assert!(matches!(read_message(&b), Err(End::Closed)));
    }
}
