//! Persisted contexts: one file per context under the state directory,
//! `STATE/contexts/<agent>/<name>.ctx`.
//!
//! ```text
//! "ETCHCTX1" | header length (u32 LE) | header (JSON) | SAVE_CONTEXT image
//! ```
//!
//! The header names the model identity (a context is only restored into a chip of the
//! same model), the agent and context, the token history whose keys and values the
//! image holds, and the SHA-256 of the image. Files are written to a temporary name
//! and renamed, so a crash leaves the old file or the new one, never half of one; a
//! file that fails any check is reported and left untouched.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, RuntimeError};

const MAGIC: &[u8; 8] = b"ETCHCTX1";

/// What a context file records besides the image.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version (1).
    pub version: u32,
    /// The model identity of the chip that saved it.
    pub model_identity: String,
    /// Agent.
    pub agent: String,
    /// Context name.
    pub name: String,
    /// Tokens whose keys and values the image holds, in order.
    pub tokens: Vec<u32>,
    /// The last sampled token, not yet fed.
    pub pending: Option<u32>,
    /// Leading tokens that are the system prompt (kept by compaction).
    pub system_len: usize,
    /// Bytes of the image.
    pub image_len: usize,
    /// SHA-256 of the image, hex.
    pub image_sha256: String,
}

/// Writes `header` and `image` to `path` atomically.
pub fn write(path: &Path, header: &Header, image: &[u8]) -> Result<()> {
    let io = |action, e| RuntimeError::Io {
        action,
        path: path.to_path_buf(),
        source: e,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("create", e))?;
    }
    let mut h = header.clone();
    h.image_len = image.len();
    h.image_sha256 = hex::encode(Sha256::digest(image));
    let json = serde_json::to_vec(&h).map_err(|e| RuntimeError::InvalidArgument(e.to_string()))?;
    let mut bytes = Vec::with_capacity(12 + json.len() + image.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(image);
    let tmp = path.with_extension("ctx.tmp");
    std::fs::write(&tmp, &bytes).map_err(|e| io("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("rename", e))?;
    Ok(())
}

/// Reads and checks a context file against the chip's `model_identity`.
pub fn read(path: &Path, model_identity: &str) -> Result<(Header, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|e| RuntimeError::Io {
        action: "read",
        path: path.to_path_buf(),
        source: e,
    })?;
    let corrupt = |why: String| RuntimeError::CorruptContext {
        path: path.to_path_buf(),
        why,
    };
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(corrupt("it is not an etch context file".into()));
    }
    let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let json = bytes
        .get(12..12 + n)
        .ok_or_else(|| corrupt("its header is cut short".into()))?;
    let header: Header = serde_json::from_slice(json)
        .map_err(|e| corrupt(format!("its header is not valid: {e}")))?;
    if header.version != 1 {
        return Err(corrupt(format!(
            "format version {} is unknown",
            header.version
        )));
    }
    if header.model_identity != model_identity {
        return Err(corrupt(format!(
            "it was saved by a chip of model {}, not {}",
            &header.model_identity[..header.model_identity.len().min(16)],
            &model_identity[..model_identity.len().min(16)]
        )));
    }
    let image = &bytes[12 + n..];
    if image.len() != header.image_len {
        return Err(corrupt(format!(
            "its image is {} bytes, the header says {}",
            image.len(),
            header.image_len
        )));
    }
    if hex::encode(Sha256::digest(image)) != header.image_sha256 {
        return Err(corrupt(
            "its image does not match its SHA-256 (the file was altered or damaged)".into(),
        ));
    }
    Ok((header, image.to_vec()))
}

/// Where the context `agent/name` lives under `state`.
pub fn path(state: &Path, agent: &str, name: &str) -> PathBuf {
    state
        .join("contexts")
        .join(agent)
        .join(format!("{name}.ctx"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            version: 1,
            model_identity: "ab".repeat(32),
            agent: "a".into(),
            name: "n".into(),
            tokens: vec![1, 5, 9],
            pending: Some(7),
            system_len: 1,
            image_len: 0,
            image_sha256: String::new(),
        }
    }

    #[test]
    fn a_written_context_reads_back_and_any_damage_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "a", "n");
        let image: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        write(&p, &header(), &image).unwrap();
        let (h, img) = read(&p, &"ab".repeat(32)).unwrap();
        assert_eq!(img, image);
        assert_eq!(h.tokens, vec![1, 5, 9]);
        assert!(read(&p, &"cd".repeat(32))
            .unwrap_err()
            .to_string()
            .contains("saved by a chip of model"));
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(read(&p, &"ab".repeat(32))
            .unwrap_err()
            .to_string()
            .contains("SHA-256"));
        std::fs::write(&p, b"garbage").unwrap();
        assert!(read(&p, &"ab".repeat(32))
            .unwrap_err()
            .to_string()
            .contains("not an etch context"));
    }
}
