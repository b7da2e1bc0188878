//! The queue driver: commands through the submission ring, completions back through the
//! completion ring, as `docs/registers.md` and `docs/driver.md` describe.

use etch_firmware::descriptor::{
    flags, reason, Command, Completion, Opcode, COMMAND_BYTES, COMPLETION_BYTES, IDENTIFY_BYTES,
    MAX_STOP_TOKENS,
};
use etch_firmware::{regs, Status};

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::device::{Device, DmaBuffer, Event};
use crate::error::{DriverError, Result};

/// Entries of each ring.
const RING: u32 = 64;
/// Interrupt vectors the driver waits for: completion and fault.
const IRQS: u32 = 0b11;
/// An unwritten token or score record.
const EMPTY: u64 = u64::MAX;

/// What the host expects of the chip (from the build manifest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// MODEL_ID0..7.
    pub model_identity: [u32; 8],
    /// ROM self-test signature.
    pub rom_signature: u64,
    /// FW_HASH0..7.
    pub firmware_hash: [u32; 8],
}

/// The chip's shapes, from its configuration registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChipInfo {
    /// MAC lanes.
    pub lanes: u32,
    /// Context slots.
    pub contexts: u32,
    /// Positions per context.
    pub max_seq: u32,
    /// Vocabulary.
    pub vocab_size: u32,
    /// Residual width.
    pub dim: u32,
    /// Layers.
    pub n_layers: u32,
    /// Firmware version.
    pub firmware_version: u32,
}

/// Sampling settings of a GENERATE command (already in the chip's fixed point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// `round(256 / temperature)`, 0 for greedy.
    pub inv_temp: u16,
    /// `round(top_p · 65536)`, 0 for no nucleus.
    pub topp: u16,
    /// Initial RNG state.
    pub seed: u64,
}

/// What a GENERATE produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generated {
    /// The sampled tokens, in order (a stop token is included, last).
    pub tokens: Vec<u32>,
    /// The low word of the chip's cycle counter when each token's record was written.
    pub stamps: Vec<u32>,
    /// Why it stopped (`descriptor::reason`).
    pub reason: u8,
    /// The logits of every forward pass (debug mode only).
    pub logits: Vec<Vec<i16>>,
}

/// How long a command may go without progress before the driver gives up on it,
/// resets the device and reports a timeout. Progress is a completion or, while a
/// GENERATE streams, a new token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// A number of [`Device::wait`] slices (simulated time for an in-process chip).
    Slices(u64),
    /// Wall-clock time (a chip in another process or on a board).
    Wall(Duration),
}

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Timeout::Slices(n) => write!(f, "{n} wait slices"),
            Timeout::Wall(d) => write!(f, "{:.1} s", d.as_secs_f64()),
        }
    }
}

/// How the driver learns that a command completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completions {
    /// Sleep until the completion interrupt (MSI-X vector 0) fires.
    Interrupt,
    /// Look at the completion ring after every wait slice, ignoring interrupts.
    Polled,
}

/// The queue state, behind the chip's lock.
struct Queue<D: Device> {
    dev: D,
    sq: DmaBuffer,
    cq: DmaBuffer,
    sq_tail: u32,
    cq_head: u32,
    phase: bool,
    next_id: u32,
    /// Commands submitted whose completion has not been read from the ring.
    in_flight: u32,
    /// Completions read from the ring that their submitter has not picked up yet.
    done: HashMap<u32, Completion>,
    /// Incremented by every reset: commands submitted before it are lost.
    epoch: u64,
    timeout: Timeout,
    completions: Completions,
}

/// A chip, driven through its queues.
///
/// Every method takes `&self`: several threads may drive one chip at once, each with
/// its own context. Their commands queue in the submission ring (the chip runs them in
/// order); each thread waits for its own completion, and whichever thread is waiting
/// moves every completion it finds to the thread that submitted it. Token callbacks run
/// without the lock held.
pub struct Chip<D: Device> {
    queue: Mutex<Queue<D>>,
    /// Threads waiting for `queue`: a thread that just released it steps aside for them.
    waiters: AtomicUsize,
    info: ChipInfo,
}

fn le32(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

fn opcode_name(op: u8) -> &'static str {
    match Opcode::from_u8(op) {
        Some(Opcode::Identify) => "IDENTIFY",
        Some(Opcode::CreateContext) => "CREATE_CONTEXT",
        Some(Opcode::DestroyContext) => "DESTROY_CONTEXT",
        Some(Opcode::Prefill) => "PREFILL",
        Some(Opcode::Generate) => "GENERATE",
        Some(Opcode::Score) => "SCORE",
        Some(Opcode::SaveContext) => "SAVE_CONTEXT",
        Some(Opcode::RestoreContext) => "RESTORE_CONTEXT",
        Some(Opcode::Abort) => "ABORT",
        Some(Opcode::Reset) => "RESET",
        None => "an unknown command",
    }
}

/// Waits until the chip reports READY (after power-on or a reset).
fn wait_ready<D: Device>(dev: &mut D, timeout: Timeout) -> Result<()> {
    let start = Instant::now();
    let mut slices = 0u64;
    while dev.read_reg(regs::STATUS)? & regs::status::READY == 0 {
        dev.wait(0)?;
        slices += 1;
        let late = match timeout {
            Timeout::Slices(n) => slices > n.max(1000),
            Timeout::Wall(d) => start.elapsed() > d,
        };
        if late {
            return Err(DriverError::NotReady(slices));
        }
    }
    Ok(())
}

impl<D: Device> Queue<D> {
    fn program_rings(&mut self) -> Result<()> {
        let d = &mut self.dev;
        d.write_reg(regs::SQ_BASE_LO, self.sq.iova as u32)?;
        d.write_reg(regs::SQ_BASE_HI, (self.sq.iova >> 32) as u32)?;
        d.write_reg(regs::SQ_SIZE, RING)?;
        d.write_reg(regs::CQ_BASE_LO, self.cq.iova as u32)?;
        d.write_reg(regs::CQ_BASE_HI, (self.cq.iova >> 32) as u32)?;
        d.write_reg(regs::CQ_SIZE, RING)?;
        d.write_reg(regs::IRQ_MASK, IRQS)?;
        Ok(())
    }

    /// Moves every new completion from the ring to `done`.
    fn drain(&mut self) -> Result<bool> {
        let mut any = false;
        loop {
            let mut b = [0u8; COMPLETION_BYTES];
            let at = self.cq_head as usize * COMPLETION_BYTES;
            self.dev.dma_read(&self.cq, at, &mut b)?;
            let c = Completion::from_bytes(&b);
            if c.phase != self.phase {
                break;
            }
            self.cq_head += 1;
            if self.cq_head == RING {
                self.cq_head = 0;
                self.phase = !self.phase;
            }
            self.in_flight = self.in_flight.saturating_sub(1);
            self.done.insert(c.id, c);
            any = true;
        }
        if any {
            self.dev.write_reg(regs::CQ_HEAD, self.cq_head)?;
        }
        Ok(any)
    }

    fn wait_mask(&self) -> u32 {
        match self.completions {
            Completions::Interrupt => IRQS,
            Completions::Polled => 0,
        }
    }

    /// Resets the device and sets the rings up again; every queued command is lost.
    fn recover(&mut self) -> Result<()> {
        self.epoch += 1;
        self.in_flight = 0;
        self.done.clear();
        self.sq_tail = 0;
        self.cq_head = 0;
        self.phase = true;
        self.dev.reset()?;
        wait_ready(&mut self.dev, self.timeout)?;
        let zeros = vec![0u8; RING as usize * COMPLETION_BYTES];
        self.dev.dma_write(&self.cq, 0, &zeros)?;
        self.program_rings()
    }
}

impl<D: Device> Chip<D> {
    /// Opens a chip: waits for it to boot, checks that it is an etch chip running the
    /// expected model and firmware, and sets up the rings.
    pub fn open(dev: D, expected: Option<&Expected>) -> Result<Self> {
        Self::open_with(dev, expected, Timeout::Slices(2000))
    }

    /// [`Chip::open`] with a timeout for booting and for every command.
    pub fn open_with(mut dev: D, expected: Option<&Expected>, timeout: Timeout) -> Result<Self> {
        let id = dev.read_reg(regs::ID)?;
        if id != regs::ID_MAGIC {
            return Err(DriverError::NotEtch(id));
        }
        // Boot: the ROM self-test runs first.
        wait_ready(&mut dev, timeout)?;
        if let Some(e) = expected {
            let mut chip_id = [0u32; 8];
            let mut fw = [0u32; 8];
            for k in 0..8u16 {
                chip_id[k as usize] = dev.read_reg(regs::MODEL_ID0 + k)?;
                fw[k as usize] = dev.read_reg(regs::FW_HASH0 + k)?;
            }
            let hex = |w: &[u32; 8]| w.iter().map(|x| format!("{x:08x}")).collect::<String>();
            if chip_id != e.model_identity {
                return Err(DriverError::IdentityMismatch {
                    chip: hex(&chip_id),
                    manifest: hex(&e.model_identity),
                });
            }
            if fw != e.firmware_hash {
                return Err(DriverError::FirmwareMismatch);
            }
            let sig = dev.read_reg(regs::ROM_SIG_LO)? as u64
                | (dev.read_reg(regs::ROM_SIG_HI)? as u64) << 32;
            if sig != e.rom_signature {
                return Err(DriverError::RomSignature {
                    chip: sig,
                    manifest: e.rom_signature,
                });
            }
        }
        let c0 = dev.read_reg(regs::CONFIG0)?;
        let c1 = dev.read_reg(regs::CONFIG1)?;
        let c2 = dev.read_reg(regs::CONFIG2)?;
        let info = ChipInfo {
            lanes: c0 & 0xFFFF,
            contexts: c0 >> 16,
            max_seq: c1 & 0xFFFF,
            vocab_size: c1 >> 16,
            dim: c2 & 0xFFFF,
            n_layers: c2 >> 16,
            firmware_version: dev.read_reg(regs::FW_VERSION)?,
        };
        let sq = dev.dma_alloc(RING as usize * COMMAND_BYTES)?;
        let cq = dev.dma_alloc(RING as usize * COMPLETION_BYTES)?;
        let mut queue = Queue {
            dev,
            sq,
            cq,
            sq_tail: 0,
            cq_head: 0,
            phase: true,
            next_id: 1,
            in_flight: 0,
            done: HashMap::new(),
            epoch: 0,
            timeout,
            completions: Completions::Interrupt,
        };
        queue.program_rings()?;
        Ok(Chip {
            queue: Mutex::new(queue),
            waiters: AtomicUsize::new(0),
            info,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue<D>> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let g = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        g
    }

    /// Lets threads waiting for the lock take it before this one takes it again.
    fn step_aside(&self) {
        for _ in 0..64 {
            if self.waiters.load(Ordering::SeqCst) == 0 {
                return;
            }
            std::thread::yield_now();
        }
    }

    /// The chip's shapes.
    pub fn info(&self) -> ChipInfo {
        self.info
    }

    /// Runs `f` on the device underneath (with the queue locked).
    pub fn with_device<R>(&self, f: impl FnOnce(&mut D) -> R) -> R {
        f(&mut self.lock().dev)
    }

    /// Takes the device back.
    pub fn into_device(self) -> D {
        self.queue
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .dev
    }

    /// How long a command may go without progress (see [`Timeout`]).
    pub fn set_timeout(&self, timeout: Timeout) {
        self.lock().timeout = timeout;
    }

    /// How long a command may take, in wait slices.
    pub fn set_timeout_slices(&self, slices: u64) {
        self.set_timeout(Timeout::Slices(slices.max(1)));
    }

    /// Interrupt-driven (the default) or polled completion.
    pub fn set_completions(&self, mode: Completions) {
        self.lock().completions = mode;
    }

    /// The chip's cycle counter.
    pub fn cycles(&self) -> Result<u64> {
        let mut q = self.lock();
        let lo = q.dev.read_reg(regs::CYCLE_LO)? as u64;
        let hi = q.dev.read_reg(regs::CYCLE_HI)? as u64;
        Ok(hi << 32 | lo)
    }

    /// The performance counters (`regs::PERF`): cycles by phase since reset.
    pub fn perf(&self) -> Result<[u32; 9]> {
        let mut q = self.lock();
        let mut out = [0u32; 9];
        for (o, (_, reg)) in out.iter_mut().zip(regs::PERF) {
            *o = q.dev.read_reg(reg)?;
        }
        Ok(out)
    }

    /// Forward passes the chip has run since reset.
    pub fn tokens_processed(&self) -> Result<u32> {
        self.lock().dev.read_reg(regs::TOKENS)
    }

    /// Asks the running command to stop after its current token (CONTROL.ABORT: a
    /// register, because an ABORT descriptor would queue behind the command it aborts).
    pub fn abort(&self) -> Result<()> {
        let mut q = self.lock();
        let c = q.dev.read_reg(regs::CONTROL)?;
        q.dev.write_reg(regs::CONTROL, c | regs::control::ABORT)
    }

    /// Submits a raw command and waits for its completion. `progress` runs with the
    /// device after every wait slice (under the lock; it says whether it saw progress,
    /// which restarts the timeout); `unlocked` runs after it without the lock. The
    /// completion's status is not checked.
    pub fn submit_raw(
        &self,
        mut cmd: Command,
        progress: &mut dyn FnMut(&mut D) -> Result<bool>,
        unlocked: &mut dyn FnMut(),
    ) -> Result<Completion> {
        let what = opcode_name(cmd.opcode);
        let (id, epoch) = {
            let mut q = self.lock();
            while q.in_flight >= RING - 1 {
                // The ring is full of other threads' commands: help them along.
                q.drain()?;
                if q.in_flight >= RING - 1 {
                    let mask = q.wait_mask();
                    q.dev.wait(mask)?;
                }
            }
            if cmd.id == 0 {
                cmd.id = q.next_id;
                q.next_id = q.next_id.wrapping_add(1).max(1);
            }
            let at = q.sq_tail as usize * COMMAND_BYTES;
            let sq = q.sq;
            q.dev.dma_write(&sq, at, &cmd.to_bytes())?;
            q.sq_tail = (q.sq_tail + 1) % RING;
            q.in_flight += 1;
            let tail = q.sq_tail;
            q.dev.write_reg(regs::SQ_TAIL, tail)?;
            (cmd.id, q.epoch)
        };
        let mut last_progress = Instant::now();
        let mut slices = 0u64;
        loop {
            let mut q = self.lock();
            if q.epoch != epoch {
                return Err(DriverError::Lost(what.to_string()));
            }
            let mut moved = q.drain()?;
            if let Some(c) = q.done.remove(&id) {
                progress(&mut q.dev)?;
                drop(q);
                unlocked();
                return Ok(c);
            }
            let mask = q.wait_mask();
            let event = q.dev.wait(mask)?;
            moved |= progress(&mut q.dev)?;
            if let Event::Interrupt(v) = event {
                if v & (1 << regs::irq::FAULT) != 0 {
                    return Err(DriverError::Fault);
                }
            }
            if moved {
                slices = 0;
                last_progress = Instant::now();
            } else {
                slices += 1;
            }
            let late = match q.timeout {
                Timeout::Slices(n) => slices > n,
                Timeout::Wall(d) => last_progress.elapsed() > d,
            };
            if late {
                let budget = q.timeout.to_string();
                let after = match q.recover() {
                    Ok(()) => "the device was reset".to_string(),
                    Err(e) => format!("resetting the device failed too: {e}"),
                };
                return Err(DriverError::Timeout {
                    what: what.to_string(),
                    budget,
                    after,
                });
            }
            drop(q);
            unlocked();
            self.step_aside();
        }
    }

    /// Resets the device and sets the rings up again; commands in flight are lost.
    pub fn recover(&self) -> Result<()> {
        self.lock().recover()
    }

    /// Submits a command and turns an error status into an error.
    pub fn submit(&self, cmd: Command) -> Result<Completion> {
        let c = self.submit_raw(cmd, &mut |_| Ok(false), &mut || {})?;
        check(&cmd, &c)?;
        Ok(c)
    }

    fn alloc(&self, len: usize) -> Result<DmaBuffer> {
        self.lock().dev.dma_alloc(len)
    }

    fn free(&self, buf: DmaBuffer) -> Result<()> {
        self.lock().dev.dma_free(buf)
    }

    fn read(&self, buf: &DmaBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        self.lock().dev.dma_read(buf, offset, out)
    }

    fn write(&self, buf: &DmaBuffer, offset: usize, data: &[u8]) -> Result<()> {
        self.lock().dev.dma_write(buf, offset, data)
    }

    /// IDENTIFY: the 32-word identity block.
    pub fn identify(&self) -> Result<[u32; 32]> {
        let buf = self.alloc(IDENTIFY_BYTES)?;
        let r = self.submit(Command {
            opcode: Opcode::Identify as u8,
            addr_a: buf.iova,
            ..Command::default()
        });
        let mut b = [0u8; IDENTIFY_BYTES];
        let read = self.read(&buf, 0, &mut b);
        self.free(buf)?;
        r?;
        read?;
        let mut out = [0u32; 32];
        for (k, o) in out.iter_mut().enumerate() {
            *o = le32(&b, k);
        }
        Ok(out)
    }

    /// CREATE_CONTEXT.
    pub fn create_context(&self, context: u8) -> Result<()> {
        self.submit(Command {
            opcode: Opcode::CreateContext as u8,
            context,
            ..Command::default()
        })
        .map(|_| ())
    }

    /// DESTROY_CONTEXT.
    pub fn destroy_context(&self, context: u8) -> Result<()> {
        self.submit(Command {
            opcode: Opcode::DestroyContext as u8,
            context,
            ..Command::default()
        })
        .map(|_| ())
    }

    /// RESET: every context freed.
    pub fn reset_contexts(&self) -> Result<()> {
        self.submit(Command {
            opcode: Opcode::Reset as u8,
            ..Command::default()
        })
        .map(|_| ())
    }

    fn token_buffer(&self, tokens: &[u32]) -> Result<DmaBuffer> {
        let buf = self.alloc((tokens.len() * 4).next_multiple_of(8).max(8))?;
        let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
        self.write(&buf, 0, &bytes)?;
        Ok(buf)
    }

    fn logit_bytes(&self) -> usize {
        (self.info.vocab_size as usize).div_ceil(4) * 8
    }

    fn read_logits(&self, buf: &DmaBuffer, steps: usize) -> Result<Vec<Vec<i16>>> {
        let per = self.logit_bytes();
        let mut out = Vec::with_capacity(steps);
        for s in 0..steps {
            let mut b = vec![0u8; per];
            self.read(buf, s * per, &mut b)?;
            out.push(
                b.chunks_exact(2)
                    .take(self.info.vocab_size as usize)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            );
        }
        Ok(out)
    }

    /// PREFILL: feeds `tokens` at the context's next positions. With `logits`, returns
    /// the logits of every step.
    pub fn prefill(&self, context: u8, tokens: &[u32], logits: bool) -> Result<Vec<Vec<i16>>> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        if logits {
            self.prefill_flagged(context, tokens, flags::DEBUG_LOGITS, tokens.len())
        } else {
            self.prefill_flagged(context, tokens, 0, 0)
        }
    }

    /// PREFILL with LAST_LOGITS: feeds `tokens` at the context's next positions and
    /// returns the logits after the last one; the chip runs its classifier for that
    /// token only.
    pub fn prefill_last(&self, context: u8, tokens: &[u32]) -> Result<Vec<i16>> {
        if tokens.is_empty() {
            return Err(DriverError::InvalidArgument(
                "a PREFILL for logits needs at least one token".into(),
            ));
        }
        self.prefill_flagged(context, tokens, flags::LAST_LOGITS, 1)?
            .pop()
            .ok_or_else(|| DriverError::Dma("the chip wrote no logits for the PREFILL".into()))
    }

    /// One PREFILL of `tokens` with `flags`, reading back `steps` rows of logits.
    fn prefill_flagged(
        &self,
        context: u8,
        tokens: &[u32],
        flags: u8,
        steps: usize,
    ) -> Result<Vec<Vec<i16>>> {
        let tb = self.token_buffer(tokens)?;
        let lb = self.alloc((self.logit_bytes() * steps).max(8))?;
        let cmd = Command {
            opcode: Opcode::Prefill as u8,
            flags,
            context,
            addr_a: tb.iova,
            count: tokens.len() as u32,
            addr_b: lb.iova,
            ..Command::default()
        };
        let r = self.submit(cmd);
        let out = if steps > 0 && r.is_ok() {
            self.read_logits(&lb, steps)
        } else {
            Ok(Vec::new())
        };
        self.free(tb)?;
        self.free(lb)?;
        r?;
        out
    }

    /// GENERATE: feeds `token`, then samples and feeds back up to `count` tokens,
    /// calling `on_token` for each as it streams in (without the chip's lock held).
    /// Stops early at a stop token (which is included) or when the context is full (not
    /// an error: `reason` says so).
    #[allow(clippy::too_many_arguments)]
    pub fn generate(
        &self,
        context: u8,
        token: u32,
        count: u32,
        sampling: Sampling,
        stop: &[u32],
        logits: bool,
        on_token: &mut dyn FnMut(u32),
    ) -> Result<Generated> {
        if stop.len() > MAX_STOP_TOKENS || stop.iter().any(|&t| t > u16::MAX as u32) {
            return Err(DriverError::InvalidArgument(format!(
                "at most {MAX_STOP_TOKENS} stop tokens below 65536"
            )));
        }
        let out = self.alloc((count as usize * 8).max(8))?;
        self.write(&out, 0, &vec![0xFF; (count as usize * 8).max(8)])?;
        let lb = self.alloc(if logits {
            self.logit_bytes() * count as usize
        } else {
            8
        })?;
        let mut stops = [0u16; MAX_STOP_TOKENS];
        for (s, &t) in stops.iter_mut().zip(stop) {
            *s = t as u16;
        }
        let cmd = Command {
            opcode: Opcode::Generate as u8,
            flags: if logits { flags::DEBUG_LOGITS } else { 0 },
            context,
            addr_a: out.iova,
            count,
            token,
            inv_temp: sampling.inv_temp,
            topp: sampling.topp,
            seed: sampling.seed,
            addr_b: lb.iova,
            stop: stops,
            stop_count: stop.len() as u8,
            ..Command::default()
        };
        // Records read under the lock; handed to `on_token` after it is released.
        let records: RefCell<Vec<u64>> = RefCell::new(Vec::new());
        let mut emitted = 0usize;
        let mut stream = |dev: &mut D| -> Result<bool> {
            let mut recs = records.borrow_mut();
            let before = recs.len();
            while recs.len() < count as usize {
                let mut rec = [0u8; 8];
                dev.dma_read(&out, recs.len() * 8, &mut rec)?;
                let v = u64::from_le_bytes(rec);
                if v == EMPTY {
                    break;
                }
                recs.push(v);
            }
            Ok(recs.len() > before)
        };
        let mut deliver = || {
            let recs = records.borrow();
            for &v in &recs[emitted..] {
                on_token(v as u32);
            }
            emitted = recs.len();
        };
        let r = self.submit_raw(cmd, &mut stream, &mut deliver);
        let records = records.into_inner();
        let result = match r {
            Ok(c) => {
                let full = c.status == Status::ContextFull as u16;
                if full || c.status == Status::Ok as u16 {
                    let logits = if logits {
                        self.read_logits(&lb, c.result as usize)
                    } else {
                        Ok(Vec::new())
                    };
                    logits.map(|logits| Generated {
                        tokens: records.iter().map(|&v| v as u32).collect(),
                        stamps: records.iter().map(|&v| (v >> 32) as u32).collect(),
                        reason: if full { reason::CONTEXT_FULL } else { c.reason },
                        logits,
                    })
                } else {
                    check(&cmd, &c).map(|_| Generated::default())
                }
            }
            Err(e) => Err(e),
        };
        self.free(out)?;
        self.free(lb)?;
        result
    }

    /// SCORE: feeds `tokens`; returns the log-probability (Q10 log2 units) the chip
    /// gives each token after the first.
    pub fn score(&self, context: u8, tokens: &[u32]) -> Result<Vec<i32>> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let tb = self.token_buffer(tokens)?;
        let n = tokens.len() - 1;
        let ob = self.alloc((n * 8).max(8))?;
        let r = self.submit(Command {
            opcode: Opcode::Score as u8,
            context,
            addr_a: tb.iova,
            count: tokens.len() as u32,
            addr_b: ob.iova,
            ..Command::default()
        });
        let mut b = vec![0u8; n * 8];
        let read = self.read(&ob, 0, &mut b);
        self.free(tb)?;
        self.free(ob)?;
        r?;
        read?;
        Ok(b.chunks_exact(8).map(|c| le32(c, 0) as i32).collect())
    }

    /// Bytes of a saved context at `positions`.
    pub fn save_bytes(&self, positions: usize, kv_row_bytes: usize) -> usize {
        64 + positions * 2 * self.info.n_layers as usize * kv_row_bytes
    }

    /// SAVE_CONTEXT into a buffer of `capacity` bytes; returns the image.
    pub fn save_context(&self, context: u8, capacity: usize) -> Result<Vec<u8>> {
        let buf = self.alloc(capacity.max(64))?;
        let r = self.submit(Command {
            opcode: Opcode::SaveContext as u8,
            context,
            addr_a: buf.iova,
            ..Command::default()
        });
        let out = match &r {
            Ok(c) => {
                let mut b = vec![0u8; c.result as usize];
                self.read(&buf, 0, &mut b).map(|_| b)
            }
            Err(_) => Ok(Vec::new()),
        };
        self.free(buf)?;
        r?;
        out
    }

    /// RESTORE_CONTEXT from an image written by [`Chip::save_context`].
    pub fn restore_context(&self, context: u8, image: &[u8]) -> Result<u32> {
        let buf = self.alloc(image.len().next_multiple_of(8).max(64))?;
        self.write(&buf, 0, image)?;
        let r = self.submit(Command {
            opcode: Opcode::RestoreContext as u8,
            context,
            addr_a: buf.iova,
            ..Command::default()
        });
        self.free(buf)?;
        Ok(r?.position)
    }
}

fn check(cmd: &Command, c: &Completion) -> Result<()> {
    if c.status == Status::Ok as u16 {
        return Ok(());
    }
    Err(DriverError::Command {
        what: opcode_name(cmd.opcode).to_string(),
        status: c.status,
        status_text: Status::from_u16(c.status).map_or("unknown status", Status::describe),
        result: c.result,
    })
}
