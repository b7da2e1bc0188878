//! Round trips of every shared format, and assembler errors.

use etch_firmware::asm::{disassemble_one, IMAGE_MAGIC};
use etch_firmware::{assemble, disassemble, Command, Completion, Instr, Op, Program, VKind};
use proptest::prelude::*;

proptest! {
    #[test]
    fn instructions_round_trip(op in 0u8..64, rd in 0u8..16, ra in 0u8..16, rb in 0u8..16,
                               rc in 0u8..16, aux: u8, imm: u32) {
        let i = Instr { op, rd, ra, rb, rc, aux, imm };
        prop_assert_eq!(Instr::decode(i.encode()), i);
    }

    #[test]
    fn commands_round_trip(opcode: u8, flags: u8, context: u8, id: u32, addr_a: u64, count: u32,
                           token: u32, inv_temp: u16, topp: u16, seed: u64, addr_b: u64,
                           stop: [u16; 4], stop_count: u8) {
        let c = Command { opcode, flags, context, id, addr_a, count, token, inv_temp, topp, seed,
                          addr_b, stop, stop_count };
        prop_assert_eq!(Command::from_bytes(&c.to_bytes()), c);
    }

    #[test]
    fn completions_round_trip(id: u32, status: u16, phase: bool, reason: u8, result: u32,
                              position: u32) {
        let c = Completion { id, status, phase, reason, result, position };
        prop_assert_eq!(Completion::from_bytes(&c.to_bytes()), c);
    }

    #[test]
    fn disassembly_reassembles(words in proptest::collection::vec(any::<u64>(), 1..40)) {
        // Only valid instructions: force a known opcode and, for vops, a known kind.
        let code: Vec<u64> = words.iter().enumerate().map(|(k, w)| {
            let mut i = Instr::decode(*w);
            let op = Op::ALL[k % Op::ALL.len()];
            i.op = op as u8;
            i.aux = if op == Op::Vop { VKind::ALL[k % VKind::ALL.len()] as u8 } else { 0 };
            if matches!(op, Op::Dmard | Op::Dmawr) {
                i.imm = (i.imm % 512 + 1) * 2;
            }
            // Fields an opcode does not use are not part of its text.
            let keep = Program { version: 0, code: vec![i.encode()], params: vec![] };
            let text = disassemble_one(keep.code[0]);
            assemble(&text, 0).map(|p| p.code[0]).unwrap_or_else(|e| panic!("{text}: {e}"))
        }).collect();
        let p = Program { version: 7, code, params: vec![[3; 16], [0; 16]] };
        let again = assemble(&disassemble(&p), 7).unwrap();
        prop_assert_eq!(again, p);
    }
}

#[test]
fn images_round_trip_and_reject_corruption() {
    let p = assemble(
        ".param 0 matvec 1 2 3\nstart:\n li r1, -5\n beq r1, r0, start\n vop matvec, 0, r1\n halt\n",
        3,
    )
    .unwrap();
    let image = p.to_image();
    assert_eq!(
        u32::from_le_bytes(image[..4].try_into().unwrap()),
        IMAGE_MAGIC
    );
    assert_eq!(Program::from_image(&image).unwrap(), p);
    assert!(Program::from_image(&image[..image.len() - 1]).is_err());
    let mut bad = image.clone();
    bad[0] ^= 1;
    assert!(Program::from_image(&bad)
        .unwrap_err()
        .to_string()
        .contains("magic"));
}

#[test]
fn assembler_reports_the_line() {
    for (src, needle) in [
        ("nop\nfrobnicate r1\n", "line 2: unknown instruction"),
        ("li r16, 3", "not a register"),
        ("beq r1, r2, nowhere", "unknown value or label `nowhere`"),
        ("dmard r1, r2, r3, 3", "even"),
        ("a:\na:\n", "defined twice"),
        ("add r1, r2", "takes 3 operands"),
        ("vop warp, 0", "unknown vector kind"),
    ] {
        let e = assemble(src, 0).unwrap_err().to_string();
        assert!(e.contains(needle), "{src:?}: {e}");
    }
}

#[test]
fn csr_names_and_labels_resolve() {
    let p = assemble(
        ".equ N 4\ntop:\n csrw SQ_HEAD, r1\n csrr r2, sq_tail\n bne r1, r2, top\n li r3, N\n",
        0,
    )
    .unwrap();
    let i = Instr::decode(p.code[0]);
    assert_eq!(i.imm, etch_firmware::regs::SQ_HEAD as u32);
    assert_eq!(Instr::decode(p.code[2]).imm, 0);
    assert_eq!(Instr::decode(p.code[3]).imm, 4);
}

#[test]
fn a_vop_marked_independent_sets_rd_and_round_trips() {
    let p = assemble(" vop matvec, 3, r1\n vop matvec, 4, r1, r0, r0, indep\n", 0).unwrap();
    assert_eq!(Instr::decode(p.code[0]).rd, 0);
    let i = Instr::decode(p.code[1]);
    assert_eq!((i.rd, i.ra, i.imm), (1, 1, 4));
    let text = etch_firmware::asm::disassemble_one(p.code[1]);
    assert!(text.ends_with(", indep"), "{text}");
    let again = assemble(&format!(" {text}\n"), 0).unwrap();
    assert_eq!(again.code[0], p.code[1]);
}

/// `docs/isa.md`'s table of vector operations names every field of every kind with
/// the offset and width `etch_firmware::vparams` packs it with.
#[test]
fn isa_doc_lists_the_parameter_fields() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/isa.md"))
        .expect("docs/isa.md");
    for kind in VKind::ALL {
        let row = doc
            .lines()
            .find(|l| {
                l.starts_with('|')
                    && l.split('|').nth(1).is_some_and(|c| {
                        c.split('/')
                            .any(|n| n.trim() == format!("`{}`", kind.name()))
                    })
            })
            .unwrap_or_else(|| panic!("docs/isa.md has no row for `{}`", kind.name()));
        let fields_cell = row.split('|').nth(3).unwrap().trim();
        let expected: Vec<String> = etch_firmware::vparams::VParams::fields(kind)
            .iter()
            .map(|f| format!("`{}` ({}, {})", f.name, f.offset, f.width))
            .collect();
        let expected = if expected.is_empty() {
            "—".to_string()
        } else {
            expected.join(", ")
        };
        if fields_cell != "as `sample`" {
            assert_eq!(
                fields_cell,
                expected,
                "docs/isa.md row for `{}`",
                kind.name()
            );
        }
    }
}
