//! Runtime of discoverable.
