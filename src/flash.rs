//! `etch flash`: the bitstream of `etch synth` onto a board with openFPGALoader (the
//! Debian package `openfpgaloader`, which `scripts/setup` installs), then, given the
//! board's serial port, the chip's IDENTIFY over the link to prove it is the chip the
//! manifest describes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use etch_fpga::Board;
use serde::Serialize;

use crate::error::{CliError, CliResult};
use crate::output::print_json;

/// Where the bitstream goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// The FPGA's configuration memory: gone at power-off.
    Sram,
    /// The board's SPI flash: loaded at every power-on.
    Flash,
}

/// openFPGALoader's arguments for `board`, or why the board cannot take `storage`.
pub fn loader_args(board: Board, storage: Storage, bitstream: &Path) -> CliResult<Vec<String>> {
    let mut args: Vec<String> = match board {
        // The ULX3S's FT231X drives JTAG; SRAM or the SPI flash behind the FPGA.
        Board::Ulx3s => vec!["--board".into(), "ulx3s".into()],
        // The OrangeCrab has no JTAG cable: its DFU bootloader writes the flash (hold
        // the button while plugging it in).
        Board::OrangeCrab => {
            if storage == Storage::Sram {
                return Err(CliError::Usage(
                    "the OrangeCrab loads bitstreams only through its DFU bootloader into \
                     flash: use --flash"
                        .into(),
                ));
            }
            vec!["--board".into(), "orangeCrab".into()]
        }
        // The iCEBreaker's FT2232H, channel A, drives the iCE40's SPI.
        Board::IceBreaker => vec!["--board".into(), "ice40_generic".into()],
    };
    if storage == Storage::Flash && board != Board::OrangeCrab {
        args.push("--write-flash".into());
    }
    args.push(bitstream.display().to_string());
    Ok(args)
}

/// Where `etch synth OUT --board BOARD` writes the bitstream.
fn bitstream_path(out: &Path, board: Board) -> PathBuf {
    let target = board.target();
    let file = match target.name().starts_with("ice40") {
        true => "etch.bin",
        false => "etch.bit",
    };
    out.join("fpga").join(target.name()).join(file)
}

#[derive(Serialize)]
struct FlashJson {
    board: &'static str,
    bitstream: String,
    command: Vec<String>,
    flashed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    identified: Option<String>,
}

/// `etch flash`.
pub fn flash(a: &crate::FlashArgs) -> CliResult {
    let board: Board = a.board.parse()?;
    let storage = if a.flash {
        Storage::Flash
    } else {
        Storage::Sram
    };
    let bit = bitstream_path(&a.out, board);
    let mut command = vec![a.loader.display().to_string()];
    command.extend(loader_args(board, storage, &bit)?);
    if !bit.is_file() {
        return Err(CliError::Usage(format!(
            "no bitstream at {}: run `etch synth {} --board {}` first",
            bit.display(),
            a.out.display(),
            board.name()
        )));
    }
    let manifest = etch_compiler::chip::Manifest::load(&a.out)?;
    let mut report = FlashJson {
        board: board.name(),
        bitstream: bit.display().to_string(),
        command: command.clone(),
        flashed: false,
        identified: None,
    };
    if a.dry_run {
        return finish(a.json, &report);
    }
    let bar = crate::output::spinner(&format!(
        "loading {} onto the {}",
        bit.display(),
        board.name()
    ));
    let run = Command::new(&command[0]).args(&command[1..]).output();
    bar.finish_and_clear();
    let run = run.map_err(|e| {
        CliError::Usage(format!(
            "cannot run {}: {e} (install the openfpgaloader package: scripts/setup)",
            command[0]
        ))
    })?;
    if !run.status.success() {
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stderr),
            String::from_utf8_lossy(&run.stdout)
        );
        let last: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
        let last = last[last.len().saturating_sub(3)..].join("; ");
        let no_cable = [
            "unable to open ftdi device",
            "No DFU",
            "libusb",
            "device not found",
        ];
        let hint = if no_cable.iter().any(|m| said.contains(m)) {
            format!(
                " — no {} found on USB: is it plugged in, and may this user open it (udev rules)?",
                board.name()
            )
        } else {
            String::new()
        };
        return Err(CliError::Internal(format!(
            "openFPGALoader failed ({}): {last}{hint}",
            run.status
        )));
    }
    report.flashed = true;
    if let Some(port) = &a.serial {
        let exp = crate::chip::expected(&manifest)?;
        let bar = crate::output::spinner("waiting for the chip's IDENTIFY over the serial link");
        let dev = etch_driver::Serial::open(port, a.baud, Duration::from_secs(2));
        let chip = dev.and_then(|d| etch_driver::Chip::open(d, Some(&exp)));
        bar.finish_and_clear();
        chip?;
        report.identified = Some(manifest.model_identity.clone());
    }
    finish(a.json, &report)
}

fn finish(json: bool, r: &FlashJson) -> CliResult {
    if json {
        return print_json(r);
    }
    println!("{}", r.command.join(" "));
    match (r.flashed, &r.identified) {
        (false, _) => println!("(dry run: nothing loaded)"),
        (true, Some(id)) => println!("loaded; the chip answered IDENTIFY as model {id}"),
        (true, None) => println!("loaded (give --serial PORT to check the chip answers)"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_board_gets_its_loader_arguments() {
        let bit = Path::new("out/fpga/ecp5-85k/etch.bit");
        assert_eq!(
            loader_args(Board::Ulx3s, Storage::Sram, bit).unwrap(),
            ["--board", "ulx3s", "out/fpga/ecp5-85k/etch.bit"]
        );
        assert_eq!(
            loader_args(Board::Ulx3s, Storage::Flash, bit).unwrap(),
            [
                "--board",
                "ulx3s",
                "--write-flash",
                "out/fpga/ecp5-85k/etch.bit"
            ]
        );
        assert_eq!(
            loader_args(Board::OrangeCrab, Storage::Flash, bit).unwrap()[..2],
            ["--board", "orangeCrab"]
        );
        assert!(loader_args(Board::OrangeCrab, Storage::Sram, bit).is_err());
    }
}
