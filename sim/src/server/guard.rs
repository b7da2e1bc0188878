//! The message guard: every vfio-user message a client sends is framed and checked
//! here before the protocol crate sees it.
//!
//! The `vfio_user` crate trusts its peer: it sizes buffers from the header's
//! `message_size`, unwraps the VERSION string, and reads bodies of any announced
//! length with no deadline. A client is hostile until checked (ARCHITECTURE rule 6),
//! so the server reads each message itself — header, body and file descriptors —
//! under a size bound and a deadline, and [`check`] decides, from the bytes alone,
//! whether the crate may have it. What [`check`] accepts is exactly what the crate
//! reads for that command: no more bytes (which would desynchronize the stream), no
//! fewer, no file descriptors a command does not take, counts and indices inside the
//! device's regions and vectors.
//!
//! [`check`] is a pure function of its input, so it is also the vfio-user fuzz
//! target's entry point.

use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_UNMASK,
    VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
    VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS,
};

/// Bytes of a message header.
pub const HEADER_BYTES: usize = 16;
/// The longest VERSION capabilities string accepted (JSON, with its NUL).
pub const MAX_VERSION_JSON: usize = 4096;
/// The largest region access: all of BAR0.
pub const MAX_ACCESS: u32 = etch_firmware::regs::pci::BAR0_BYTES as u32;
/// The longest message the guard reads at all; a header announcing more ends the
/// connection before any of its body is read.
pub const MAX_MESSAGE: usize = HEADER_BYTES + 16 + MAX_ACCESS as usize + MAX_VERSION_JSON;
/// File descriptors one message may carry (SET_IRQS: one per vector).
pub const MAX_FDS: usize = etch_firmware::regs::pci::VECTORS as usize;

/// Header flag: this message is a reply.
const FLAG_REPLY: u32 = 1;
/// Header flag: the sender wants no reply.
const FLAG_NO_REPLY: u32 = 1 << 4;
/// Header flag: the reply reports an error.
const FLAG_ERROR: u32 = 1 << 5;
/// Bits 0-3 hold the message type (0 command, 1 reply).
const FLAGS_KNOWN: u32 = 0xF | FLAG_NO_REPLY | FLAG_ERROR;

/// The vfio-user commands, by number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Command {
    /// Protocol version and capabilities.
    Version = 1,
    /// Share a range of the client's memory with the device.
    DmaMap = 2,
    /// Stop sharing it.
    DmaUnmap = 3,
    /// Device flags, regions and interrupts.
    DeviceGetInfo = 4,
    /// One region's size and flags.
    DeviceGetRegionInfo = 5,
    /// One interrupt index.
    GetIrqInfo = 7,
    /// Interrupt eventfds.
    SetIrqs = 8,
    /// Read a region.
    RegionRead = 9,
    /// Write a region.
    RegionWrite = 10,
    /// Reset the device.
    DeviceReset = 13,
}

impl Command {
    /// The command of a header's number, if the server implements it.
    pub fn from_number(n: u16) -> Option<Self> {
        use Command::*;
        Some(match n {
            1 => Version,
            2 => DmaMap,
            3 => DmaUnmap,
            4 => DeviceGetInfo,
            5 => DeviceGetRegionInfo,
            7 => GetIrqInfo,
            8 => SetIrqs,
            9 => RegionRead,
            10 => RegionWrite,
            13 => DeviceReset,
            _ => return None,
        })
    }

    /// Bytes of the fixed part after the header.
    fn fixed(self) -> usize {
        use Command::*;
        match self {
            Version => 4,
            DmaMap => 32,
            DmaUnmap => 24,
            DeviceGetInfo | GetIrqInfo | RegionRead | RegionWrite => 16,
            DeviceGetRegionInfo => 32,
            SetIrqs => 20,
            DeviceReset => 0,
        }
    }

    /// Commands whose answer carries data: a client asking for no reply is confused.
    fn needs_reply(self) -> bool {
        use Command::*;
        matches!(
            self,
            Version | DeviceGetInfo | DeviceGetRegionInfo | GetIrqInfo | RegionRead
        )
    }
}

/// A message header as it travels (little-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Matches a reply to its command.
    pub id: u16,
    /// The command number.
    pub command: u16,
    /// Bytes of the whole message, header included.
    pub size: u32,
    /// Message type and flags.
    pub flags: u32,
    /// An errno, in error replies.
    pub error: u32,
}

impl Header {
    /// Decodes the 16 header bytes.
    pub fn decode(b: &[u8; HEADER_BYTES]) -> Self {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Header {
            id: u16_at(0),
            command: u16_at(2),
            size: u32_at(4),
            flags: u32_at(8),
            error: u32_at(12),
        }
    }

    /// Encodes it.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.command.to_le_bytes());
        b[4..8].copy_from_slice(&self.size.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.error.to_le_bytes());
        b
    }

    /// Bytes of body the header announces, if the guard will read that many at all.
    pub fn body_len(&self) -> Result<usize, Framing> {
        let size = self.size as usize;
        if size < HEADER_BYTES {
            return Err(Framing(format!(
                "a message of {size} bytes is shorter than its own header"
            )));
        }
        if size > MAX_MESSAGE {
            return Err(Framing(format!(
                "a message of {size} bytes is longer than any this device accepts ({MAX_MESSAGE})"
            )));
        }
        Ok(size - HEADER_BYTES)
    }

    /// The error reply to this message.
    pub fn error_reply(&self, errno: i32) -> Self {
        Header {
            id: self.id,
            command: self.command,
            size: HEADER_BYTES as u32,
            flags: FLAG_REPLY | FLAG_ERROR,
            error: errno as u32,
        }
    }
}

/// A header that cannot be framed: the stream cannot be trusted past it, and the
/// connection ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Framing(pub String);

/// A well-framed message the device refuses: it gets an error reply with `errno`
/// and the connection goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The errno of the error reply.
    pub errno: i32,
    /// Why, for the server's log.
    pub why: String,
}

fn refuse(errno: i32, why: impl Into<String>) -> Refusal {
    Refusal {
        errno,
        why: why.into(),
    }
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(v)
}

/// Decides whether a framed message (header, its `body`, `fds` file descriptors
/// received with it) may go to the protocol crate.
pub fn check(h: &Header, body: &[u8], fds: usize) -> Result<Command, Refusal> {
    let Some(cmd) = Command::from_number(h.command) else {
        return Err(refuse(
            libc::ENOTSUP,
            format!("command {} is not implemented by this device", h.command),
        ));
    };
    if h.flags & !FLAGS_KNOWN != 0 || h.flags & (0xF | FLAG_ERROR) != 0 {
        return Err(refuse(
            libc::EINVAL,
            format!(
                "{cmd:?} with flags {:#x}: a client sends only commands",
                h.flags
            ),
        ));
    }
    if h.flags & FLAG_NO_REPLY != 0 && cmd.needs_reply() {
        return Err(refuse(
            libc::EINVAL,
            format!("{cmd:?} asks for no reply, but its reply is its answer"),
        ));
    }
    let fixed = cmd.fixed();
    if body.len() < fixed {
        return Err(refuse(
            libc::EINVAL,
            format!(
                "{cmd:?} needs {fixed} bytes after the header, not {}",
                body.len()
            ),
        ));
    }
    let exact = |expected: usize| -> Result<(), Refusal> {
        if body.len() == expected {
            Ok(())
        } else {
            Err(refuse(
                libc::EINVAL,
                format!(
                    "{cmd:?} carries {} bytes after the header where {expected} belong",
                    body.len()
                ),
            ))
        }
    };
    let max_fds = match cmd {
        Command::DmaMap => 1,
        Command::SetIrqs => MAX_FDS,
        _ => 0,
    };
    if fds > max_fds {
        return Err(refuse(
            libc::EINVAL,
            format!("{cmd:?} carries {fds} file descriptors (at most {max_fds})"),
        ));
    }
    match cmd {
        Command::Version => version(&body[fixed..])?,
        Command::DmaMap => {
            exact(fixed)?;
            dma_map(body, fds)?;
        }
        Command::DmaUnmap | Command::DeviceGetInfo | Command::DeviceReset => exact(fixed)?,
        Command::DeviceGetRegionInfo => {
            exact(fixed)?;
            // vfio_region_info: argsz, flags, index, …
            index(u32_at(body, 8), VFIO_PCI_NUM_REGIONS, "region")?;
        }
        Command::GetIrqInfo => {
            exact(fixed)?;
            // argsz, flags, index, count
            index(u32_at(body, 8), VFIO_PCI_NUM_IRQS, "interrupt index")?;
        }
        Command::SetIrqs => {
            exact(fixed)?;
            set_irqs(body, fds)?;
        }
        Command::RegionRead | Command::RegionWrite => {
            // offset u64, region u32, count u32
            let (region, count) = (u32_at(body, 8), u32_at(body, 12));
            index(region, VFIO_PCI_NUM_REGIONS, "region")?;
            if count == 0 || count > MAX_ACCESS {
                return Err(refuse(
                    libc::EINVAL,
                    format!("a region access of {count} bytes (1 to {MAX_ACCESS})"),
                ));
            }
            if u64_at(body, 0).checked_add(count as u64).is_none() {
                return Err(refuse(
                    libc::EINVAL,
                    "a region access past the end of memory",
                ));
            }
            let data = if cmd == Command::RegionWrite {
                count as usize
            } else {
                0
            };
            exact(fixed + data)?;
        }
    }
    Ok(cmd)
}

fn index(i: u32, count: u32, what: &str) -> Result<(), Refusal> {
    if i < count {
        Ok(())
    } else {
        Err(refuse(
            libc::EINVAL,
            format!("{what} {i} does not exist (the device has {count})"),
        ))
    }
}

/// The capabilities string: NUL-terminated UTF-8 JSON, one NUL, bounded.
fn version(s: &[u8]) -> Result<(), Refusal> {
    if s.is_empty() || s.len() > MAX_VERSION_JSON {
        return Err(refuse(
            libc::EINVAL,
            format!(
                "a VERSION capabilities string of {} bytes (1 to {MAX_VERSION_JSON})",
                s.len()
            ),
        ));
    }
    let Some((&0, text)) = s.split_last() else {
        return Err(refuse(
            libc::EINVAL,
            "the VERSION capabilities string lacks its NUL terminator",
        ));
    };
    if text.contains(&0) {
        return Err(refuse(
            libc::EINVAL,
            "the VERSION capabilities string holds a NUL before its end",
        ));
    }
    let json = std::str::from_utf8(text)
        .map_err(|_| refuse(libc::EINVAL, "the VERSION capabilities string is not UTF-8"))?;
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(refuse(
            libc::EINVAL,
            "the VERSION capabilities string is not a JSON object",
        )),
    }
}

/// argsz, flags, offset, address, size.
fn dma_map(body: &[u8], fds: usize) -> Result<(), Refusal> {
    let flags = u32_at(body, 4);
    let (address, size) = (u64_at(body, 16), u64_at(body, 24));
    if flags & !3 != 0 {
        return Err(refuse(
            libc::EINVAL,
            format!("DMA_MAP flags {flags:#x} (only read and write exist)"),
        ));
    }
    if fds != 1 {
        return Err(refuse(
            libc::EINVAL,
            "DMA_MAP without a file descriptor: this device reaches client memory only through one",
        ));
    }
    if size == 0 || address.checked_add(size).is_none() {
        return Err(refuse(
            libc::EINVAL,
            format!("DMA_MAP of {size} bytes at {address:#x}"),
        ));
    }
    Ok(())
}

/// argsz, flags, index, start, count.
fn set_irqs(body: &[u8], fds: usize) -> Result<(), Refusal> {
    let (flags, index_, start, count) = (
        u32_at(body, 4),
        u32_at(body, 8),
        u32_at(body, 12),
        u32_at(body, 16),
    );
    index(index_, VFIO_PCI_NUM_IRQS, "interrupt index")?;
    let data =
        flags & (VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD);
    let action = flags
        & (VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER);
    if data.count_ones() != 1 || action.count_ones() != 1 || flags & !(data | action) != 0 {
        return Err(refuse(
            libc::EINVAL,
            format!("SET_IRQS flags {flags:#x}: one data type and one action"),
        ));
    }
    if index_ == VFIO_PCI_MSIX_IRQ_INDEX {
        let vectors = MAX_FDS as u64;
        if start as u64 + count as u64 > vectors {
            return Err(refuse(
                libc::EINVAL,
                format!("SET_IRQS for vectors {start}+{count} (the device has {vectors})"),
            ));
        }
    }
    let want = if data == VFIO_IRQ_SET_DATA_EVENTFD {
        count as usize
    } else {
        0
    };
    if fds != want {
        return Err(refuse(
            libc::EINVAL,
            format!("SET_IRQS for {count} vectors carries {fds} file descriptors, not {want}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(command: u16, body: usize) -> Header {
        Header {
            id: 7,
            command,
            size: (HEADER_BYTES + body) as u32,
            flags: 0,
            error: 0,
        }
    }

    fn version_body(json: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0];
        b.extend_from_slice(json);
        b
    }

    #[test]
    fn headers_round_trip_and_frame() {
        let h = Header {
            id: 0xBEEF,
            command: 9,
            size: 48,
            flags: 0x10,
            error: 5,
        };
        assert_eq!(Header::decode(&h.encode()), h);
        assert_eq!(h.body_len(), Ok(32));
        assert!(header(1, 0).body_len().is_ok());
        let short = Header { size: 3, ..h };
        assert!(short.body_len().unwrap_err().0.contains("shorter"));
        let huge = Header {
            size: u32::MAX,
            ..h
        };
        assert!(huge.body_len().unwrap_err().0.contains("longer"));
        let r = h.error_reply(libc::EINVAL);
        assert_eq!((r.id, r.command, r.size), (0xBEEF, 9, 16));
        assert_eq!(r.error, libc::EINVAL as u32);
    }

    #[test]
    fn version_strings_must_be_terminated_json_objects() {
        let ok = version_body(b"{\"capabilities\":{}}\0");
        assert_eq!(check(&header(1, ok.len()), &ok, 0), Ok(Command::Version));
        for (bad, why) in [
            (version_body(b"{\"capabilities\":{}}"), "NUL terminator"),
            (version_body(b"{}\0{}\0"), "NUL before"),
            (version_body(b"\xff\xfe\0"), "UTF-8"),
            (version_body(b"[1]\0"), "JSON object"),
            (version_body(b""), "string of 0 bytes"),
            (vec![0, 0], "needs 4 bytes"),
        ] {
            let e = check(&header(1, bad.len()), &bad, 0).unwrap_err();
            assert!(e.why.contains(why), "{why}: {e:?}");
        }
        let mut no_reply = header(1, ok.len());
        no_reply.flags = FLAG_NO_REPLY;
        assert!(check(&no_reply, &ok, 0).is_err());
    }

    #[test]
    fn sizes_counts_and_descriptors_are_exact() {
        // A region read of 4 bytes of BAR0 passes; every field out of range does not.
        let access = |region: u32, count: u32, extra: usize| {
            let mut b = vec![0u8; 16 + extra];
            b[8..12].copy_from_slice(&region.to_le_bytes());
            b[12..16].copy_from_slice(&count.to_le_bytes());
            b
        };
        let b = access(0, 4, 0);
        assert_eq!(check(&header(9, 16), &b, 0), Ok(Command::RegionRead));
        assert!(check(&header(9, 16), &access(9, 4, 0), 0).is_err());
        assert!(check(&header(9, 16), &access(0, 0, 0), 0).is_err());
        assert!(check(&header(9, 16), &access(0, u32::MAX, 0), 0).is_err());
        assert!(check(&header(9, 20), &access(0, 4, 4), 0).is_err());
        assert_eq!(
            check(&header(10, 20), &access(0, 4, 4), 0),
            Ok(Command::RegionWrite)
        );
        assert!(check(&header(10, 16), &access(0, 4, 0), 0).is_err());
        assert!(check(&header(9, 16), &b, 1).is_err(), "a stray descriptor");
        let mut past = access(7, 8, 0);
        past[0..8].copy_from_slice(&(u64::MAX - 2).to_le_bytes());
        assert!(check(&header(9, 16), &past, 0).is_err());
        // Commands the device does not implement, and replies sent as commands.
        for c in [0u16, 6, 11, 12, 14, 99] {
            assert_eq!(
                check(&header(c, 0), &[], 0).unwrap_err().errno,
                libc::ENOTSUP
            );
        }
        let mut reply = header(13, 0);
        reply.flags = FLAG_REPLY;
        assert!(check(&reply, &[], 0).is_err());
        assert_eq!(check(&header(13, 0), &[], 0), Ok(Command::DeviceReset));
    }

    #[test]
    fn dma_maps_and_interrupts_are_bounded() {
        let map = |flags: u32, address: u64, size: u64| {
            let mut b = vec![0u8; 32];
            b[0..4].copy_from_slice(&32u32.to_le_bytes());
            b[4..8].copy_from_slice(&flags.to_le_bytes());
            b[16..24].copy_from_slice(&address.to_le_bytes());
            b[24..32].copy_from_slice(&size.to_le_bytes());
            b
        };
        assert_eq!(
            check(&header(2, 32), &map(3, 0x1000, 4096), 1),
            Ok(Command::DmaMap)
        );
        assert!(check(&header(2, 32), &map(3, 0x1000, 4096), 0).is_err());
        assert!(check(&header(2, 32), &map(3, 0x1000, 4096), 2).is_err());
        assert!(check(&header(2, 32), &map(4, 0x1000, 4096), 1).is_err());
        assert!(check(&header(2, 32), &map(3, 0x1000, 0), 1).is_err());
        assert!(check(&header(2, 32), &map(3, u64::MAX, 2), 1).is_err());
        let irqs = |flags: u32, index: u32, start: u32, count: u32| {
            let mut b = vec![0u8; 20];
            for (i, v) in [20, flags, index, start, count].into_iter().enumerate() {
                b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
            }
            b
        };
        let trigger = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
        let msix = VFIO_PCI_MSIX_IRQ_INDEX;
        assert_eq!(
            check(&header(8, 20), &irqs(trigger, msix, 0, 2), 2),
            Ok(Command::SetIrqs)
        );
        assert!(check(&header(8, 20), &irqs(trigger, msix, 0, 2), 1).is_err());
        assert!(check(&header(8, 20), &irqs(trigger, msix, 1, u32::MAX), 0).is_err());
        assert!(check(&header(8, 20), &irqs(trigger, 9, 0, 0), 0).is_err());
        assert!(check(&header(8, 20), &irqs(trigger | 1, msix, 0, 0), 0).is_err());
        let none = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
        assert!(check(&header(8, 20), &irqs(none, msix, 0, 0), 0).is_ok());
    }
}
