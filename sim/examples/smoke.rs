fn main() {
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let hash = std::env::args().nth(2).unwrap();
    let cycles: u64 = std::env::args()
        .nth(3)
        .map(|s| s.parse().unwrap())
        .unwrap_or(20000);
    let trace = std::env::args().nth(4).map(std::path::PathBuf::from);
    let waveform = trace
        .as_deref()
        .map_or(etch_sim::Waveform::Off, etch_sim::Waveform::for_path);
    let lib = etch_sim::build_with(&out, &hash, waveform).unwrap();
    let mut sim = etch_sim::Simulator::new(&lib, &out).unwrap();
    if let Some(t) = &trace {
        sim.trace(t).unwrap();
    }
    let (stop, ran) = sim.run(cycles, 0xF, true);
    eprintln!("boot: {stop:?} after {ran} cycles");
    for (name, off) in [
        ("STATUS", 0x68),
        ("SIG_LO", 0x60),
        ("SQ_HEAD", 0x110),
        ("CQ_TAIL", 0x130),
        ("VRES_LO", 0x180),
        ("IRQ_STATUS", 0x70),
    ] {
        println!("{name} = {:#x}", sim.mmio_read(off).unwrap());
    }
    sim.trace_close();
}
