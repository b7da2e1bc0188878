//! The engine: a chip opened through the driver with its manifest and tokenizer, and
//! the contexts of agents managed on it.
//!
//! A context is an agent's working memory: the tokens it has seen, whose keys and
//! values live in one of the chip's KV slots while the context is in use. There are
//! usually more contexts than slots. When a context needs a slot and none is free, the
//! least recently used resident context is saved (SAVE_CONTEXT) into host memory —
//! and, with a state directory, to disk — and its slot is reused; when that context is
//! used again, its image is restored (RESTORE_CONTEXT) into whichever slot is free.
//! Eviction and restore are invisible in the tokens: the chip's arithmetic on restored
//! keys and values is the arithmetic on the original ones. Contexts persisted to disk
//! survive a process restart, and a damaged file is reported without touching the
//! others. A context that would outgrow the model's sequence is compacted: its system
//! prompt, a summary the model writes of what came before, and the most recent window
//! are kept. Every creation, eviction, restore, compaction and persist is an event.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use etch_contract::Manifest;
use etch_contract::{Generation, SamplingParams, Tokenizer, BOS, EOS};
use etch_driver::{Chip, Device, Expected, Sampling, Timeout};

use crate::error::{Result, RuntimeError};
use crate::store;

/// What the driver must find on the chip, from the manifest.
pub fn expected(m: &Manifest) -> Result<Expected> {
    Ok(Expected {
        model_identity: m.identity_words()?,
        rom_signature: m.rom_signature_value()?,
        firmware_hash: m.firmware_words()?,
    })
}

/// An agent's named context.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContextId {
    /// The agent that owns it.
    pub agent: String,
    /// Its name among the agent's contexts.
    pub name: String,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl ContextId {
    /// `agent/name`; both must be usable as file names.
    pub fn new(agent: &str, name: &str) -> Result<Self> {
        for s in [agent, name] {
            if !valid_name(s) {
                return Err(RuntimeError::BadName(s.to_string()));
            }
        }
        Ok(ContextId {
            agent: agent.to_string(),
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for ContextId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.agent, self.name)
    }
}

/// Where a restored image came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Host memory (evicted in this process).
    Memory,
    /// The state directory (persisted, possibly by an earlier process).
    Disk,
}

/// Something the runtime did to a context.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ContextEvent {
    /// A new context got a slot.
    Created {
        /// The context.
        context: String,
        /// Its slot.
        slot: u8,
    },
    /// A context was saved and its slot given to another.
    Evicted {
        /// The context.
        context: String,
        /// The slot it left.
        slot: u8,
        /// Bytes of its image.
        bytes: usize,
        /// Whether the image also went to disk.
        to_disk: bool,
    },
    /// A saved context was loaded back into a slot.
    Restored {
        /// The context.
        context: String,
        /// The slot.
        slot: u8,
        /// Where the image came from.
        from: Source,
        /// Tokens it holds.
        tokens: usize,
    },
    /// A context reached the model's sequence and was shortened.
    Compacted {
        /// The context.
        context: String,
        /// Tokens before.
        before: usize,
        /// Tokens after (system prompt + summary + recent window).
        after: usize,
        /// Tokens of the model-written summary.
        summary: usize,
    },
    /// A context was written to the state directory.
    Persisted {
        /// The context.
        context: String,
        /// The file.
        path: PathBuf,
    },
}

impl ContextEvent {
    /// One English sentence for logs and people.
    pub fn describe(&self) -> String {
        match self {
            ContextEvent::Created { context, slot } => {
                format!("created context {context} in KV slot {slot}")
            }
            ContextEvent::Evicted {
                context,
                slot,
                bytes,
                to_disk,
            } => format!(
                "evicted context {context} from KV slot {slot} ({bytes} bytes saved to host memory{})",
                if *to_disk { " and disk" } else { "" }
            ),
            ContextEvent::Restored {
                context,
                slot,
                from,
                tokens,
            } => format!(
                "restored context {context} ({tokens} tokens) into KV slot {slot} from {}",
                match from {
                    Source::Memory => "host memory",
                    Source::Disk => "disk",
                }
            ),
            ContextEvent::Compacted {
                context,
                before,
                after,
                summary,
            } => format!(
                "compacted context {context} from {before} to {after} tokens (system prompt, a {summary}-token summary, the recent window)"
            ),
            ContextEvent::Persisted { context, path } => {
                format!("persisted context {context} to {}", path.display())
            }
        }
    }
}

/// Sampling and stopping for [`Engine::chat`].
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Temperature (0: greedy).
    pub temperature: f64,
    /// Top-p (0 or ≥ 1: off).
    pub topp: f64,
    /// Seed of the chip's RNG.
    pub seed: u64,
    /// Stop strings: the reply ends before the first of them.
    pub stop: Vec<String>,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            max_tokens: 64,
            temperature: 0.0,
            topp: 0.9,
            seed: 0,
            stop: Vec::new(),
        }
    }
}

fn chip_sampling(temperature: f64, topp: f64, seed: u64) -> Sampling {
    let cs = etch_contract::ChipSampling::from_params(&SamplingParams::from_cli(
        temperature,
        topp,
        seed,
    ));
    Sampling {
        inv_temp: cs.inv_temp,
        topp: cs.topp,
        seed: cs.seed,
    }
}

/// Why a reply ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `max_tokens` were generated.
    Length,
    /// A stop string appeared.
    StopString,
    /// The model ended the text (BOS or EOS).
    EndOfText,
}

/// The answer of [`Engine::chat`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct Reply {
    /// Tokens fed before generating: the previous reply's last token (sampled but not
    /// yet fed) and the text's tokens.
    pub fed: Vec<u32>,
    /// Tokens generated.
    pub ids: Vec<u32>,
    /// Their text, cut before a stop string.
    pub text: String,
    /// Why it ended.
    pub stop: StopReason,
    /// Tokens in the context afterwards.
    pub context_tokens: usize,
}

/// The answer of [`Engine::story`]: run.c's generation loop, and the chip cycles it
/// took.
#[derive(Clone, Debug)]
pub struct Story {
    /// Prompt ids, ids and text, as `etch sim` reports them.
    pub generation: Generation,
    /// Chip cycles from the first PREFILL to the end of GENERATE.
    pub cycles: u64,
}

/// Log-likelihood of a text under the chip's model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Score {
    /// Tokens of the text (with BOS).
    pub tokens: Vec<u32>,
    /// `log p(token | previous)` of every token after BOS, natural log.
    pub logprobs: Vec<f64>,
    /// Their sum.
    pub total: f64,
}

#[derive(Default)]
struct Ctx {
    tokens: Vec<u32>,
    pending: Option<u32>,
    system_len: usize,
    slot: Option<u8>,
    image: Option<(Vec<u8>, Source)>,
    last_used: u64,
}

struct Inner {
    contexts: BTreeMap<ContextId, Ctx>,
    /// Which KV slots are taken (by a context — its `Ctx::slot` says which — or by a
    /// scratch command).
    taken: Vec<bool>,
    clock: u64,
    events: Vec<ContextEvent>,
}

type Listener = Box<dyn FnMut(&ContextEvent) + Send>;

/// A chip with its model and the contexts on it.
pub struct Engine<D: Device> {
    chip: Chip<D>,
    tokenizer: Tokenizer,
    manifest: Manifest,
    state: Option<PathBuf>,
    inner: Mutex<Inner>,
    listener: Mutex<Option<Listener>>,
}

impl<D: Device> Engine<D> {
    /// Opens the chip behind `dev`, built into `out` (whose manifest names the model
    /// the chip must hold and whose tokenizer is used), with contexts persisted under
    /// `state` if given. Every KV slot starts free.
    pub fn open(dev: D, out: &Path, state: Option<&Path>, timeout: Timeout) -> Result<Self> {
        let manifest = Manifest::load(out)?;
        let tokenizer = Tokenizer::open(out.join(&manifest.tokenizer), manifest.config.vocab_size)?;
        let chip = Chip::open_with(dev, Some(&expected(&manifest)?), timeout)?;
        chip.reset_contexts()?;
        let taken = vec![false; chip.info().contexts as usize];
        Ok(Engine {
            chip,
            tokenizer,
            manifest,
            state: state.map(Path::to_path_buf),
            inner: Mutex::new(Inner {
                contexts: BTreeMap::new(),
                taken,
                clock: 0,
                events: Vec::new(),
            }),
            listener: Mutex::new(None),
        })
    }

    /// The queue driver (for counters and raw commands).
    pub fn chip(&self) -> &Chip<D> {
        &self.chip
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The manifest of the chip's design.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Calls `f` with every event as it happens (besides recording it).
    pub fn on_event(&self, f: impl FnMut(&ContextEvent) + Send + 'static) {
        *self.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(f));
    }

    /// The events recorded since the last call.
    pub fn take_events(&self) -> Vec<ContextEvent> {
        std::mem::take(&mut self.lock().events)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, inner: &mut Inner, e: ContextEvent) {
        tracing::info!("{}", e.describe());
        if let Some(f) = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            f(&e);
        }
        inner.events.push(e);
    }

    fn max_seq(&self) -> usize {
        self.chip.info().max_seq as usize
    }

    /// Bytes that hold a saved context of the full sequence.
    fn image_capacity(&self) -> usize {
        let c = &self.manifest.config;
        let row = (c.kv_dim() * 2).next_multiple_of(8);
        self.chip.save_bytes(self.max_seq(), row)
    }

    /// The slot of a context that is loaded or known on disk, made resident.
    fn load(&self, inner: &mut Inner, id: &ContextId) -> Result<()> {
        if inner.contexts.contains_key(id) {
            return Ok(());
        }
        let mut ctx = Ctx::default();
        if let Some(state) = &self.state {
            let path = store::path(state, &id.agent, &id.name);
            if path.exists() {
                let (h, image) = store::read(&path, &self.manifest.model_identity)?;
                ctx.tokens = h.tokens;
                ctx.pending = h.pending;
                ctx.system_len = h.system_len;
                ctx.image = Some((image, Source::Disk));
            }
        }
        inner.contexts.insert(id.clone(), ctx);
        Ok(())
    }

    /// A free slot, evicting the least recently used resident context if needed.
    fn free_slot(&self, inner: &mut Inner) -> Result<u8> {
        if let Some(i) = inner.taken.iter().position(|&t| !t) {
            return Ok(i as u8);
        }
        let victim = inner
            .contexts
            .iter()
            .filter(|(_, c)| c.slot.is_some())
            .min_by_key(|(_, c)| c.last_used)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| {
                RuntimeError::InvalidArgument("every KV slot is busy with a running command".into())
            })?;
        self.evict(inner, &victim)
    }

    /// Saves a resident context to host memory (and disk) and frees its slot.
    fn evict(&self, inner: &mut Inner, id: &ContextId) -> Result<u8> {
        let slot = inner.contexts[id].slot.ok_or_else(|| {
            RuntimeError::InvalidArgument(format!("context {id} is not resident"))
        })?;
        let image = self.chip.save_context(slot, self.image_capacity())?;
        let to_disk = self.state.is_some();
        if let Some(state) = &self.state {
            let c = &inner.contexts[id];
            store::write(
                &store::path(state, &id.agent, &id.name),
                &self.header(id, c),
                &image,
            )?;
        }
        self.chip.destroy_context(slot)?;
        let bytes = image.len();
        if let Some(c) = inner.contexts.get_mut(id) {
            c.slot = None;
            c.image = Some((image, Source::Memory));
        }
        inner.taken[slot as usize] = false;
        self.emit(
            inner,
            ContextEvent::Evicted {
                context: id.to_string(),
                slot,
                bytes,
                to_disk,
            },
        );
        Ok(slot)
    }

    fn header(&self, id: &ContextId, c: &Ctx) -> store::Header {
        store::Header {
            version: 1,
            model_identity: self.manifest.model_identity.clone(),
            agent: id.agent.clone(),
            name: id.name.clone(),
            tokens: c.tokens.clone(),
            pending: c.pending,
            system_len: c.system_len,
            image_len: 0,
            image_sha256: String::new(),
        }
    }

    /// Makes a loaded context resident: restores its image or creates it fresh.
    fn resident(&self, inner: &mut Inner, id: &ContextId) -> Result<u8> {
        inner.clock += 1;
        let clock = inner.clock;
        if let Some(slot) = inner.contexts[id].slot {
            if let Some(c) = inner.contexts.get_mut(id) {
                c.last_used = clock;
            }
            return Ok(slot);
        }
        let slot = self.free_slot(inner)?;
        let c = inner
            .contexts
            .get_mut(id)
            .ok_or_else(|| RuntimeError::InvalidArgument(format!("context {id} is not loaded")))?;
        let event = match c.image.take() {
            Some((image, from)) => {
                let position = self.chip.restore_context(slot, &image);
                let position = match position {
                    Ok(p) => p,
                    Err(e) => {
                        c.image = Some((image, from));
                        return Err(e.into());
                    }
                };
                if position as usize != c.tokens.len() {
                    return Err(RuntimeError::CorruptContext {
                        path: PathBuf::from(id.to_string()),
                        why: format!(
                            "the image holds {position} positions, its history {} tokens",
                            c.tokens.len()
                        ),
                    });
                }
                ContextEvent::Restored {
                    context: id.to_string(),
                    slot,
                    from,
                    tokens: c.tokens.len(),
                }
            }
            None => {
                self.chip.create_context(slot)?;
                c.tokens.clear();
                c.pending = None;
                ContextEvent::Created {
                    context: id.to_string(),
                    slot,
                }
            }
        };
        c.slot = Some(slot);
        c.last_used = clock;
        inner.taken[slot as usize] = true;
        self.emit(inner, event);
        Ok(slot)
    }

    /// Sets the system prompt of a new (empty) context: it is fed now and kept by
    /// every compaction.
    pub fn set_system(&self, agent: &str, name: &str, text: &str) -> Result<()> {
        let id = ContextId::new(agent, name)?;
        let mut inner = self.lock();
        self.load(&mut inner, &id)?;
        if !inner.contexts[&id].tokens.is_empty() {
            return Err(RuntimeError::InvalidArgument(format!(
                "context {id} already holds tokens: a system prompt comes first"
            )));
        }
        let tokens = self.tokenizer.encode(text);
        if tokens.len() + 2 > self.max_seq() / 2 {
            return Err(RuntimeError::InvalidArgument(format!(
                "the system prompt is {} tokens; at most half the context ({}) can be",
                tokens.len(),
                self.max_seq() / 2
            )));
        }
        let slot = self.resident(&mut inner, &id)?;
        self.chip.prefill(slot, &tokens, false)?;
        if let Some(c) = inner.contexts.get_mut(&id) {
            c.system_len = tokens.len();
            c.tokens = tokens;
        }
        Ok(())
    }

    /// Appends `text` to the context `agent/name` (created on first use, restored if
    /// evicted or persisted) and generates a reply, streaming its text to `on_text`.
    pub fn chat(
        &self,
        agent: &str,
        name: &str,
        text: &str,
        opts: &GenOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Reply> {
        let id = ContextId::new(agent, name)?;
        if opts.max_tokens == 0 {
            return Err(RuntimeError::InvalidArgument(
                "max_tokens must be at least 1".into(),
            ));
        }
        let mut inner = self.lock();
        self.load(&mut inner, &id)?;
        let (fresh, pending) = {
            let c = &inner.contexts[&id];
            (c.tokens.is_empty() && c.pending.is_none(), c.pending)
        };
        let mut feed: Vec<u32> = pending.into_iter().collect();
        feed.extend(self.tokenizer.encode_with(text, fresh, false));
        if feed.is_empty() {
            return Err(RuntimeError::InvalidArgument("nothing to say".into()));
        }
        let max_seq = self.max_seq();
        if feed.len() + opts.max_tokens > max_seq * 3 / 4 {
            return Err(RuntimeError::InvalidArgument(format!(
                "{} new tokens and {} to generate exceed three quarters of the context ({max_seq} positions)",
                feed.len(),
                opts.max_tokens
            )));
        }
        if inner.contexts[&id].tokens.len() + feed.len() + opts.max_tokens > max_seq {
            self.compact(&mut inner, &id, feed.len() + opts.max_tokens)?;
        }
        let slot = self.resident(&mut inner, &id)?;
        let n = feed.len();
        if n > 1 {
            self.chip.prefill(slot, &feed[..n - 1], false)?;
        }
        let mut out = Vec::new();
        let mut emitted = 0usize;
        let mut stopped = false;
        let mut last = feed[n - 1];
        let stops: Vec<&[u8]> = opts.stop.iter().map(|s| s.as_bytes()).collect();
        let g = self.chip.generate(
            slot,
            feed[n - 1],
            opts.max_tokens as u32,
            chip_sampling(opts.temperature, opts.topp, opts.seed),
            &[BOS, EOS],
            false,
            &mut |t| {
                if stopped || t == BOS || t == EOS {
                    last = t;
                    return;
                }
                out.extend_from_slice(self.tokenizer.decode(last, t));
                last = t;
                // Emit all but what could still become a stop string.
                let cut = stops.iter().filter_map(|s| find(&out, s)).min();
                if let Some(at) = cut {
                    out.truncate(at);
                    stopped = true;
                }
                let keep = if stopped {
                    0
                } else {
                    stops
                        .iter()
                        .map(|s| s.len().saturating_sub(1))
                        .max()
                        .unwrap_or(0)
                };
                let upto = out.len().saturating_sub(keep);
                if upto > emitted {
                    on_text(&String::from_utf8_lossy(&out[emitted..upto]));
                    emitted = upto;
                }
            },
        )?;
        if out.len() > emitted {
            on_text(&String::from_utf8_lossy(&out[emitted..]));
        }
        let ids = g.tokens.clone();
        let end = ids.last().is_some_and(|&t| t == BOS || t == EOS);
        let c = inner
            .contexts
            .get_mut(&id)
            .ok_or_else(|| RuntimeError::InvalidArgument(format!("context {id} vanished")))?;
        c.tokens.extend(&feed[..]);
        if let Some((&tail, fed)) = ids.split_last() {
            c.tokens.extend(fed);
            c.pending = (tail != BOS && tail != EOS).then_some(tail);
        } else {
            c.pending = None;
        }
        Ok(Reply {
            fed: feed,
            text: String::from_utf8_lossy(&out).into_owned(),
            stop: if stopped {
                StopReason::StopString
            } else if end {
                StopReason::EndOfText
            } else {
                StopReason::Length
            },
            ids,
            context_tokens: c.tokens.len(),
        })
    }

    /// Shortens a context that needs `room` more positions: system prompt, a summary
    /// the model writes of the dropped part, and the most recent quarter of the
    /// sequence are kept and fed again into a fresh slot.
    fn compact(&self, inner: &mut Inner, id: &ContextId, room: usize) -> Result<()> {
        let max_seq = self.max_seq();
        let (tokens, system_len) = {
            let c = &inner.contexts[id];
            (c.tokens.clone(), c.system_len)
        };
        let before = tokens.len();
        // The context's own slot (if any) is rebuilt: release it first.
        if let Some(slot) = inner.contexts[id].slot {
            self.chip.destroy_context(slot)?;
            inner.taken[slot as usize] = false;
        }
        if let Some(c) = inner.contexts.get_mut(id) {
            c.slot = None;
            c.image = None;
        }
        let window = (max_seq / 4).min(tokens.len() - system_len);
        let recent = &tokens[tokens.len() - window..];
        let dropped = &tokens[system_len..tokens.len() - window];
        // The summary: the model continues the dropped part after "In short,".
        let budget = max_seq
            .saturating_sub(system_len + window + room + 8)
            .min(max_seq / 8);
        let mut summary = self.tokenizer.encode_with(" In short,", false, false);
        if budget > summary.len() + 1 && !dropped.is_empty() {
            let slot = self.free_slot(inner)?;
            inner.taken[slot as usize] = true;
            let r = (|| -> Result<Vec<u32>> {
                self.chip.create_context(slot)?;
                let tail = (max_seq - budget - 2).min(dropped.len());
                let mut feed = vec![BOS];
                feed.extend(&dropped[dropped.len() - tail..]);
                feed.extend(&summary);
                let n = feed.len();
                self.chip.prefill(slot, &feed[..n - 1], false)?;
                let g = self.chip.generate(
                    slot,
                    feed[n - 1],
                    (budget - summary.len()) as u32,
                    chip_sampling(0.0, 0.0, 0),
                    &[BOS, EOS],
                    false,
                    &mut |_| {},
                )?;
                Ok(g.tokens
                    .into_iter()
                    .filter(|&t| t != BOS && t != EOS)
                    .collect())
            })();
            let _ = self.chip.destroy_context(slot);
            inner.taken[slot as usize] = false;
            summary.extend(r?);
        }
        let mut kept: Vec<u32> = tokens[..system_len].to_vec();
        if kept.is_empty() {
            kept.push(BOS);
        }
        kept.extend(&summary);
        kept.extend(recent);
        let slot = self.free_slot(inner)?;
        self.chip.create_context(slot)?;
        self.chip.prefill(slot, &kept, false)?;
        inner.taken[slot as usize] = true;
        let after = kept.len();
        if let Some(c) = inner.contexts.get_mut(id) {
            c.tokens = kept;
            c.slot = Some(slot);
            c.system_len = system_len;
        }
        self.emit(
            inner,
            ContextEvent::Compacted {
                context: id.to_string(),
                before,
                after,
                summary: summary.len(),
            },
        );
        Ok(())
    }

    /// Writes every context of this engine to the state directory; returns the files.
    pub fn persist(&self) -> Result<Vec<PathBuf>> {
        let state = self.state.clone().ok_or_else(|| {
            RuntimeError::InvalidArgument("this engine has no state directory".into())
        })?;
        let mut inner = self.lock();
        let ids: Vec<ContextId> = inner.contexts.keys().cloned().collect();
        let mut files = Vec::new();
        for id in ids {
            let c = &inner.contexts[&id];
            let image = match (&c.image, c.slot) {
                (Some((image, _)), _) => image.clone(),
                (None, Some(slot)) => self.chip.save_context(slot, self.image_capacity())?,
                (None, None) => continue,
            };
            let path = store::path(&state, &id.agent, &id.name);
            store::write(&path, &self.header(&id, c), &image)?;
            self.emit(
                &mut inner,
                ContextEvent::Persisted {
                    context: id.to_string(),
                    path: path.clone(),
                },
            );
            files.push(path);
        }
        Ok(files)
    }

    /// Tokens a context holds (loading it from disk if needed), or `None` if it is
    /// unknown.
    pub fn context_tokens(&self, agent: &str, name: &str) -> Result<Option<Vec<u32>>> {
        let id = ContextId::new(agent, name)?;
        let mut inner = self.lock();
        self.load(&mut inner, &id)?;
        let c = &inner.contexts[&id];
        if c.tokens.is_empty() && c.image.is_none() && c.slot.is_none() {
            inner.contexts.remove(&id);
            return Ok(None);
        }
        Ok(Some(c.tokens.clone()))
    }

    /// Forgets a context: frees its slot and deletes its file.
    pub fn forget(&self, agent: &str, name: &str) -> Result<()> {
        let id = ContextId::new(agent, name)?;
        let mut inner = self.lock();
        if let Some(c) = inner.contexts.remove(&id) {
            if let Some(slot) = c.slot {
                self.chip.destroy_context(slot)?;
                inner.taken[slot as usize] = false;
            }
        }
        if let Some(state) = &self.state {
            let path = store::path(state, &id.agent, &id.name);
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| RuntimeError::Io {
                    action: "delete",
                    path,
                    source: e,
                })?;
            }
        }
        Ok(())
    }

    /// Runs `f` with a slot of its own (evicting a context if none is free).
    /// Runs `f` with the chip and a KV slot of its own, created empty and destroyed
    /// afterwards: a context nobody else sees (the syscall model's decoding). A slot is
    /// freed for it by evicting the least recently used context if need be.
    pub fn with_scratch_context<R, E: From<RuntimeError>>(
        &self,
        f: impl FnOnce(&Chip<D>, u8) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        let mut inner = self.lock();
        let slot = self.free_slot(&mut inner)?;
        self.chip.create_context(slot).map_err(RuntimeError::from)?;
        inner.taken[slot as usize] = true;
        let r = f(&self.chip, slot);
        let d = self.chip.destroy_context(slot);
        inner.taken[slot as usize] = false;
        let r = r?;
        d.map_err(RuntimeError::from)?;
        Ok(r)
    }

    fn with_scratch<R>(&self, f: impl FnOnce(u8) -> Result<R>) -> Result<R> {
        let mut inner = self.lock();
        let slot = self.free_slot(&mut inner)?;
        inner.taken[slot as usize] = true;
        self.chip.create_context(slot)?;
        let r = f(slot);
        let d = self.chip.destroy_context(slot);
        inner.taken[slot as usize] = false;
        let r = r?;
        d?;
        Ok(r)
    }

    /// run.c's generation loop for `prompt` on a slot of its own: exactly what
    /// `etch sim` runs ([`run_story`]).
    pub fn story(
        &self,
        prompt: &str,
        steps: usize,
        temperature: f64,
        topp: f64,
        seed: u64,
        on_text: &mut dyn FnMut(&[u8]),
    ) -> Result<Story> {
        self.with_scratch(|slot| {
            run_story(
                &self.chip,
                &self.tokenizer,
                slot,
                prompt,
                steps,
                (temperature, topp, seed),
                on_text,
            )
        })
    }

    /// The log-likelihood of `text` (after BOS) under the chip's model, through SCORE.
    pub fn score(&self, text: &str) -> Result<Score> {
        let tokens = etch_contract::encode_prompt(&self.tokenizer, text, self.max_seq())?;
        if tokens.len() < 2 {
            return Err(RuntimeError::InvalidArgument(
                "score needs at least one token of text".into(),
            ));
        }
        let q = self.with_scratch(|slot| Ok(self.chip.score(slot, &tokens)?))?;
        // The chip reports log2 probabilities in Q10.
        let logprobs: Vec<f64> = q
            .iter()
            .map(|&v| v as f64 / 1024.0 * std::f64::consts::LN_2)
            .collect();
        let total = logprobs.iter().sum();
        Ok(Score {
            tokens,
            logprobs,
            total,
        })
    }
}

/// A reply as an iterator of text pieces ([`Engine::chat_stream`]): the chip generates
/// on a thread of its own while the caller iterates; [`ChatStream::finish`] returns the
/// [`Reply`] (or the error that ended it).
pub struct ChatStream {
    pieces: std::sync::mpsc::Receiver<String>,
    done: Option<std::thread::JoinHandle<Result<Reply>>>,
}

impl Iterator for ChatStream {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        self.pieces.recv().ok()
    }
}

impl ChatStream {
    /// Waits for the end of the reply (draining the pieces not yet read).
    pub fn finish(mut self) -> Result<Reply> {
        while self.pieces.recv().is_ok() {}
        match self.done.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            _ => Err(RuntimeError::InvalidArgument(
                "the generating thread panicked".into(),
            )),
        }
    }
}

impl<D: Device + 'static> Engine<D> {
    /// [`Engine::chat`] as an iterator of text pieces.
    pub fn chat_stream(
        self: &std::sync::Arc<Self>,
        agent: &str,
        name: &str,
        text: &str,
        opts: &GenOptions,
    ) -> ChatStream {
        let (tx, rx) = std::sync::mpsc::channel();
        let (me, agent, name, text, opts) = (
            self.clone(),
            agent.to_string(),
            name.to_string(),
            text.to_string(),
            opts.clone(),
        );
        let done = std::thread::spawn(move || {
            me.chat(&agent, &name, &text, &opts, &mut |t| {
                let _ = tx.send(t.to_string());
            })
        });
        ChatStream {
            pieces: rx,
            done: Some(done),
        }
    }
}

/// llama2.c's generation loop on the created context `slot`: PREFILL of the forced
/// prompt tokens, then GENERATE from the last one with BOS as the stop token; `ids`
/// follow run.c's `next` tokens, `text` stops at BOS as run.c's printing does.
/// `sampling` is `(temperature, top-p, seed)` as on the command line.
pub fn run_story<D: Device>(
    chip: &Chip<D>,
    tokenizer: &Tokenizer,
    slot: u8,
    prompt: &str,
    steps: usize,
    sampling: (f64, f64, u64),
    on_text: &mut dyn FnMut(&[u8]),
) -> Result<Story> {
    let max_seq = chip.info().max_seq as usize;
    let prompt_ids = etch_contract::encode_prompt(tokenizer, prompt, max_seq)?;
    let steps = etch_contract::effective_steps(steps, max_seq);
    let forced = steps.min(prompt_ids.len() - 1);
    let start = chip.cycles()?;
    chip.prefill(slot, &prompt_ids[..forced], false)?;
    let mut ids: Vec<u32> = prompt_ids[1..=forced].to_vec();
    let mut prev = prompt_ids[0];
    for &t in &ids {
        on_text(tokenizer.decode(prev, t));
        prev = t;
    }
    if steps > forced {
        let mut last = prev;
        let g = chip.generate(
            slot,
            prompt_ids[forced],
            (steps - forced) as u32,
            chip_sampling(sampling.0, sampling.1, sampling.2),
            &[BOS],
            false,
            &mut |t| {
                if t != BOS {
                    on_text(tokenizer.decode(last, t));
                }
                last = t;
            },
        )?;
        ids.extend(&g.tokens);
    }
    let cycles = chip.cycles()? - start;
    let printed: Vec<u32> = ids.iter().copied().take_while(|&t| t != BOS).collect();
    let text = tokenizer.decode_all(prompt_ids[0], &printed);
    Ok(Story {
        generation: Generation {
            prompt_ids,
            ids,
            text,
        },
        cycles,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_names_must_be_file_names() {
        assert!(ContextId::new("agent-1", "notes.v2").is_ok());
        for bad in ["", "..", ".hidden", "a/b", "a b", "ü"] {
            assert!(ContextId::new("agent", bad).is_err(), "{bad:?}");
            assert!(ContextId::new(bad, "n").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stop_strings_are_found_anywhere() {
        assert_eq!(find(b"hello world", b"o w"), Some(4));
        assert_eq!(find(b"hi", b"hello"), None);
        assert_eq!(find(b"abc", b""), None);
    }

    #[test]
    fn events_read_as_sentences() {
        let e = ContextEvent::Evicted {
            context: "a/b".into(),
            slot: 1,
            bytes: 100,
            to_disk: true,
        };
        assert_eq!(
            e.describe(),
            "evicted context a/b from KV slot 1 (100 bytes saved to host memory and disk)"
        );
    }
}
