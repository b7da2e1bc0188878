//! The VFIO layer against a real kernel's VFIO, in a QEMU guest.
//!
//! `VfioPci` drives an etch board through Linux's VFIO; no board is here, but QEMU is. The
//! host test boots a guest: the Debian cloud kernel that `scripts/setup` downloads
//! (`target/guest-kernel/`, or `ETCH_GUEST_KERNEL`), an initramfs built here from
//! busybox-static, the kernel's vfio modules and this very test binary, on a q35 machine
//! with a virtual Intel IOMMU (`intel-iommu`, `intel_iommu=on`) and QEMU's `edu` teaching
//! device behind a PCIe root port. The guest's `/init` binds the edu function to vfio-pci
//! and runs the guest test, which drives it with [`VfioFunction`] exactly as `VfioPci`
//! drives a board: container, group, device, BAR0 mapping, the command register,
//! IOMMU-mapped DMA above 4 GiB, an MSI vector through an eventfd, and a bus reset.
//!
//! QEMU runs under KVM when `ETCH_GUEST_ACCEL=kvm` (and `/dev/kvm` is usable), otherwise
//! under TCG, which needs no `/dev/kvm`: the guest kernel and its VFIO and IOMMU code are
//! the same either way (`docs/driver.md` says why TCG is the default).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use etch_driver::{sysfs, Interrupts, VfioFunction};

/// The name of the test that runs inside the guest.
const GUEST_TEST: &str = "edu_through_the_vfio_layer";
/// Set by the guest's `/init`.
const IN_GUEST: &str = "ETCH_IN_GUEST";
/// The line `/init` prints with the guest test's exit status.
const EXIT_MARK: &str = "ETCH-GUEST-EXIT:";
/// How long the whole guest may take.
const GUEST_BUDGET: Duration = Duration::from_secs(240);
/// The modules vfio-pci needs, in load order, under `lib/modules/VERSION/kernel/`.
const MODULES: [&str; 6] = [
    "virt/lib/irqbypass.ko",
    "drivers/vfio/vfio.ko",
    "drivers/vfio/vfio_iommu_type1.ko",
    "drivers/vfio/vfio_virqfd.ko",
    "drivers/vfio/pci/vfio-pci-core.ko",
    "drivers/vfio/pci/vfio-pci.ko",
];

/// QEMU's edu device (QEMU `docs/specs/edu.rst`).
mod edu {
    pub const VENDOR: u16 = 0x1234;
    pub const DEVICE: u16 = 0x11e8;
    /// Identification: `0xRRrr00ed`, major and minor version and 0xed.
    pub const ID: u64 = 0x00;
    /// Liveness check: reads back the inverse of what was written.
    pub const LIVENESS: u64 = 0x04;
    /// Factorial: write n, read n! when the status's computing bit is clear.
    pub const FACTORIAL: u64 = 0x08;
    /// Status: bit 0 computing, bit 7 raise an interrupt when the factorial is done.
    pub const STATUS: u64 = 0x20;
    pub const STATUS_COMPUTING: u32 = 0x01;
    pub const STATUS_IRQ_ON_FACTORIAL: u32 = 0x80;
    /// Interrupt status (read), raise (write), acknowledge (write).
    pub const IRQ_STATUS: u64 = 0x24;
    pub const IRQ_RAISE: u64 = 0x60;
    pub const IRQ_ACK: u64 = 0x64;
    pub const IRQ_FACTORIAL: u32 = 0x001;
    pub const IRQ_DMA: u32 = 0x100;
    /// DMA source, destination (64-bit), count, command.
    pub const DMA_SRC: u64 = 0x80;
    pub const DMA_DST: u64 = 0x88;
    pub const DMA_COUNT: u64 = 0x90;
    pub const DMA_CMD: u64 = 0x98;
    pub const DMA_RUN: u64 = 0x1;
    pub const DMA_TO_HOST: u64 = 0x2;
    pub const DMA_IRQ: u64 = 0x4;
    /// The device's own 4 KiB buffer, in its DMA address space.
    pub const BUFFER: u64 = 0x40000;
    /// The longest transfer: QEMU 7.2's range check refuses one that reaches the
    /// buffer's last byte (and stops the machine), so stay 64 bytes short of 4 KiB.
    pub const DMA_MAX: usize = 4096 - 64;
}

// ---------------------------------------------------------------------------------------
// Host side: build the guest and boot it.

/// What the guest is made of.
struct Kit {
    qemu: PathBuf,
    busybox: PathBuf,
    kernel: PathBuf,
    modules: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn kit() -> Result<Kit, String> {
    let setup = "run scripts/setup, which installs it";
    let qemu = on_path("qemu-system-x86_64")
        .ok_or(format!("qemu-system-x86_64 is not installed: {setup}"))?;
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or(format!(
            "busybox (busybox-static) is not installed: {setup}"
        ))?;
    let root = std::env::var_os("ETCH_GUEST_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guest-kernel"));
    let kernel = std::fs::read_dir(root.join("boot"))
        .ok()
        .and_then(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
        })
        .ok_or(format!(
            "no guest kernel in {}/boot: {setup}",
            root.display()
        ))?;
    let version = kernel.file_name().unwrap().to_string_lossy()["vmlinuz-".len()..].to_string();
    let modules = root.join("lib/modules").join(version).join("kernel");
    for m in MODULES {
        if !modules.join(m).is_file() {
            return Err(format!(
                "the guest kernel has no {}",
                modules.join(m).display()
            ));
        }
    }
    Ok(Kit {
        qemu,
        busybox,
        kernel,
        modules,
    })
}

/// An initramfs in the kernel's `newc` cpio format.
#[derive(Default)]
struct Cpio {
    bytes: Vec<u8>,
    inode: u32,
    dirs: std::collections::BTreeSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.inode += 1;
        let fields = [
            self.inode,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.bytes.len() % 4 != 0 {
            self.bytes.push(0);
        }
    }

    /// A directory and its parents.
    fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            if self.dirs.insert(at.clone()) {
                self.entry(&at.clone(), 0o040_755, &[]);
            }
        }
    }

    /// A file (with its directories), executable.
    fn file(&mut self, path: &str, data: &[u8]) {
        let path = path.trim_start_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entry(path, 0o100_755, data);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.bytes
    }
}

/// The shared libraries `binary` loads (from `ldd`), as paths.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| format!("cannot run ldd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    let libs: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    if libs.is_empty() {
        return Err(format!(
            "ldd named no libraries for {}: {text}",
            binary.display()
        ));
    }
    Ok(libs)
}

fn init_script() -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s /bin
export PATH=/bin
for m in irqbypass vfio vfio_iommu_type1 vfio_virqfd vfio-pci-core vfio-pci; do
  insmod /modules/$m.ko || echo "guest: cannot load $m"
done
for d in /sys/bus/pci/devices/*; do
  if [ "$(cat $d/vendor)" = 0x{vendor:04x} ] && [ "$(cat $d/device)" = 0x{device:04x} ]; then
    echo vfio-pci > $d/driver_override
    echo $(basename $d) > /sys/bus/pci/drivers_probe
    echo "guest: $(basename $d) bound to $(basename $(readlink $d/driver)), IOMMU group $(basename $(readlink $d/iommu_group)), reset by $(cat $d/reset_method)"
  fi
done
{in_guest}=1 RUST_BACKTRACE=1 /guest --ignored --exact {test} --nocapture --test-threads 1
status=$?
echo "{mark} $status"
[ $status -eq 0 ] || dmesg | tail -30
poweroff -f
"#,
        vendor = edu::VENDOR,
        device = edu::DEVICE,
        in_guest = IN_GUEST,
        test = GUEST_TEST,
        mark = EXIT_MARK,
    )
}

fn build_initramfs(kit: &Kit, out: &Path) -> Result<(), String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let me = std::env::current_exe().map_err(|e| format!("cannot find this test binary: {e}"))?;
    let mut cpio = Cpio::default();
    cpio.file("init", init_script().as_bytes());
    cpio.file("bin/busybox", &read(&kit.busybox)?);
    for m in MODULES {
        let name = Path::new(m)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        cpio.file(&format!("modules/{name}"), &read(&kit.modules.join(m))?);
    }
    cpio.file("guest", &read(&me)?);
    for lib in shared_libraries(&me)? {
        // The canonical file, under the name the binary asks for.
        let data = read(&std::fs::canonicalize(&lib).unwrap_or(lib.clone()))?;
        cpio.file(&lib.to_string_lossy(), &data);
    }
    std::fs::write(out, cpio.finish()).map_err(|e| format!("cannot write {}: {e}", out.display()))
}

/// Whether `/dev/kvm` can be opened for reading and writing.
fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

#[test]
fn vfio_layer_runs_against_a_guest_kernel() {
    let kit = match kit() {
        Ok(k) => k,
        Err(e) => panic!("the guest for the VFIO test is incomplete: {e}"),
    };
    let kvm = std::env::var("ETCH_GUEST_ACCEL").is_ok_and(|a| a == "kvm");
    if kvm && !kvm_usable() {
        eprintln!(
            "skipped: ETCH_GUEST_ACCEL=kvm but /dev/kvm is missing or not usable by this user"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initramfs.cpio");
    build_initramfs(&kit, &initrd).unwrap();
    let accel = if kvm {
        "accel=kvm,kernel-irqchip=split"
    } else {
        "accel=tcg"
    };
    let started = Instant::now();
    let mut qemu = Command::new(&kit.qemu)
        .args(["-machine", &format!("q35,{accel}")])
        .args([
            "-cpu",
            if kvm {
                "host,-arch-capabilities"
            } else {
                "max"
            },
        ])
        .args(["-m", "512", "-smp", "1"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-serial", "stdio", "-net", "none", "-no-reboot"])
        .args(["-device", "intel-iommu,intremap=on"])
        .args(["-device", "pcie-root-port,id=rp0,bus=pcie.0,chassis=1"])
        // 40 address bits: the DMA buffers live above 4 GiB.
        .args(["-device", "edu,bus=rp0,dma_mask=0xffffffffff"])
        .arg("-kernel")
        .arg(&kit.kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 intel_iommu=on panic=-1 quiet loglevel=3",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", kit.qemu.display()));
    let (tx, rx) = mpsc::channel();
    let stdout = qemu.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut console = Vec::new();
    let mut exit = None;
    while let Some(left) = GUEST_BUDGET.checked_sub(started.elapsed()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_string();
                if let Some(code) = line.strip_prefix(EXIT_MARK) {
                    exit = code.trim().parse::<i32>().ok();
                }
                console.push(line);
            }
            Err(_) => break,
        }
    }
    let _ = qemu.kill();
    let status = qemu.wait();
    let mut stderr = String::new();
    if let Some(mut e) = qemu.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    let console = console.join("\n");
    let _ = std::io::stderr().write_all(format!("--- guest console ---\n{console}\n").as_bytes());
    assert_eq!(
        exit,
        Some(0),
        "the guest test did not pass within {GUEST_BUDGET:?} (QEMU {status:?}; stderr: {stderr})"
    );
    assert!(console.contains("test result: ok. 1 passed"), "{console}");
    eprintln!(
        "guest ({}) booted and passed in {:.1} s",
        if kvm { "KVM" } else { "TCG" },
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------
// Guest side: drive the edu device through the VFIO layer.

/// Waits for the edu interrupt and returns the device's interrupt status, acknowledged.
fn wait_for_interrupt(f: &mut VfioFunction, what: &str) -> u32 {
    let fired = f.wait_interrupts(1, Duration::from_secs(10)).unwrap();
    assert_eq!(fired, 1, "no MSI for {what} within 10 s");
    let status = f.read32(edu::IRQ_STATUS).unwrap();
    f.write32(edu::IRQ_ACK, status).unwrap();
    status
}

/// Runs one edu DMA between its buffer and `iova` and waits for its interrupt.
fn dma(f: &mut VfioFunction, to_host: bool, iova: u64, len: usize) {
    let (src, dst) = if to_host {
        (edu::BUFFER, iova)
    } else {
        (iova, edu::BUFFER)
    };
    f.write64(edu::DMA_SRC, src).unwrap();
    f.write64(edu::DMA_DST, dst).unwrap();
    f.write64(edu::DMA_COUNT, len as u64).unwrap();
    let dir = if to_host { edu::DMA_TO_HOST } else { 0 };
    f.write64(edu::DMA_CMD, edu::DMA_RUN | edu::DMA_IRQ | dir)
        .unwrap();
    let status = wait_for_interrupt(f, "the DMA");
    assert_eq!(
        status & edu::IRQ_DMA,
        edu::IRQ_DMA,
        "interrupt status {status:#x}"
    );
    assert_eq!(
        f.read64(edu::DMA_CMD).unwrap() & edu::DMA_RUN,
        0,
        "DMA finished"
    );
}

/// The kernel's log so far (`/dev/kmsg`, without blocking).
fn kernel_log() -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
    else {
        return String::new();
    };
    let mut log = String::new();
    let mut record = vec![0u8; 8192];
    while let Ok(n) = f.read(&mut record) {
        if n == 0 {
            break;
        }
        log.push_str(&String::from_utf8_lossy(&record[..n]));
    }
    log
}

#[test]
#[ignore = "runs inside the QEMU guest that vfio_layer_runs_against_a_guest_kernel boots"]
fn edu_through_the_vfio_layer() {
    assert!(
        std::env::var_os(IN_GUEST).is_some(),
        "this test drives QEMU's edu device and runs only inside the guest that \
         vfio_layer_runs_against_a_guest_kernel boots"
    );
    // Discovery: sysfs, the vfio-pci binding and the IOMMU group.
    let functions = sysfs::scan(Path::new("/sys")).unwrap();
    let function = functions
        .into_iter()
        .find(|f| (f.vendor, f.device) == (edu::VENDOR, edu::DEVICE))
        .expect("the edu device is on the guest's PCI bus");
    assert!(function.bound_to_vfio(), "{function:?}");
    assert!(
        function.iommu_group.is_some(),
        "the virtual IOMMU gives it a group"
    );
    assert_eq!(function.problem(Path::new("/dev/vfio")), None);

    // Container, group, device; BAR0 mapped; memory space and bus master on.
    let mut f = VfioFunction::open(function, Path::new("/dev/vfio")).unwrap();
    assert!(f.bar0_mapped(), "VFIO lets BAR0 be mapped");
    assert_eq!(f.bar0_len(), 1 << 20);
    assert_eq!(
        f.command() & 0b110,
        0b110,
        "memory space and bus master enabled"
    );

    // Registers through the mapping.
    let id = f.read32(edu::ID).unwrap();
    assert_eq!(id & 0xff, 0xed, "identification register {id:#010x}");
    assert_eq!(id >> 24, 1, "edu major version 1");
    for v in [0x1234_5678u32, 0, 0xffff_ffff] {
        f.write32(edu::LIVENESS, v).unwrap();
        assert_eq!(f.read32(edu::LIVENESS).unwrap(), !v, "liveness of {v:#x}");
    }
    assert!(f.read32(f.bar0_len()).is_err(), "outside BAR0");
    assert!(f.read64(edu::DMA_SRC + 4).is_err(), "unaligned 64-bit");

    // An MSI vector through an eventfd: the factorial unit's completion interrupt.
    assert!(
        f.enable_interrupts(Interrupts::MsiX, 1).is_err(),
        "edu has MSI, not MSI-X"
    );
    assert!(
        f.enable_interrupts(Interrupts::Msi, 2).is_err(),
        "edu has one MSI vector"
    );
    f.enable_interrupts(Interrupts::Msi, 1).unwrap();
    assert_eq!(
        f.wait_interrupts(1, Duration::from_millis(50)).unwrap(),
        0,
        "quiet"
    );
    f.write32(edu::STATUS, edu::STATUS_IRQ_ON_FACTORIAL)
        .unwrap();
    f.write32(edu::FACTORIAL, 10).unwrap();
    let status = wait_for_interrupt(&mut f, "the factorial");
    assert_eq!(status, edu::IRQ_FACTORIAL);
    assert_eq!(f.read32(edu::STATUS).unwrap() & edu::STATUS_COMPUTING, 0);
    assert_eq!(f.read32(edu::FACTORIAL).unwrap(), 3_628_800, "10!");

    // DMA through the IOMMU, above 4 GiB: host buffer → device → another host buffer.
    let pattern: Vec<u8> = (0..edu::DMA_MAX).map(|i| (i * 7 + 3) as u8).collect();
    let a = f.dma_alloc(edu::DMA_MAX).unwrap();
    let b = f.dma_alloc(edu::DMA_MAX).unwrap();
    assert!(a.iova >= 1 << 32 && b.iova >= 1 << 32, "{a:?} {b:?}");
    f.dma_write(&a, 0, &pattern).unwrap();
    dma(&mut f, false, a.iova, edu::DMA_MAX);
    dma(&mut f, true, b.iova, edu::DMA_MAX);
    let mut back = vec![0u8; edu::DMA_MAX];
    f.dma_read(&b, 0, &mut back).unwrap();
    assert_eq!(back, pattern, "the device copied buffer a into buffer b");

    // The IOMMU stops DMA to an address the driver never mapped: the write faults and
    // no host buffer changes.
    let unmapped = 0x10_0000_0000u64;
    dma(&mut f, true, unmapped, 64);
    // The fault reaches the guest kernel as an interrupt of the IOMMU: give it a moment.
    let mut log = kernel_log();
    for _ in 0..50 {
        if log.contains("DMAR") && log.to_ascii_lowercase().contains("fault") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        log = kernel_log();
    }
    assert!(
        log.contains("DMAR") && log.to_ascii_lowercase().contains("fault"),
        "the IOMMU reported the stray DMA: {}",
        log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
    );
    if let Some(fault) = log.lines().find(|l| l.contains("fault addr")) {
        eprintln!(
            "guest: the IOMMU's report: {}",
            fault.rsplit(';').next().unwrap_or(fault)
        );
    }
    f.dma_read(&b, 0, &mut back).unwrap();
    assert_eq!(back, pattern);

    // Reset (a secondary bus reset through the root port): the function answers again
    // with bus mastering and its MSI vector enabled once more, and DMA works.
    f.reset().unwrap();
    assert_eq!(
        f.command() & 0b110,
        0b110,
        "bus master again after the reset"
    );
    f.write32(edu::IRQ_RAISE, 0x8000).unwrap();
    assert_eq!(
        wait_for_interrupt(&mut f, "a raised interrupt after the reset") & 0x8000,
        0x8000
    );
    f.dma_write(&a, 0, &[0x5a; 64]).unwrap();
    dma(&mut f, false, a.iova, 64);
    dma(&mut f, true, b.iova, 64);
    f.dma_read(&b, 0, &mut back[..64]).unwrap();
    assert_eq!(back[..64], [0x5a; 64]);
    f.dma_free(a).unwrap();
    f.dma_free(b).unwrap();
    eprintln!("guest: edu {id:#010x} through VFIO: registers, MSI, DMA above 4 GiB, IOMMU fault, reset: ok");
}
