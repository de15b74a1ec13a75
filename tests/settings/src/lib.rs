//! Nothing but a home for `tests/readme.rs`, which checks the README's
//! configuration tables against the settings of every binary.
