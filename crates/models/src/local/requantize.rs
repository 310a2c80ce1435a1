//! Q4_1 → Q8_0 at load time. The shipped SmolLM2 file is Q4_1, for which candle has no SIMD
//! dot product; Q8_0 has one (several times faster). The converted file is written once next
//! to the original (`*.q8_0.gguf`, via a temporary name and a rename) and reused afterwards;
//! where it cannot be written, the converted bytes are used from memory.
//!
//! One exception: the feed-forward down projections (`ffn_down`) are stored as f32. Their
//! inputs carry outlier activations, and candle quantizes activations to 8 bits per block of
//! 32 before a quantized dot product; with every matrix quantized that error accumulates over
//! the 30 layers until greedy answers go wrong ("What is the capital of France?" no longer says
//! Paris), while keeping any one group of matrices in f32 restores them. `ffn_down` is the
//! smallest such group (a quarter of the weights); it costs about a third of the speed.

use std::io::{BufReader, Cursor, Write as _};
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};

use crate::error::ModelError;

/// What a Q4_1 tensor becomes (see the module comment).
fn target_dtype(name: &str) -> GgmlDType {
    if name.ends_with("ffn_down.weight") { GgmlDType::F32 } else { GgmlDType::Q8_0 }
}

/// The re-quantized model: the cached file, or the bytes when the cache could not be written.
pub(crate) enum Requantized {
    File(PathBuf),
    Memory(Vec<u8>),
}

/// The Q8_0 copy of `original`: the cached file if it is there, else converted now and cached.
/// A read-only models directory only costs the conversion at every load (with a warning).
pub(crate) fn q8_0_copy(original: &Path) -> Result<Requantized, ModelError> {
    let target = original.with_extension("q8_0.gguf");
    if target.is_file() {
        return Ok(Requantized::File(target));
    }
    let bytes = convert(original)?;
    if let Err(error) = persist(&bytes, original, &target) {
        tracing::warn!(%error, "could not cache the re-quantized model; converting at every load");
    }
    Ok(Requantized::Memory(bytes))
}

/// The GGUF file of `original` with Q4_1 tensors re-quantized, in memory.
fn convert(original: &Path) -> Result<Vec<u8>, ModelError> {
    let invalid = |e: &dyn std::fmt::Display| ModelError::invalid(original, e);
    let mut reader = BufReader::new(std::fs::File::open(original).map_err(|e| invalid(&e))?);
    let content = gguf_file::Content::read(&mut reader).map_err(|e| invalid(&e))?;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors: Vec<(&str, QTensor)> = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content.tensor(&mut reader, name, &Device::Cpu).map_err(|e| invalid(&e))?;
        let tensor = match tensor.dtype() {
            GgmlDType::Q4_1 => QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, target_dtype(name))?,
            _ => tensor,
        };
        tensors.push((name.as_str(), tensor));
    }
    let mut metadata: Vec<(&str, &gguf_file::Value)> =
        content.metadata.iter().map(|(key, value)| (key.as_str(), value)).collect();
    metadata.sort_by_key(|(key, _)| *key);
    // "Mostly Q8_0", in llama.cpp's `general.file_type` numbering.
    let file_type = gguf_file::Value::U32(7);
    for entry in &mut metadata {
        if entry.0 == "general.file_type" {
            entry.1 = &file_type;
        }
    }
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(name, tensor)| (*name, tensor)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensor_refs)?;
    Ok(out.into_inner())
}

/// Writes `bytes` to `target` through a temporary file and a rename, so a crash or a
/// concurrent loader never sees a truncated cache.
fn persist(bytes: &[u8], original: &Path, target: &Path) -> std::io::Result<()> {
    let partial = original.with_extension(format!("q8_0.gguf.{}.part", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&partial, target)
    };
    let written = write();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}
