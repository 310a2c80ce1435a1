//! The knowledge crate from outside: file extraction on real files, and retrieval quality on a
//! labelled corpus.

mod pdf;
mod quality;
