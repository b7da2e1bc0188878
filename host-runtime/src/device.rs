//! Device specifications, as `etch run --device` and the C ABI take them:
//! `sim:OUT`, `vfio-user:SOCKET`, `vfio:DDDD:BB:DD.F`, `serial:PORT[,BAUD]`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use etch_driver::{Device, Timeout};

use crate::error::{Result, RuntimeError};

/// Where a chip is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The Verilated chip of build directory `OUT`, in this process.
    Sim(PathBuf),
    /// A vfio-user server (`etch serve OUT --socket SOCKET`).
    VfioUser(PathBuf),
    /// A board on PCIe bound to vfio-pci, by PCI address.
    Vfio(String),
    /// A board top behind its UART bridge, and the baud rate.
    Serial(PathBuf, u32),
}

impl DeviceSpec {
    /// Parses a device specification.
    pub fn parse(s: &str) -> Result<Self> {
        let usage = || {
            RuntimeError::InvalidArgument(format!(
                "--device {s:?}: expected sim:OUT, vfio-user:SOCKET, vfio:DDDD:BB:DD.F or serial:PORT[,BAUD]"
            ))
        };
        let (kind, rest) = s.split_once(':').ok_or_else(usage)?;
        if rest.is_empty() {
            return Err(usage());
        }
        Ok(match kind {
            "sim" => DeviceSpec::Sim(PathBuf::from(rest)),
            "vfio-user" => DeviceSpec::VfioUser(PathBuf::from(rest)),
            "vfio" => DeviceSpec::Vfio(etch_driver::sysfs::parse_address(rest)?),
            "serial" => {
                let (path, baud) = etch_driver::serial::parse_spec(rest)?;
                DeviceSpec::Serial(path, baud)
            }
            _ => return Err(usage()),
        })
    }

    /// The build directory a `sim:` device names (its manifest is the default).
    pub fn build_dir(&self) -> Option<&Path> {
        match self {
            DeviceSpec::Sim(out) => Some(out),
            _ => None,
        }
    }

    /// Opens the device, with the command timeout that suits it: simulated cycles in
    /// process, `timeout` of wall-clock time without progress otherwise. `sysfs` is
    /// where `vfio:` devices are looked up (`/sys`).
    pub fn open(&self, timeout: Duration, sysfs: &Path) -> Result<(Box<dyn Device>, Timeout)> {
        let wall = Timeout::Wall(timeout);
        Ok(match self {
            #[cfg(feature = "sim")]
            DeviceSpec::Sim(out) => {
                let m = etch_contract::Manifest::load(out)?;
                let dev = etch_driver::InProcess::open(out, &m.design_hash)?;
                (Box::new(dev), Timeout::Slices(2000))
            }
            #[cfg(not(feature = "sim"))]
            DeviceSpec::Sim(out) => {
                return Err(RuntimeError::InvalidArgument(format!(
                    "sim:{}: this build has no simulator backend (etch-runtime's `sim` feature); use vfio-user:SOCKET with `etch serve`",
                    out.display()
                )))
            }
            DeviceSpec::VfioUser(path) => (
                Box::new(etch_driver::VfioUser::connect(path, timeout)?),
                wall,
            ),
            DeviceSpec::Vfio(address) => {
                (Box::new(etch_driver::VfioPci::open(address, sysfs)?), wall)
            }
            DeviceSpec::Serial(path, baud) => (
                Box::new(etch_driver::Serial::open(path, *baud, timeout)?),
                wall,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_or_say_what_is_expected() {
        assert_eq!(
            DeviceSpec::parse("sim:out/chip").unwrap(),
            DeviceSpec::Sim("out/chip".into())
        );
        assert_eq!(
            DeviceSpec::parse("serial:/dev/ttyUSB0,115200").unwrap(),
            DeviceSpec::Serial("/dev/ttyUSB0".into(), 115_200)
        );
        assert!(matches!(
            DeviceSpec::parse("vfio:0000:03:00.0").unwrap(),
            DeviceSpec::Vfio(_)
        ));
        for bad in ["", "sim:", "usb:x", "nothing"] {
            let e = DeviceSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains("expected sim:OUT"), "{bad}: {e}");
        }
    }
}
