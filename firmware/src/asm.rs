//! Firmware images, the assembler and the disassembler.
//!
//! Assembly, one statement per line (`;` starts a comment):
//!
//! ```text
//! .equ  LANES 64              ; a named constant
//! .param 3 matvec 0 4 64 2    ; parameter row 3 (kind for the reader; 16 values at most)
//! loop:                       ; a label
//!     li    r1, LANES
//!     addi  r2, r1, -1
//!     beq   r1, r2, loop
//!     ld    r3, 4(r2)
//!     csrw  SQ_HEAD, r3       ; BAR0 register names from `regs`
//!     dmard r4, r5, r6, 16    ; rd, spad word, host address, words
//!     vop   matvec, 3, r1, r2, r3
//! ```

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use crate::isa::{Instr, Op, Params, VKind};
use crate::regs;

/// `'ETFW'`: first word of a firmware image.
pub const IMAGE_MAGIC: u32 = 0x4554_4657;

/// A firmware program: code and the vector operations' parameter table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    /// Firmware version (shown in FW_VERSION).
    pub version: u32,
    /// Encoded instructions; execution starts at 0.
    pub code: Vec<u64>,
    /// Parameter rows of the vector operations.
    pub params: Vec<Params>,
}

/// An assembly or image error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsmError {
    /// 1-based source line (0 for image errors).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl core::fmt::Display for AsmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

fn err(line: usize, message: impl Into<String>) -> AsmError {
    AsmError {
        line,
        message: message.into(),
    }
}

impl Program {
    /// The image bytes: magic, version, code length, parameter rows, then the code
    /// (u64 little-endian) and the rows (16 × u16 little-endian).
    pub fn to_image(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + 8 * self.code.len() + 32 * self.params.len());
        for w in [
            IMAGE_MAGIC,
            self.version,
            self.code.len() as u32,
            self.params.len() as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        for c in &self.code {
            b.extend_from_slice(&c.to_le_bytes());
        }
        for row in &self.params {
            for v in row {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        b
    }

    /// Parses image bytes.
    pub fn from_image(b: &[u8]) -> Result<Self, AsmError> {
        let word = |i: usize| -> Result<u32, AsmError> {
            b.get(4 * i..4 * i + 4)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                .ok_or_else(|| err(0, "firmware image is truncated"))
        };
        if word(0)? != IMAGE_MAGIC {
            return Err(err(0, "not an etch firmware image (bad magic)"));
        }
        let (version, n_code, n_params) = (word(1)?, word(2)? as usize, word(3)? as usize);
        let need = 16usize
            .checked_add(
                n_code
                    .checked_mul(8)
                    .ok_or_else(|| err(0, "bad code length"))?,
            )
            .and_then(|v| v.checked_add(n_params.checked_mul(32)?))
            .ok_or_else(|| err(0, "bad image lengths"))?;
        if b.len() != need {
            return Err(err(
                0,
                format!(
                    "firmware image is {} bytes, its header says {need}",
                    b.len()
                ),
            ));
        }
        let code = (0..n_code)
            .map(|i| {
                let s = &b[16 + 8 * i..24 + 8 * i];
                u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
            })
            .collect();
        let base = 16 + 8 * n_code;
        let params = (0..n_params)
            .map(|r| {
                let mut row = [0u16; 16];
                for (k, v) in row.iter_mut().enumerate() {
                    let at = base + 32 * r + 2 * k;
                    *v = u16::from_le_bytes([b[at], b[at + 1]]);
                }
                row
            })
            .collect();
        Ok(Program {
            version,
            code,
            params,
        })
    }
}

fn csr_index(name: &str) -> Option<u16> {
    regs::ALL
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, i)| i)
}

fn csr_name(i: u32) -> Option<&'static str> {
    regs::ALL
        .iter()
        .find(|&&(_, v)| v as u32 == i)
        .map(|&(n, _)| n)
}

fn parse_number(s: &str) -> Option<i64> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s),
    };
    let t = t.replace('_', "");
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else {
        t.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

struct Assembler<'a> {
    labels: Vec<(&'a str, i64)>,
    equs: Vec<(&'a str, i64)>,
}

impl<'a> Assembler<'a> {
    fn value(&self, s: &str, line: usize) -> Result<i64, AsmError> {
        if let Some(v) = parse_number(s) {
            return Ok(v);
        }
        for (n, v) in self.equs.iter().chain(&self.labels) {
            if *n == s {
                return Ok(*v);
            }
        }
        if let Some(i) = csr_index(s) {
            return Ok(i as i64);
        }
        Err(err(line, format!("unknown value or label `{s}`")))
    }

    fn reg(&self, s: &str, line: usize) -> Result<u8, AsmError> {
        s.strip_prefix('r')
            .and_then(|n| n.parse::<u8>().ok())
            .filter(|&n| n < 16)
            .ok_or_else(|| err(line, format!("`{s}` is not a register r0..r15")))
    }
}

fn split_operands(s: &str) -> Vec<&str> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

/// Parses `imm(rN)`.
fn mem_operand(s: &str) -> Option<(&str, &str)> {
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    Some((s[..open].trim(), s[open + 1..close].trim()))
}

/// Assembles a program.
pub fn assemble(source: &str, version: u32) -> Result<Program, AsmError> {
    let lines: Vec<(usize, &str)> = source
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split(';').next().unwrap_or("").trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    // Pass 1: labels and constants.
    let mut asm = Assembler {
        labels: Vec::new(),
        equs: Vec::new(),
    };
    let mut pc = 0i64;
    for &(n, l) in &lines {
        if let Some(label) = l.strip_suffix(':') {
            if asm.labels.iter().any(|(x, _)| *x == label) {
                return Err(err(n, format!("label `{label}` defined twice")));
            }
            asm.labels.push((label, pc));
        } else if let Some(rest) = l.strip_prefix(".equ") {
            let mut it = rest.split_whitespace();
            let (Some(name), Some(v)) = (it.next(), it.next()) else {
                return Err(err(n, ".equ needs a name and a value"));
            };
            let v = asm.value(v, n)?;
            asm.equs.push((name, v));
        } else if !l.starts_with('.') {
            pc += 1;
        }
    }
    // Pass 2: encode.
    let mut program = Program {
        version,
        ..Program::default()
    };
    for &(n, l) in &lines {
        if l.ends_with(':') || l.starts_with(".equ") {
            continue;
        }
        if let Some(rest) = l.strip_prefix(".param") {
            let mut it = rest.split_whitespace();
            let index = it
                .next()
                .ok_or_else(|| err(n, ".param needs a row index"))
                .and_then(|s| asm.value(s, n))? as usize;
            let kind = it.next().ok_or_else(|| err(n, ".param needs a kind"))?;
            if !VKind::ALL.iter().any(|k| k.name() == kind) {
                return Err(err(n, format!("unknown vector kind `{kind}`")));
            }
            let mut row = [0u16; 16];
            for (k, v) in it.enumerate() {
                if k >= 16 {
                    return Err(err(n, "a parameter row holds 16 values"));
                }
                row[k] = asm.value(v, n)? as u16;
            }
            if program.params.len() <= index {
                program.params.resize(index + 1, [0; 16]);
            }
            program.params[index] = row;
            continue;
        }
        if l.starts_with('.') {
            return Err(err(n, format!("unknown directive `{l}`")));
        }
        let (mnemonic, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        let op = Op::ALL
            .iter()
            .copied()
            .find(|o| o.mnemonic() == mnemonic)
            .ok_or_else(|| err(n, format!("unknown instruction `{mnemonic}`")))?;
        let ops = split_operands(rest);
        let want = |k: usize| -> Result<(), AsmError> {
            if ops.len() == k {
                Ok(())
            } else {
                Err(err(
                    n,
                    format!("`{mnemonic}` takes {k} operands, found {}", ops.len()),
                ))
            }
        };
        let r = |i: usize| asm.reg(ops[i], n);
        let v = |i: usize| asm.value(ops[i], n);
        let mut ins = Instr {
            op: op as u8,
            ..Instr::default()
        };
        use Op::*;
        match op {
            Nop | Halt => want(0)?,
            Li | Lih => {
                want(2)?;
                ins.rd = r(0)?;
                ins.imm = v(1)? as u32;
            }
            Add | Sub | And | Or | Xor => {
                want(3)?;
                (ins.rd, ins.ra, ins.rb) = (r(0)?, r(1)?, r(2)?);
            }
            Addi | Shli | Shri | Muli | Andi => {
                want(3)?;
                (ins.rd, ins.ra) = (r(0)?, r(1)?);
                ins.imm = v(2)? as u32;
            }
            Beq | Bne | Bltu | Bgeu => {
                want(3)?;
                (ins.ra, ins.rb) = (r(0)?, r(1)?);
                ins.imm = v(2)? as u32;
            }
            Jmp | Call => {
                want(1)?;
                ins.imm = v(0)? as u32;
                if op == Call {
                    ins.rd = 15;
                }
            }
            Jr => {
                want(1)?;
                ins.ra = r(0)?;
            }
            Ld | Ldd | St | Std => {
                want(2)?;
                let (off, base) =
                    mem_operand(ops[1]).ok_or_else(|| err(n, "expected `offset(rN)`"))?;
                let reg = asm.reg(ops[0], n)?;
                ins.ra = asm.reg(base, n)?;
                ins.imm = if off.is_empty() {
                    0
                } else {
                    asm.value(off, n)? as u32
                };
                if matches!(op, Ld | Ldd) {
                    ins.rd = reg;
                } else {
                    ins.rb = reg;
                }
            }
            Csrr => {
                want(2)?;
                ins.rd = r(0)?;
                ins.imm = v(1)? as u32;
            }
            Csrw => {
                want(2)?;
                ins.imm = v(0)? as u32;
                ins.ra = r(1)?;
            }
            Waitne => {
                want(2)?;
                ins.ra = r(0)?;
                ins.imm = v(1)? as u32;
            }
            Irq => {
                want(1)?;
                ins.imm = v(0)? as u32;
            }
            Dmard | Dmawr => {
                want(4)?;
                (ins.rd, ins.ra, ins.rb) = (r(0)?, r(1)?, r(2)?);
                let words = v(3)?;
                if words <= 0 || words % 2 != 0 {
                    return Err(err(n, "DMA word counts are even and positive"));
                }
                ins.imm = words as u32;
            }
            Vop => {
                // A last operand `indep`: the operation reads nothing the one before it
                // writes (`rd` = 1; a chip with the queue starts it without waiting
                // for those writes).
                let mut ops = ops.clone();
                if ops.last().is_some_and(|o| *o == "indep") {
                    ops.pop();
                    ins.rd = 1;
                }
                if ops.len() < 2 || ops.len() > 5 {
                    return Err(err(
                        n,
                        "`vop` takes a kind, a parameter row, up to 3 registers and `indep`",
                    ));
                }
                let kind = VKind::ALL
                    .iter()
                    .copied()
                    .find(|k| k.name() == ops[0])
                    .ok_or_else(|| err(n, format!("unknown vector kind `{}`", ops[0])))?;
                ins.aux = kind as u8;
                ins.imm = v(1)? as u32;
                let regs: Result<Vec<u8>, _> = ops[2..].iter().map(|s| asm.reg(s, n)).collect();
                let regs = regs?;
                ins.ra = regs.first().copied().unwrap_or(0);
                ins.rb = regs.get(1).copied().unwrap_or(0);
                ins.rc = regs.get(2).copied().unwrap_or(0);
            }
        }
        program.code.push(ins.encode());
    }
    Ok(program)
}

/// One instruction as assembly text (branch targets as numbers).
pub fn disassemble_one(w: u64) -> String {
    let i = Instr::decode(w);
    let Some(op) = Op::from_u8(i.op) else {
        return format!(".word 0x{w:016x} ; invalid opcode");
    };
    let m = op.mnemonic();
    let imm = i.imm as i32;
    let csr = |x: u32| csr_name(x).map_or_else(|| x.to_string(), ToString::to_string);
    use Op::*;
    match op {
        Nop | Halt => m.to_string(),
        Li | Lih => format!("{m} r{}, {}", i.rd, imm),
        Add | Sub | And | Or | Xor => format!("{m} r{}, r{}, r{}", i.rd, i.ra, i.rb),
        Addi => format!("{m} r{}, r{}, {}", i.rd, i.ra, imm),
        Shli | Shri | Muli | Andi => format!("{m} r{}, r{}, {}", i.rd, i.ra, i.imm),
        Beq | Bne | Bltu | Bgeu => format!("{m} r{}, r{}, {}", i.ra, i.rb, i.imm),
        Jmp | Call => format!("{m} {}", i.imm),
        Jr => format!("{m} r{}", i.ra),
        Ld | Ldd => format!("{m} r{}, {}(r{})", i.rd, i.imm, i.ra),
        St | Std => format!("{m} r{}, {}(r{})", i.rb, i.imm, i.ra),
        Csrr => format!("{m} r{}, {}", i.rd, csr(i.imm)),
        Csrw => format!("{m} {}, r{}", csr(i.imm), i.ra),
        Waitne => format!("{m} r{}, {}", i.ra, csr(i.imm)),
        Irq => format!("{m} {}", i.imm),
        Dmard | Dmawr => format!("{m} r{}, r{}, r{}, {}", i.rd, i.ra, i.rb, i.imm),
        Vop => {
            let kind = VKind::from_u8(i.aux).map_or("?", VKind::name);
            let indep = if i.rd != 0 { ", indep" } else { "" };
            format!(
                "{m} {kind}, {}, r{}, r{}, r{}{indep}",
                i.imm, i.ra, i.rb, i.rc
            )
        }
    }
}

/// The whole program as assembly that [`assemble`] turns back into the same program.
pub fn disassemble(p: &Program) -> String {
    let mut out = String::new();
    for (i, row) in p.params.iter().enumerate() {
        let kind = p
            .code
            .iter()
            .map(|&w| Instr::decode(w))
            .find(|ins| ins.op == Op::Vop as u8 && ins.imm as usize == i)
            .and_then(|ins| VKind::from_u8(ins.aux))
            .unwrap_or(VKind::Bist);
        let _ = write!(out, ".param {i} {}", kind.name());
        for v in row {
            let _ = write!(out, " {v}");
        }
        out.push('\n');
    }
    for (pc, &w) in p.code.iter().enumerate() {
        let _ = writeln!(out, "    {:<40} ; {pc}", disassemble_one(w));
    }
    out
}
