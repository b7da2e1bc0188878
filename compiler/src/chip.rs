//! The chip generator: a quantized model, its placement and its firmware become a
//! build directory — Verilog, ROM images, the firmware image, a manifest and a copy of
//! the tokenizer.
//!
//! ```text
//! OUT/rtl/*.v          the design (etch_chip is the top)
//! OUT/rom/*.hex        weight, requantization, gain, table, firmware ROM contents
//! OUT/firmware.bin     the firmware image (and firmware.s, its assembly)
//! OUT/manifest.json    identity, shapes, numerics, sizes, layout
//! OUT/tokenizer.bin    the tokenizer
//! OUT/etch.core        the design as a FuseSoC core (crate::core_file)
//! ```

use std::path::{Path, PathBuf};

use etch_firmware::regs;
use etch_hdl::sfu::TableData;
use etch_hdl::top::ChipParams;
use sha2::{Digest, Sha256};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::layout::Placement;
use crate::quantize::{QuantSettings, QuantizedModel};
use crate::schedule::{firmware, FIRMWARE_VERSION};
use etch_contract::Tokenizer;
pub use etch_contract::{Datapath, Manifest, Pipeline, Storage};

/// Numerics version: changes whenever the golden model's arithmetic changes.
pub const NUMERICS_VERSION: &str = "etch-numerics-1";

/// Build options.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BuildOptions {
    /// MAC lanes.
    pub lanes: usize,
    /// Context slots.
    pub contexts: usize,
    /// Positions per context (at most the model's `seq_len`).
    pub max_seq: usize,
    /// Quantization settings.
    pub quant: QuantSettings,
    /// Shared requantizers and pipeline registers.
    pub datapath: Datapath,
}

/// `--preset fast`: the fastest stories260K chip with at most 1,100 multipliers
/// (`Manifest::macs`): 128 lanes of 8 columns (1,024 lane multipliers), 32 shared
/// requantizers, two attention positions per cycle (16 head units), no pipeline
/// registers. 64 requantizers would save about 120 cycles per token but need 1,108
/// multipliers; 256 lanes of 4 columns spend the same multipliers on rows that
/// stories260K's matrices (at most 172 rows but the classifier) cannot fill. With the
/// vector-operation queue.
pub fn fast_preset() -> (usize, Datapath) {
    (
        128,
        Datapath {
            requantizers: 32,
            pipeline: Pipeline::ASIC,
            columns: 8,
            vop_queue: true,
            lut_columns: 0,
            head_pairs: false,
        },
    )
}

/// The model identity: SHA-256 of the checkpoint file, the quantization settings
/// (canonical JSON) and the numerics version.
pub fn model_identity(checkpoint: &Checkpoint, settings: &QuantSettings) -> String {
    let mut h = Sha256::new();
    h.update(checkpoint.file_bytes());
    h.update(serde_json::to_vec(settings).unwrap_or_default());
    h.update(NUMERICS_VERSION.as_bytes());
    hex::encode(h.finalize())
}

/// The special-function tables as the hardware generator wants them.
pub fn table_data(model: &QuantizedModel) -> TableData {
    let t = &model.tables;
    TableData {
        rsqrt: t.rsqrt.clone(),
        recip: t.recip.clone(),
        exp2: t.exp2.clone(),
        sigmoid: t.sigmoid.clone(),
        sine: t.sine.clone(),
        log2: t.log2.clone(),
    }
}

fn write(path: PathBuf, text: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))
}

fn table_hex(values: impl Iterator<Item = u64>, digits: usize) -> String {
    values.map(|v| format!("{v:0digits$x}\n")).collect()
}

/// Checks the options against the model before anything is built.
pub fn check_options(c: &etch_contract::Config, options: &BuildOptions) -> Result<()> {
    if options.max_seq == 0 || options.max_seq > c.seq_len {
        return Err(Error::InvalidArgument(format!(
            "--max-seq must be between 1 and the model's context ({}), not {}",
            c.seq_len, options.max_seq
        )));
    }
    etch_hdl::top::check_lanes(options.lanes)?;
    etch_hdl::top::check_requantizers(options.lanes, options.datapath.requantizers)?;
    etch_hdl::top::check_columns(options.datapath.columns)?;
    etch_hdl::top::check_lut_columns(options.datapath.columns, options.datapath.lut_columns)?;
    if options.contexts == 0 || options.contexts > 255 {
        return Err(Error::InvalidArgument(format!(
            "--contexts must be between 1 and 255, not {}",
            options.contexts
        )));
    }
    if c.vocab_size > 65535 {
        return Err(Error::InvalidArgument(format!(
            "vocabularies above 65535 tokens are not supported ({})",
            c.vocab_size
        )));
    }
    Ok(())
}

/// The hardware generator's parameters for a placed model and its firmware.
fn chip_params(
    model: &QuantizedModel,
    placement: &Placement,
    program: &etch_firmware::Program,
    options: &BuildOptions,
    ident: [u32; 24],
) -> ChipParams {
    let c = model.config;
    let layout = &placement.layout;
    ChipParams {
        lanes: options.lanes,
        weight_bits: options.quant.weight_bits as usize,
        weight_group: placement.group,
        wide_depth: placement.wide.words.len(),
        dim: c.dim,
        n_heads: c.n_heads,
        n_kv_heads: c.n_kv_heads,
        n_layers: c.n_layers,
        max_seq: options.max_seq,
        contexts: options.contexts,
        ar_depth: layout.ar_depth,
        wrom_depth: placement.weights.depth(),
        qrom_depth: placement.requant.depth(),
        grom_depth: placement.gains.depth(),
        imem_depth: program.code.len(),
        param_depth: program.params.len(),
        ident,
        tables: table_data(model),
        datapath: options.datapath,
        kv_rows: [layout.k_row, layout.v_row],
    }
}

/// The chip `options` make of an already quantized model, without writing it: what
/// a fit to an FPGA estimates resources from. The quantization settings of `options`
/// must be those `model` was built with.
pub fn design(model: &QuantizedModel, options: &BuildOptions) -> Result<ChipParams> {
    check_options(&model.config, options)?;
    let placement = Placement::new(
        model,
        options.lanes,
        &options.datapath,
        options.contexts,
        options.max_seq,
    );
    let fw = firmware(model, &placement.layout)?;
    let params = chip_params(model, &placement, &fw.program, options, [0; 24]);
    params.validate()?;
    Ok(params)
}

/// Builds the chip for `checkpoint` into `out`. `progress` receives a step name and
/// a fraction done.
pub fn build(
    checkpoint: &Checkpoint,
    tokenizer: &Tokenizer,
    options: &BuildOptions,
    out: &Path,
    progress: &mut dyn FnMut(&str, f64),
) -> Result<Manifest> {
    let c = *checkpoint.config();
    check_options(&c, options)?;
    progress("quantizing", 0.0);
    let model = QuantizedModel::build(checkpoint, tokenizer, &options.quant)?;
    progress("placing", 0.3);
    let placement = Placement::new(
        &model,
        options.lanes,
        &options.datapath,
        options.contexts,
        options.max_seq,
    );
    let layout = &placement.layout;
    let fw = firmware(&model, layout)?;
    let image = fw.program.to_image();
    let fw_hash = Sha256::digest(&image);
    let identity = model_identity(checkpoint, &options.quant);

    let mut ident = [0u32; 24];
    ident[regs::ID as usize] = regs::ID_MAGIC;
    ident[regs::VERSION as usize] = regs::HW_VERSION;
    ident[regs::FW_VERSION as usize] = FIRMWARE_VERSION;
    ident[regs::CONFIG0 as usize] = (options.lanes as u32) | (options.contexts as u32) << 16;
    ident[regs::CONFIG1 as usize] = (options.max_seq as u32) | (c.vocab_size as u32) << 16;
    ident[regs::CONFIG2 as usize] = (c.dim as u32) | (c.n_layers as u32) << 16;
    ident[regs::CONFIG3 as usize] =
        (c.n_heads as u32) | (c.n_kv_heads as u32) << 8 | (c.hidden_dim as u32) << 16;
    let id_words = etch_contract::manifest::sha256_words(&identity)?;
    let fw_words = etch_contract::manifest::sha256_words(&hex::encode(fw_hash))?;
    ident[regs::MODEL_ID0 as usize..regs::MODEL_ID0 as usize + 8].copy_from_slice(&id_words);
    ident[regs::FW_HASH0 as usize..regs::FW_HASH0 as usize + 8].copy_from_slice(&fw_words);

    let params = chip_params(&model, &placement, &fw.program, options, ident);
    params.validate()?;

    let header = format!(
        "// Generated by etch {} — do not edit.\n// Model: {} (identity {})\n// Settings: {} lanes, {} requantizers, {} pipeline, {} contexts, max-seq {}, {}-bit weights, {}\n// Regenerate: etch build {} -z <tokenizer> -o <out> --lanes {} --requantizers {} --pipeline {} --contexts {} --max-seq {}",
        env!("CARGO_PKG_VERSION"),
        checkpoint.path().display(),
        &identity[..16],
        options.lanes,
        options.datapath.requantizers,
        options.datapath.pipeline.name(),
        options.contexts,
        options.max_seq,
        options.quant.weight_bits,
        NUMERICS_VERSION,
        checkpoint.path().display(),
        options.lanes,
        options.datapath.requantizers,
        options.datapath.pipeline.name(),
        options.contexts,
        options.max_seq,
    );
    progress("generating RTL", 0.45);
    let files = etch_hdl::emit::design_files(&params, &header)?;

    progress("writing", 0.75);
    let rtl = out.join("rtl");
    let rom = out.join("rom");
    for dir in [out, &rtl, &rom] {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("write", dir, e))?;
    }
    // The design hash covers the Verilog without its header comment (which names paths),
    // so that the same design built anywhere shares one compiled simulator.
    let mut design = Sha256::new();
    for (name, text) in &files {
        design.update(name.as_bytes());
        design.update(
            text.strip_prefix(header.as_str())
                .unwrap_or(text)
                .as_bytes(),
        );
        write(rtl.join(name), text)?;
    }
    // Every ROM image, named as written (the FuseSoC core lists them).
    let mut roms: Vec<String> = Vec::new();
    let mut rom_file = |name: &str, text: String| {
        roms.push(name.to_string());
        write(rom.join(name), text)
    };
    // The weight, scale and wide ROMs in the banks the RTL builds them from.
    let mut banked = |stem: &str, image: &crate::layout::RomImage| -> Result<()> {
        for (b, text) in image.banks_hex().into_iter().enumerate() {
            rom_file(&etch_hdl::prim::rom_bank_file(stem, b), text)?;
        }
        Ok(())
    };
    banked("weights", &placement.weights)?;
    if placement.group != 0 {
        banked("scales", &placement.scales)?;
    }
    if !placement.wide.words.is_empty() {
        banked("wide", &placement.wide)?;
    }
    rom_file("requant.hex", placement.requant.to_hex())?;
    rom_file("gains.hex", placement.gains.to_hex())?;
    rom_file("imem.hex", table_hex(fw.program.code.iter().copied(), 16))?;
    let mut params_hex = String::new();
    for row in &fw.program.params {
        for v in row.iter().rev() {
            params_hex.push_str(&format!("{v:04x}"));
        }
        params_hex.push('\n');
    }
    if fw.program.params.is_empty() {
        params_hex.push_str(&"0".repeat(64));
        params_hex.push('\n');
    }
    rom_file("params.hex", params_hex)?;
    rom_file(
        "rope_steps.hex",
        table_hex(model.rope_steps.iter().map(|&v| v as u64), 8),
    )?;
    let t = &model.tables;
    let u16s = |v: &[u16]| table_hex(v.iter().map(|&x| x as u64), 4);
    rom_file("exp2.hex", u16s(&t.exp2))?;
    rom_file("rsqrt.hex", u16s(&t.rsqrt))?;
    rom_file("recip.hex", u16s(&t.recip))?;
    rom_file("sigmoid.hex", u16s(&t.sigmoid))?;
    rom_file("log2.hex", u16s(&t.log2))?;
    rom_file(
        "sine.hex",
        table_hex(t.sine.iter().map(|&x| x as u16 as u64), 4),
    )?;
    write(out.join("firmware.bin"), &image)?;
    write(out.join("firmware.s"), &fw.source)?;
    let tok_bytes =
        std::fs::read(tokenizer.path()).map_err(|e| Error::io("read", tokenizer.path(), e))?;
    write(out.join("tokenizer.bin"), tok_bytes)?;

    let l = options.lanes as u64;
    let np = layout.positions as u64;
    // head units per position group: the heads a head group computes
    let pair_factor = if options.datapath.head_pairs { 2 } else { 1 };
    let g = (options.lanes.min(c.dim) / c.head_size() * pair_factor) as u64;
    let kv_row = (c.kv_dim() * 16) as u64;
    let storage = Storage {
        weights: (placement.weights.depth() * placement.weights.width) as u64
            + (placement.wide.words.len() * placement.wide.width) as u64,
        group_scales: (placement.scales.words.len() * placement.scales.width) as u64,
        requant: (placement.requant.depth() * placement.requant.width) as u64,
        gains: (placement.gains.depth() * placement.gains.width) as u64,
        tables: 16
            * (t.rsqrt.len() + t.sigmoid.len() + 2 * t.sine.len() + 2 * t.exp2.len() + t.log2.len())
                as u64
            + 16 * np * g * (t.exp2.len() + t.recip.len()) as u64
            + 32 * model.rope_steps.len() as u64,
        firmware: 64 * fw.program.code.len() as u64 + 256 * fw.program.params.len() as u64,
        activations: 16 * l * layout.ar_depth as u64 + 32 * 1024,
        kv_cache: 2 * np * kv_row * (options.contexts * c.n_layers * layout.rows_per_layer) as u64,
        scores: 48 * np * g * layout.rows_per_layer as u64,
    };
    let manifest = Manifest {
        etch_version: env!("CARGO_PKG_VERSION").to_string(),
        model_identity: identity,
        model_file: checkpoint.path().display().to_string(),
        tokenizer: "tokenizer.bin".into(),
        config: c,
        quant: options.quant.clone(),
        formats: model.formats.clone(),
        numerics: NUMERICS_VERSION.into(),
        lanes: options.lanes,
        contexts: options.contexts,
        max_seq: options.max_seq,
        attention_positions_per_cycle: layout.positions,
        datapath_built: Some(options.datapath),
        macs: options.datapath.lane_multipliers(options.lanes)
            + options.lanes * (pair_factor - 1)
            + options.datapath.requantizers
            + (np * g) as usize
            + 4,
        rom_bits: storage.weights
            + storage.group_scales
            + storage.requant
            + storage.gains
            + storage.tables
            + storage.firmware,
        sram_bits: storage.activations + storage.kv_cache + storage.scores,
        rom_signature: format!("{:016x}", placement.rom_signature()),
        firmware_version: FIRMWARE_VERSION,
        firmware_sha256: hex::encode(fw_hash),
        firmware_instructions: fw.program.code.len(),
        design_hash: hex::encode(design.finalize()),
        storage,
        layout: placement.layout.clone(),
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::InvalidArgument(format!("manifest: {e}")))?;
    write(out.join("manifest.json"), text)?;
    let rtl_names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    write(
        out.join("etch.core"),
        crate::core_file::fusesoc_core(&manifest.design_hash, &rtl_names, &roms),
    )?;
    progress("done", 1.0);
    Ok(manifest)
}
