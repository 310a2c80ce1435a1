//! SmolLM2's tokenizer, rebuilt from the GGUF metadata (`tokenizer.ggml.tokens` / `merges`).
//! Candle's GGUF helper does not know SmolLM2's pre-tokenizer (`smollm`) and falls back to a
//! GPT-2 byte-level one that adds a leading space; SmolLM2 splits digits one by one and adds no
//! prefix space (llama.cpp's `LLAMA_VOCAB_PRE_TYPE_SMOLLM`, the Hugging Face tokenizer.json), so
//! the pre-tokenizer, post-processor and decoder are replaced here.

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf as _;
use tokenizers::Tokenizer;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::processors::byte_level::ByteLevel as ByteLevelProcessor;

/// The tokenizer described by `content`'s metadata, with SmolLM2's pre-tokenization.
pub(crate) fn from_gguf(content: &gguf_file::Content) -> Result<Tokenizer, String> {
    let mut tokenizer = Tokenizer::from_gguf(content).map_err(|e| format!("tokenizer from GGUF metadata: {e}"))?;
    let byte_level = ByteLevel::new(false, true, true);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![Digits::new(true).into(), byte_level.into()])));
    tokenizer.with_post_processor(Some(ByteLevelProcessor::new(false, false, true)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::new(false, false, true)));
    Ok(tokenizer)
}
