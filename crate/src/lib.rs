//! graphstream's native core: the `.hadbj` journal format, the journal writer and object
//! storage, in plain Rust (format, segment, writer, sealer, store, error), under a napi
//! binding (binding/) that is the only code that knows about JavaScript.

mod binding;
mod error;
mod format;
mod sealer;
mod segment;
mod store;
mod writer;
