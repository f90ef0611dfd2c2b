//! Service metadata rules.
