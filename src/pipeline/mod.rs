//! What a raw event line becomes: a borrowed event tree, decoded per the API's §6.1, written in
//! the chosen format (`wazuh`, `json` or `raw`). Pure work, done on the format workers.

pub mod classify;
pub mod decode;
pub mod direct;
pub mod event;
pub mod format;
pub mod pool;
pub mod shrink;
pub mod wazuh;
