//! Finding etch boards: PCI functions in sysfs (`/sys/bus/pci/devices/*`) by vendor and
//! device ID, with the driver they are bound to and their IOMMU group. The root is a
//! parameter so that tests (and `etch devices --sysfs`) can point at a fake tree.

use std::path::{Path, PathBuf};

use etch_firmware::regs::pci;

use crate::error::{DriverError, Result};

/// One PCI function as sysfs describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PciFunction {
    /// Its address, `DDDD:BB:DD.F`.
    pub address: String,
    /// PCI vendor ID.
    pub vendor: u16,
    /// PCI device ID.
    pub device: u16,
    /// The kernel driver bound to it, if any.
    pub driver: Option<String>,
    /// Its IOMMU group, if the IOMMU is on.
    pub iommu_group: Option<u32>,
    /// Its sysfs directory.
    pub path: PathBuf,
}

impl PciFunction {
    /// Whether this is an etch chip.
    pub fn is_etch(&self) -> bool {
        (self.vendor, self.device) == (pci::VENDOR_ID, pci::DEVICE_ID)
    }

    /// Whether it is bound to vfio-pci (and so usable by the VFIO backend).
    pub fn bound_to_vfio(&self) -> bool {
        self.driver.as_deref() == Some("vfio-pci")
    }

    /// What stands between this function and `etch run --device vfio:…`, if anything.
    pub fn problem(&self, dev_vfio: &Path) -> Option<String> {
        if !self.bound_to_vfio() {
            return Some(format!(
                "bound to {}, not vfio-pci: see docs/driver.md, \"Binding a board\"",
                self.driver.as_deref().unwrap_or("no driver")
            ));
        }
        let Some(group) = self.iommu_group else {
            return Some("no IOMMU group: enable the IOMMU (intel_iommu=on / amd_iommu=on)".into());
        };
        let node = dev_vfio.join(group.to_string());
        if !node.exists() {
            return Some(format!("{} does not exist", node.display()));
        }
        if std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&node)
            .is_err()
        {
            return Some(format!(
                "{} is not readable and writable by this user (see docs/driver.md, \"Permissions\")",
                node.display()
            ));
        }
        None
    }
}

/// Checks and normalizes a PCI address: `DDDD:BB:DD.F`, or `BB:DD.F` in domain 0.
pub fn parse_address(s: &str) -> Result<String> {
    let bad = || {
        DriverError::InvalidArgument(format!(
            "{s:?} is not a PCI address (DDDD:BB:DD.F, for example 0000:01:00.0)"
        ))
    };
    let full = if s.matches(':').count() == 1 {
        format!("0000:{s}")
    } else {
        s.to_string()
    };
    let (domain, rest) = full.split_once(':').ok_or_else(bad)?;
    let (bus, rest) = rest.split_once(':').ok_or_else(bad)?;
    let (slot, func) = rest.split_once('.').ok_or_else(bad)?;
    let hex = |t: &str, digits: usize, max: u32| {
        t.len() == digits
            && t.chars().all(|c| c.is_ascii_hexdigit())
            && u32::from_str_radix(t, 16).is_ok_and(|v| v <= max)
    };
    if !(hex(domain, 4, 0xFFFF) && hex(bus, 2, 0xFF) && hex(slot, 2, 0x1F) && hex(func, 1, 7)) {
        return Err(bad());
    }
    Ok(full.to_ascii_lowercase())
}

fn read_id(dir: &Path, name: &str) -> Option<u16> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    u16::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
}

fn link_name(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// Reads one function's directory.
fn function_at(dir: &Path, address: &str) -> Option<PciFunction> {
    Some(PciFunction {
        address: address.to_string(),
        vendor: read_id(dir, "vendor")?,
        device: read_id(dir, "device")?,
        driver: link_name(&dir.join("driver")),
        iommu_group: link_name(&dir.join("iommu_group")).and_then(|g| g.parse().ok()),
        path: dir.to_path_buf(),
    })
}

/// Every PCI function under `sysfs` (normally `/sys`), sorted by address.
pub fn scan(sysfs: &Path) -> Result<Vec<PciFunction>> {
    let devices = sysfs.join("bus/pci/devices");
    let entries = std::fs::read_dir(&devices).map_err(|e| {
        DriverError::InvalidArgument(format!("cannot list {}: {e}", devices.display()))
    })?;
    let mut out: Vec<PciFunction> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            function_at(&e.path(), &name)
        })
        .collect();
    out.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(out)
}

/// The etch chips under `sysfs`.
pub fn etch_devices(sysfs: &Path) -> Result<Vec<PciFunction>> {
    Ok(scan(sysfs)?
        .into_iter()
        .filter(PciFunction::is_etch)
        .collect())
}

/// The function at `address`, which must exist and be an etch chip.
pub fn etch_function(sysfs: &Path, address: &str) -> Result<PciFunction> {
    let address = parse_address(address)?;
    let dir = sysfs.join("bus/pci/devices").join(&address);
    let f = function_at(&dir, &address).ok_or_else(|| {
        DriverError::NotEtchDevice(format!(
            "no PCI function {address} under {}",
            sysfs.display()
        ))
    })?;
    if !f.is_etch() {
        return Err(DriverError::NotEtchDevice(format!(
            "{address} is PCI device {:04x}:{:04x}, not an etch chip ({:04x}:{:04x})",
            f.vendor,
            f.device,
            pci::VENDOR_ID,
            pci::DEVICE_ID
        )));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_normalized() {
        assert_eq!(parse_address("01:00.0").unwrap(), "0000:01:00.0");
        assert_eq!(parse_address("0000:AF:1f.7").unwrap(), "0000:af:1f.7");
        for bad in [
            "",
            "01:00",
            "0000:01:20.0",
            "0000:01:00.8",
            "g000:01:00.0",
            "1:0.0",
        ] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }
}
