//! graphstream's native core: the `.hadbj` journal format, the journal writer and object
//! storage, in plain Rust (format, segment, writer, sealer, store, crypto, error), under a napi
//! binding (binding/) that is the only code that knows about JavaScript.

mod binding;
mod crypto;
mod error;
mod format;
mod sealer;
mod segment;
mod store;
mod writer;
