//! What the standard library's prelude gives every module and `core`'s does not: `alloc`'s
//! collections and strings, for the builds without `std`. Modules that use them import
//! `crate::prelude::*` in both builds.

pub(crate) use alloc::boxed::Box;
pub(crate) use alloc::string::{String, ToString};
pub(crate) use alloc::vec::Vec;
pub(crate) use alloc::{format, vec};
