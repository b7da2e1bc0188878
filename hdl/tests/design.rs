//! A whole generated design passes Verilator's lint (`-Wall`; the documented waivers
//! cover only the rust-hdl-generated modules).

mod common;

use etch_compiler::numerics::Tables;
use etch_contract::{Datapath, Pipeline};
use etch_hdl::sfu::TableData;
use etch_hdl::top::ChipParams;

pub fn table_data() -> TableData {
    let t = Tables::generate();
    TableData {
        rsqrt: t.rsqrt,
        recip: t.recip,
        exp2: t.exp2,
        sigmoid: t.sigmoid,
        sine: t.sine,
        log2: t.log2,
    }
}

fn params(lanes: usize, dim: usize, heads: usize, kv: usize) -> ChipParams {
    ChipParams {
        lanes,
        weight_bits: 8,
        weight_group: 0,
        wide_depth: 0,
        dim,
        n_heads: heads,
        n_kv_heads: kv,
        n_layers: 2,
        max_seq: 32,
        contexts: 2,
        ar_depth: 64,
        wrom_depth: 100,
        qrom_depth: 20,
        grom_depth: 10,
        imem_depth: 50,
        param_depth: 10,
        ident: [0; 24],
        tables: table_data(),
        datapath: Datapath::per_lane(lanes),
        // Keys right after the queries, values right after the keys.
        kv_rows: [dim, dim + dim / heads * kv],
    }
}

fn lint(p: &ChipParams, tag: &str) {
    let dir = std::env::temp_dir().join(format!("etch_design_lint_{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let files = etch_hdl::emit::design_files(p, "// test design").unwrap();
    let mut paths = Vec::new();
    for (name, text) in files {
        let f = dir.join(name);
        std::fs::write(&f, text).unwrap();
        paths.push(f);
    }
    // The chip, and the board top around it (UART bridge, power-on reset).
    for top in ["etch_chip", "etch_board"] {
        let out = common::verilator_lint(&paths, Some(top));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{tag} ({top}):\n{}",
            err.lines().take(40).collect::<Vec<_>>().join("\n")
        );
    }
}

#[test]
fn small_designs_lint_clean() {
    lint(&params(8, 32, 4, 2), "l8");
    lint(&params(64, 32, 4, 2), "l64_p2");
    // Shared requantizers and every pipeline register.
    let fpga = Datapath {
        requantizers: 8,
        pipeline: Pipeline::FPGA,
        ..Datapath::per_lane(64)
    };
    let mut p = params(64, 32, 4, 2);
    p.datapath = fpga;
    lint(&p, "l64_r8_fpga");
    let mut p = params(16, 32, 4, 2);
    p.datapath = Datapath {
        requantizers: 8,
        pipeline: Pipeline {
            product: true,
            requant_shift: true,
            ..Pipeline::ASIC
        },
        ..fpga
    };
    lint(&p, "l16_r8_some");
    // Lanes of several input columns (the embedding four elements per cycle): 4-bit
    // weights with group scales (two words per scale of 8 weights at 4 columns), every
    // pipeline register, the vector-operation queue.
    let mut p = params(32, 32, 4, 2);
    p.weight_bits = 4;
    p.weight_group = 2;
    p.datapath = Datapath {
        columns: 4,
        vop_queue: true,
        ..fpga
    };
    lint(&p, "l32_c4_g8_fpga_queue");
    // Head pairs on 8 lanes with every pipeline register (two heads per key/value
    // head, one per head group).
    let mut p = params(8, 32, 4, 2);
    p.datapath = Datapath {
        head_pairs: true,
        columns: 2,
        ..fpga
    };
    lint(&p, "l8_pairs_fpga");
}

#[test]
fn head_pairs_need_two_heads_of_a_group_per_key_value_head() {
    // stories260K on 8 lanes: 8 heads, 4 key/value heads, one head per group's lanes →
    // four head groups of two heads, two head units, one KV plane per group.
    let mut p = params(8, 64, 8, 4);
    p.datapath.head_pairs = true;
    p.validate().unwrap();
    assert_eq!(
        (
            p.heads_per_group(),
            p.group_heads(),
            p.head_groups(),
            p.head_units()
        ),
        (1, 2, 4, 2)
    );
    assert_eq!((p.kv_heads_per_word(), p.kv_planes()), (1, 4));
    // Multi-head attention: the two heads of a pair read different key/value heads.
    let mut p = params(8, 64, 8, 8);
    p.datapath.head_pairs = true;
    let e = p.validate().unwrap_err().to_string();
    assert!(e.contains("head pairs need each key/value head"), "{e}");
    // 16 lanes span two heads, and a key/value head serves only two.
    let mut p = params(16, 64, 8, 4);
    p.datapath.head_pairs = true;
    assert!(p.validate().is_err());
    // A chip as wide as two models computes two positions at once instead.
    let mut p = params(64, 32, 4, 1);
    p.datapath.head_pairs = true;
    assert!(p.validate().is_err());
}

#[test]
fn kv_planes_hold_what_a_head_group_reads() {
    // (lanes, dim, heads, kv heads) → (kv heads per word, planes, word bits, words)
    let cases = [
        // stories260K's shape with 8 lanes: one head per group, one kv head per word
        ((8, 64, 8, 4), (1, 4, 128, 4 * 2 * 2 * 32)),
        // 16 lanes: two heads per group, the kv head they share
        ((16, 32, 4, 2), (1, 2, 128, 2 * 2 * 2 * 32)),
        // 16 lanes, multi-head attention: two kv heads per group
        ((16, 64, 8, 8), (2, 4, 256, 4 * 2 * 2 * 32)),
        // every head in one group: whole rows
        ((64, 32, 4, 2), (2, 1, 256, 2 * 2 * 16)),
        ((32, 32, 4, 1), (1, 1, 128, 2 * 2 * 32)),
        // a kv head of 6 elements is not a whole number of 64-bit beats: whole rows
        ((8, 48, 8, 4), (4, 1, 384, 2 * 2 * 32)),
    ];
    for ((lanes, dim, heads, kv), (per_word, planes, bits, words)) in cases {
        let p = params(lanes, dim, heads, kv);
        let got = (
            p.kv_heads_per_word(),
            p.kv_planes(),
            p.kv_word_bits(),
            p.kv_words(),
        );
        assert_eq!(
            got,
            (per_word, planes, bits, words),
            "{lanes} lanes, dim {dim}, {heads}/{kv} heads"
        );
        assert_eq!(p.kv_planes() * p.kv_word_bits(), p.kv_dim() * 16);
    }
}
