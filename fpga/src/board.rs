//! Bring-up boards: each board's FPGA, package, oscillator, pins and LEDs, and the
//! top that puts `etch_board` (the chip behind its UART bridge, `OUT/rtl/etch_board.v`)
//! on it — with an ECP5 PLL when the chip's clock is not the oscillator's.

use std::fmt::Write;

use crate::error::{FpgaError, Result};
use crate::target::Target;

/// A bring-up board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Board {
    /// Radiona ULX3S (ECP5-85F, CABGA381, 25 MHz, FT231X USB serial).
    Ulx3s,
    /// OrangeCrab r0.2 (ECP5-25F, CSFBGA285, 48 MHz; UART on feather pins 0/1).
    OrangeCrab,
    /// 1BitSquared iCEBreaker (iCE40UP5K, SG48, 12 MHz, FT2232H channel B).
    IceBreaker,
}

impl Board {
    /// Every board, for help texts.
    pub const ALL: [Board; 3] = [Board::Ulx3s, Board::OrangeCrab, Board::IceBreaker];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Board::Ulx3s => "ulx3s",
            Board::OrangeCrab => "orangecrab",
            Board::IceBreaker => "icebreaker",
        }
    }

    /// Every board's name, for messages.
    pub fn names() -> String {
        Board::ALL.map(Board::name).join(", ")
    }

    /// The board's FPGA.
    pub fn target(self) -> Target {
        match self {
            Board::Ulx3s => Target::Ecp5_85k,
            Board::OrangeCrab => Target::Ecp5_25k,
            Board::IceBreaker => Target::Ice40Up5k,
        }
    }

    /// The FPGA package (nextpnr `--package`).
    pub fn package(self) -> &'static str {
        match self {
            Board::Ulx3s => "CABGA381",
            Board::OrangeCrab => "CSFBGA285",
            Board::IceBreaker => "SG48",
        }
    }

    /// The oscillator on `clk`, MHz.
    pub fn clock_mhz(self) -> f64 {
        match self {
            Board::Ulx3s => 25.0,
            Board::OrangeCrab => 48.0,
            Board::IceBreaker => 12.0,
        }
    }

    /// Whether the LEDs light on a low level.
    pub fn led_active_low(self) -> bool {
        !matches!(self, Board::Ulx3s)
    }

    /// The constraint file's name and text for `etch_board`'s ports.
    pub fn constraints(self) -> (&'static str, String) {
        match self {
            Board::Ulx3s => ("board.lpf", ecp5_lpf(25.0, "G2", "M1", "L4", ["B2", "C2"])),
            // OrangeCrab: the RGB LED's red and green; the UART on feather pins 0 (RX)
            // and 1 (TX), for a 3.3 V USB-serial adapter.
            Board::OrangeCrab => (
                "board.lpf",
                ecp5_lpf(48.0, "A9", "N17", "M18", ["K4", "M3"]),
            ),
            Board::IceBreaker => (
                "board.pcf",
                // FT2232H channel B: RX on pin 6, TX on pin 9; LEDs red (11), green (37).
                "set_io -nowarn clk 35\nset_io -nowarn uart_rx 6\nset_io -nowarn uart_tx 9\nset_io -nowarn led[0] 11\nset_io -nowarn led[1] 37\n".to_string(),
            ),
        }
    }
}

fn ecp5_lpf(mhz: f64, clk: &str, rx: &str, tx: &str, leds: [&str; 2]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "LOCATE COMP \"clk\" SITE \"{clk}\";");
    let _ = writeln!(s, "IOBUF PORT \"clk\" PULLMODE=NONE IO_TYPE=LVCMOS33;");
    let _ = writeln!(s, "FREQUENCY PORT \"clk\" {mhz} MHZ;");
    let _ = writeln!(s, "LOCATE COMP \"uart_rx\" SITE \"{rx}\";");
    let _ = writeln!(s, "IOBUF PORT \"uart_rx\" PULLMODE=UP IO_TYPE=LVCMOS33;");
    let _ = writeln!(s, "LOCATE COMP \"uart_tx\" SITE \"{tx}\";");
    let _ = writeln!(s, "IOBUF PORT \"uart_tx\" IO_TYPE=LVCMOS33 DRIVE=4;");
    for (i, pin) in leds.iter().enumerate() {
        let _ = writeln!(s, "LOCATE COMP \"led[{i}]\" SITE \"{pin}\";");
        let _ = writeln!(s, "IOBUF PORT \"led[{i}]\" IO_TYPE=LVCMOS33 DRIVE=4;");
    }
    s
}

/// Clock cycles per UART bit for `clock_mhz` and `baud`, or why it cannot work: the
/// receiver needs at least 4 samples per bit, and the rate error must stay within 2 %.
pub fn uart_divisor(clock_mhz: f64, baud: u32) -> Result<u16> {
    let exact = clock_mhz * 1e6 / baud as f64;
    let d = exact.round();
    if !(4.0..=65535.0).contains(&d) {
        return Err(FpgaError::Request(format!(
            "{baud} baud at {clock_mhz} MHz needs {exact:.1} clock cycles per bit; 4 to 65535 work"
        )));
    }
    if (d - exact).abs() / exact > 0.02 {
        return Err(FpgaError::Request(format!(
            "{baud} baud at {clock_mhz} MHz is {:.1} % off with {d} cycles per bit; choose a baud rate that divides the clock",
            100.0 * (d - exact).abs() / exact
        )));
    }
    Ok(d as u16)
}

/// An ECP5 PLL (`EHXPLLL`) setting that makes the chip's clock from a board's
/// oscillator, with its output fed back: `output = input · clkfb_div / clki_div`, the
/// VCO at `output · clkop_div`. Serialized as it is into `etch synth`'s report.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Ecp5Pll {
    /// The oscillator, MHz.
    pub input_mhz: f64,
    /// The clock it makes, MHz.
    pub output_mhz: f64,
    /// The VCO, MHz.
    pub vco_mhz: f64,
    /// Input divider (1..=128).
    pub clki_div: u32,
    /// Feedback divider (1..=80).
    pub clkfb_div: u32,
    /// Output divider (1..=128).
    pub clkop_div: u32,
}

/// The ECP5 PLL setting closest to `want_mhz` from `input_mhz` within the PLL's limits
/// (phase detector 3.125–400 MHz, VCO 400–800 MHz, output 3.125–400 MHz), or why there
/// is none within 1 %. Ties go to the VCO nearest the middle of its range (600 MHz).
pub fn ecp5_pll(input_mhz: f64, want_mhz: f64) -> Result<Ecp5Pll> {
    let mut best: Option<Ecp5Pll> = None;
    for clki_div in 1..=128u32 {
        let pfd = input_mhz / clki_div as f64;
        if !(3.125..=400.0).contains(&pfd) {
            continue;
        }
        for clkfb_div in 1..=80u32 {
            let mhz = pfd * clkfb_div as f64;
            if !(3.125..=400.0).contains(&mhz) {
                continue;
            }
            for clkop_div in 1..=128u32 {
                let vco = mhz * clkop_div as f64;
                if !(400.0..=800.0).contains(&vco) {
                    continue;
                }
                let candidate = Ecp5Pll {
                    input_mhz,
                    output_mhz: mhz,
                    vco_mhz: vco,
                    clki_div,
                    clkfb_div,
                    clkop_div,
                };
                let better = match &best {
                    None => true,
                    Some(b) => {
                        let (e, be) = ((mhz - want_mhz).abs(), (b.output_mhz - want_mhz).abs());
                        e < be - 1e-9
                            || (e <= be + 1e-9 && (vco - 600.0).abs() < (b.vco_mhz - 600.0).abs())
                    }
                };
                if better {
                    best = Some(candidate);
                }
            }
        }
    }
    match best {
        Some(p) if (p.output_mhz - want_mhz).abs() <= 0.01 * want_mhz => Ok(p),
        Some(p) => Err(FpgaError::Request(format!(
            "the ECP5 PLL cannot make {want_mhz} MHz from {input_mhz} MHz (closest: {:.3} MHz)",
            p.output_mhz
        ))),
        None => Err(FpgaError::Request(format!(
            "the ECP5 PLL cannot make {want_mhz} MHz from {input_mhz} MHz"
        ))),
    }
}

/// `etch_top`: `etch_board` with its divisor and LED polarity for one board. With a
/// PLL the chip runs from the PLL's clock, stopped by the global buffer (`DCCA`) until
/// the PLL locks, so the board's power-on reset counts only clean cycles.
pub fn top_verilog(
    header: &str,
    divisor: u16,
    led_active_low: bool,
    pll: Option<&Ecp5Pll>,
) -> String {
    let (clock, pll_text) = match pll {
        None => ("clk", String::new()),
        Some(p) => (
            "clk_chip",
            format!(
                "    // The chip's clock: {mhz:.3} MHz from the {input} MHz oscillator (VCO {vco:.1} MHz).
    wire clk_pll, pll_locked, clk_chip;
    (* FREQUENCY_PIN_CLKI=\"{input}\", FREQUENCY_PIN_CLKOP=\"{mhz:.3}\" *)
    (* ICP_CURRENT=\"12\", LPF_RESISTOR=\"8\", MFG_ENABLE_FILTEROPAMP=\"1\", MFG_GMCREF_SEL=\"2\" *)
    EHXPLLL #(
        .PLLRST_ENA(\"DISABLED\"), .INTFB_WAKE(\"DISABLED\"), .STDBY_ENABLE(\"DISABLED\"),
        .DPHASE_SOURCE(\"DISABLED\"), .OUTDIVIDER_MUXA(\"DIVA\"), .FEEDBK_PATH(\"CLKOP\"),
        .CLKI_DIV({clki}), .CLKFB_DIV({clkfb}), .CLKOP_ENABLE(\"ENABLED\"), .CLKOP_DIV({clkop}),
        .CLKOP_CPHASE({cphase}), .CLKOP_FPHASE(0)
    ) u_pll (
        .CLKI(clk), .CLKFB(clk_pll), .CLKOP(clk_pll), .LOCK(pll_locked),
        .RST(1'b0), .STDBY(1'b0), .PHASESEL0(1'b0), .PHASESEL1(1'b0), .PHASEDIR(1'b1),
        .PHASESTEP(1'b1), .PHASELOADREG(1'b1), .PLLWAKESYNC(1'b0), .ENCLKOP(1'b0)
    );
    DCCA u_clock_gate (.CLKI(clk_pll), .CE(pll_locked), .CLKO(clk_chip));
",
                mhz = p.output_mhz,
                input = p.input_mhz,
                vco = p.vco_mhz,
                clki = p.clki_div,
                clkfb = p.clkfb_div,
                clkop = p.clkop_div,
                cphase = (p.clkop_div / 2).saturating_sub(1),
            ),
        ),
    };
    format!(
        "{header}
module etch_top (
    input  wire       clk,
    input  wire       uart_rx,
    output wire       uart_tx,
    output wire [1:0] led
);
{pll_text}    etch_board #(.DIVISOR({divisor}), .LED_ACTIVE_LOW({})) u_board (
        .clk({clock}), .uart_rx(uart_rx), .uart_tx(uart_tx), .led(led)
    );
endmodule
",
        led_active_low as u8
    )
}

impl std::str::FromStr for Board {
    type Err = FpgaError;

    fn from_str(name: &str) -> Result<Self> {
        Board::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| {
                FpgaError::Request(format!(
                    "unknown board {name:?}: choose one of {}",
                    Board::names()
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisors_of_the_boards_at_one_megabaud_are_exact() {
        assert_eq!(uart_divisor(25.0, 1_000_000).unwrap(), 25);
        assert_eq!(uart_divisor(48.0, 1_000_000).unwrap(), 48);
        assert_eq!(uart_divisor(12.0, 1_000_000).unwrap(), 12);
        assert_eq!(uart_divisor(25.0, 115_200).unwrap(), 217);
        assert!(uart_divisor(12.0, 4_000_000).is_err());
        assert!(uart_divisor(25.0, 3_000_000)
            .unwrap_err()
            .to_string()
            .contains("off"));
    }

    #[test]
    fn pll_settings_stay_inside_the_ecp5_limits_and_hit_the_clock() {
        for want in [10.0, 12.5, 20.0, 22.0, 30.0, 50.0, 100.0] {
            let p = ecp5_pll(25.0, want).unwrap();
            assert!((p.output_mhz - want).abs() <= 0.01 * want, "{want}: {p:?}");
            assert!((400.0..=800.0).contains(&p.vco_mhz), "{p:?}");
            assert!((p.vco_mhz - p.output_mhz * p.clkop_div as f64).abs() < 1e-9);
            assert!(25.0 / p.clki_div as f64 >= 3.125, "{p:?}");
            assert!((p.output_mhz - 25.0 * p.clkfb_div as f64 / p.clki_div as f64).abs() < 1e-9);
        }
        let p = ecp5_pll(25.0, 20.0).unwrap();
        assert_eq!(p.output_mhz, 20.0);
        assert!(ecp5_pll(25.0, 1.0)
            .unwrap_err()
            .to_string()
            .contains("cannot make 1 MHz"));
        let top = top_verilog("// h", 20, false, Some(&p));
        assert!(
            top.contains("EHXPLLL") && top.contains(".clk(clk_chip)"),
            "{top}"
        );
        assert!(
            top.contains(&format!(".CLKFB_DIV({})", p.clkfb_div)),
            "{top}"
        );
        assert!(top.contains("DCCA u_clock_gate (.CLKI(clk_pll), .CE(pll_locked)"));
        let plain = top_verilog("// h", 25, false, None);
        assert!(!plain.contains("EHXPLLL") && plain.contains(".clk(clk)"));
    }

    #[test]
    fn boards_round_trip_their_names() {
        for b in Board::ALL {
            assert_eq!(b.name().parse::<Board>().unwrap(), b);
            let (file, text) = b.constraints();
            assert!(text.contains("uart_rx") && text.contains("uart_tx") && text.contains("clk"));
            assert!(file.ends_with(if b.target().name().starts_with("ice40") {
                ".pcf"
            } else {
                ".lpf"
            }));
        }
        let e = "de10".parse::<Board>().unwrap_err().to_string();
        assert!(e.contains("ulx3s, orangecrab, icebreaker"), "{e}");
    }
}
