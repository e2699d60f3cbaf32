//! Provider implementations, one per file or folder.

pub(crate) mod mock;
pub(crate) mod openai;
pub(crate) mod replay;
