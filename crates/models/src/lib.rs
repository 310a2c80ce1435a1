//! In-process inference on the CPU.
