//! Verilog emission of rust-hdl blocks under chosen module names.

use rust_hdl::prelude::*;

/// The Verilog of `block` and its sub-blocks, the top module named `name` (sub-modules
/// are named `name$path`).
pub fn block_verilog<B: Block>(block: &B, name: &str) -> String {
    let mut defines = ModuleDefines::default();
    block.accept(name, &mut defines);
    defines.defines()
}

/// Lint waivers at the head of every file of rust-hdl-generated modules.
///
/// rust-hdl writes literals as 32-bit constants and casts as masks, so Verilator's WIDTH
/// warnings fire on expressions whose results are nevertheless the widths the Rust
/// types fix; and it declares full-width intermediates of which the logic uses only
/// some bits (UNUSEDSIGNAL), and repeats state enumerations as parameters in every
/// sub-module (UNUSEDPARAM). These are waived for these modules only; the hand-written
/// primitives and the generated top level are clean under `-Wall`.
pub const RUST_HDL_WAIVERS: &str =
    "/* verilator lint_off WIDTH */\n/* verilator lint_off UNUSEDSIGNAL */\n/* verilator lint_off UNUSEDPARAM */\n";

/// The Verilog files of a whole chip: `(file name, text)`, each headed by `header`
/// (a comment naming the model, the settings, the etch version and how to regenerate).
pub fn design_files(
    p: &crate::top::ChipParams,
    header: &str,
) -> Result<Vec<(String, String)>, crate::HdlError> {
    p.validate()?;
    let t = &p.tables;
    let rust_hdl_file = |name: &str, text: String| {
        (
            format!("{name}.v"),
            format!("{header}\n{RUST_HDL_WAIVERS}{text}"),
        )
    };
    let pipe = &p.datapath.pipeline;
    let lanes_per_requantizer = p.lanes / p.datapath.requantizers;
    let tag_bits = (lanes_per_requantizer.trailing_zeros() as usize).max(1);
    let lane = format!(
        "{}\n{}",
        crate::lane::verilog(
            pipe,
            p.datapath.columns,
            p.datapath.lut_columns,
            p.matvec_weight_bits(),
            p.datapath.head_pairs
        ),
        crate::lane::requantizer_verilog(pipe, tag_bits)
    );
    let mut head = crate::head::HeadUnit::new(t, p.rows_per_layer());
    head.connect_all();
    let (vctrl, vctrl_units) = crate::vctrl::verilog(
        t,
        p.datapath.columns,
        p.datapath.vop_queue,
        p.datapath.requantizers < p.lanes,
    );
    let mut hostif = crate::hostif::HostIf::default();
    hostif.connect_all();
    let mut sigmoid = crate::sfu::SigmoidUnit::new(t);
    sigmoid.connect_all();
    Ok(vec![
        (
            "etch_prims.v".to_string(),
            format!("{header}\n{}", crate::prim::PRIMITIVES_V),
        ),
        ("etch_lane.v".to_string(), format!("{header}\n{lane}")),
        rust_hdl_file("etch_head", block_verilog(&head, "etch_head")),
        ("etch_vctrl.v".to_string(), format!("{header}\n{vctrl}")),
        rust_hdl_file("etch_vctrl_units", vctrl_units),
        (
            "etch_seq.v".to_string(),
            format!(
                "{header}\n{}",
                crate::seq::verilog(
                    p.datapath.vop_queue,
                    p.datapath.pipeline.scalar_product_registered(),
                )
            ),
        ),
        rust_hdl_file("etch_hostif", block_verilog(&hostif, "etch_hostif")),
        rust_hdl_file("etch_sigmoid", block_verilog(&sigmoid, "etch_sigmoid")),
        (
            "etch_chip.v".to_string(),
            crate::top::chip_verilog(p, header),
        ),
        rust_hdl_file("etch_bridge", crate::board::bridge_verilog()),
        (
            "etch_board.v".to_string(),
            crate::board::board_verilog(header),
        ),
    ])
}
