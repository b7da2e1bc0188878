//! Finding boards without a board: `etch devices` and `etch run --device vfio:…`
//! against a fake sysfs tree (what `/sys/bus/pci/devices` looks like with one etch
//! board bound to vfio-pci, one bound to another driver, and an unrelated device).

mod common;

use std::path::Path;
use std::process::Command;

use etch_firmware::regs::pci;

/// Adds a PCI function to a fake sysfs tree the way the kernel lays it out: the entry
/// in bus/pci/devices is a symlink into devices/, `driver` and `iommu_group` are
/// symlinks whose last component names them.
fn add_function(
    sysfs: &Path,
    address: &str,
    ids: (u16, u16),
    driver: Option<&str>,
    group: Option<u32>,
) {
    let real = sysfs.join("devices/pci0000:00").join(address);
    std::fs::create_dir_all(&real).unwrap();
    std::fs::write(real.join("vendor"), format!("0x{:04x}\n", ids.0)).unwrap();
    std::fs::write(real.join("device"), format!("0x{:04x}\n", ids.1)).unwrap();
    if let Some(d) = driver {
        let dir = sysfs.join("bus/pci/drivers").join(d);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&dir, real.join("driver")).unwrap();
    }
    if let Some(g) = group {
        let dir = sysfs.join("kernel/iommu_groups").join(g.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&dir, real.join("iommu_group")).unwrap();
    }
    let bus = sysfs.join("bus/pci/devices");
    std::fs::create_dir_all(&bus).unwrap();
    std::os::unix::fs::symlink(&real, bus.join(address)).unwrap();
}

fn fake_sysfs(root: &Path) {
    let etch = (pci::VENDOR_ID, pci::DEVICE_ID);
    add_function(
        root,
        "0000:00:02.0",
        (0x8086, 0x1234),
        Some("i915"),
        Some(0),
    );
    add_function(root, "0000:03:00.0", etch, Some("vfio-pci"), Some(7));
    add_function(root, "0000:01:00.0", etch, Some("pci-stub"), Some(5));
}

fn etch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn etch_devices_lists_the_boards_and_what_they_lack() {
    let dir = tempfile::tempdir().unwrap();
    let sysfs = dir.path().join("sys");
    fake_sysfs(&sysfs);
    let dev_vfio = dir.path().join("dev-vfio");
    std::fs::create_dir_all(&dev_vfio).unwrap();
    std::fs::write(dev_vfio.join("7"), b"").unwrap();

    let out = etch(&[
        "devices",
        "--sysfs",
        sysfs.to_str().unwrap(),
        "--dev-vfio",
        dev_vfio.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "only the etch functions: {rows:?}");
    assert_eq!(rows[0]["address"], "0000:01:00.0");
    assert_eq!(rows[0]["driver"], "pci-stub");
    assert_eq!(rows[0]["usable"], false);
    assert!(rows[0]["problem"]
        .as_str()
        .unwrap()
        .contains("not vfio-pci"));
    assert_eq!(rows[1]["address"], "0000:03:00.0");
    assert_eq!(rows[1]["iommu_group"], 7);
    assert_eq!(rows[1]["usable"], true, "{:?}", rows[1]);

    // The table names the command to use.
    let out = etch(&[
        "devices",
        "--sysfs",
        sysfs.to_str().unwrap(),
        "--dev-vfio",
        dev_vfio.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("etch run --device vfio:0000:03:00.0"),
        "{text}"
    );

    // An empty bus says so.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("bus/pci/devices")).unwrap();
    let out = etch(&["devices", "--sysfs", empty.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no etch devices"));
}

#[test]
fn etch_run_on_a_vfio_device_that_cannot_be_used_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let sysfs = dir.path().join("sys");
    fake_sysfs(&sysfs);
    let config = etch_compiler::Config {
        dim: 16,
        hidden_dim: 24,
        n_layers: 1,
        n_heads: 2,
        n_kv_heads: 2,
        vocab_size: 300,
        seq_len: 16,
        shared_classifier: true,
    };
    let (ck, tok) = common::random_model(dir.path(), &config, 3);
    let out = dir.path().join("chip");
    common::build_chip(&ck, &tok, &out, 8, 1, 16, common::quick_quant());
    let run = |device: &str| {
        etch(&[
            "run",
            "--device",
            device,
            "--manifest",
            out.to_str().unwrap(),
            "--sysfs",
            sysfs.to_str().unwrap(),
            "-n",
            "4",
        ])
    };
    for (device, why, code) in [
        ("vfio:0000:01:00.0", "bound to pci-stub, not vfio-pci", 1),
        ("vfio:0000:00:02.0", "not an etch chip", 2),
        ("vfio:0000:09:00.0", "no PCI function 0000:09:00.0", 2),
        ("vfio:01:00", "is not a PCI address", 2),
        ("pcie:0000:01:00.0", "expected sim:OUT, vfio-user:SOCKET", 2),
        (
            "vfio-user:/nonexistent/etch.sock",
            "is `etch serve` running?",
            1,
        ),
    ] {
        let o = run(device);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(why), "{device}: {err}");
        assert_eq!(o.status.code(), Some(code), "{device}: {err}");
    }
    // Group 7's node does not exist on this machine (no /dev/vfio here, or not that
    // group): the message names it.
    let o = run("vfio:0000:03:00.0");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("/dev/vfio/7") || err.contains("VFIO"), "{err}");
}
