//! The FPGAs the flow targets, with what each has.

use crate::error::{FpgaError, Result};

/// FPGA families the flow knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Lattice ECP5 (yosys `synth_ecp5`, nextpnr-ecp5, ecppack).
    Ecp5,
    /// Lattice iCE40 (yosys `synth_ice40`, nextpnr-ice40, icepack).
    Ice40,
}

/// An FPGA part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Target {
    /// Lattice LFE5U-85F.
    #[serde(rename = "ecp5-85k")]
    Ecp5_85k,
    /// Lattice LFE5U-25F.
    #[serde(rename = "ecp5-25k")]
    Ecp5_25k,
    /// Lattice iCE40UP5K.
    #[serde(rename = "ice40-up5k")]
    Ice40Up5k,
}

/// What a part has: logic cells, flip-flops, block RAMs, multipliers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Resources {
    /// LUT4s.
    pub luts: u64,
    /// Flip-flops.
    pub ffs: u64,
    /// Block RAMs (ECP5 DP16KD of 18 Kbit, iCE40 SB_RAM40_4K of 4 Kbit).
    pub brams: u64,
    /// Multipliers (ECP5 MULT18X18D, iCE40 SB_MAC16).
    pub dsps: u64,
}

impl Target {
    /// Every target, in the order help texts list them.
    pub const ALL: [Target; 3] = [Target::Ecp5_85k, Target::Ecp5_25k, Target::Ice40Up5k];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Ecp5_85k => "ecp5-85k",
            Target::Ecp5_25k => "ecp5-25k",
            Target::Ice40Up5k => "ice40-up5k",
        }
    }

    /// Its family.
    pub fn family(self) -> Family {
        match self {
            Target::Ecp5_85k | Target::Ecp5_25k => Family::Ecp5,
            Target::Ice40Up5k => Family::Ice40,
        }
    }

    /// nextpnr's device flag.
    pub fn device_flag(self) -> &'static str {
        match self {
            Target::Ecp5_85k => "--85k",
            Target::Ecp5_25k => "--25k",
            Target::Ice40Up5k => "--up5k",
        }
    }

    /// The package when no board names one.
    pub fn package(self) -> &'static str {
        match self {
            Target::Ecp5_85k | Target::Ecp5_25k => "CABGA381",
            Target::Ice40Up5k => "SG48",
        }
    }

    /// What the part has.
    pub fn resources(self) -> Resources {
        match self {
            Target::Ecp5_85k => Resources {
                luts: 83_640,
                ffs: 83_640,
                brams: 208,
                dsps: 156,
            },
            Target::Ecp5_25k => Resources {
                luts: 24_288,
                ffs: 24_288,
                brams: 56,
                dsps: 28,
            },
            Target::Ice40Up5k => Resources {
                luts: 5_280,
                ffs: 5_280,
                brams: 30,
                dsps: 8,
            },
        }
    }

    /// Every target's name, for messages.
    pub fn names() -> String {
        Target::ALL.map(Target::name).join(", ")
    }
}

impl std::str::FromStr for Target {
    type Err = FpgaError;

    fn from_str(name: &str) -> Result<Self> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                FpgaError::Request(format!(
                    "unknown target {name:?}: choose one of {}",
                    Target::names()
                ))
            })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_their_names_and_refuse_others() {
        for t in Target::ALL {
            assert_eq!(t.name().parse::<Target>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), t.name());
        }
        let e = "virtex".parse::<Target>().unwrap_err().to_string();
        assert!(e.contains("ecp5-85k, ecp5-25k, ice40-up5k"), "{e}");
    }
}
